"""The benchmark's results: comparison rows, the Markdown table, Table III's shape (methods as
columns) and the PSNR-vs-parameters and PSNR-vs-time plots (the paper's Fig. 3(a) and 3(b))."""
from __future__ import annotations

import math
import os
import platform
from pathlib import Path
from typing import Any, Sequence



from .method import BenchmarkError, Method
__all__ = ['MACS_INPUT', 'METRICS', 'comparison_rows', 'comparison_markdown', 'plot_psnr_vs_params',
           'plot_psnr_vs_time', 'table_iii', 'table_iii_markdown']

#: LR input size of the parameter/multiply-add count (Table II's MACs are params x 120 x 120)
MACS_INPUT = (120, 120)
METRICS = ("psnr_fg", "ssim_fg", "psnr", "ssim")
def volume_csv(results_dir: Path) -> Path:
    found = sorted(results_dir.glob("*_volumes.csv"))
    if len(found) != 1:
        raise BenchmarkError(f"{results_dir}: expected one per-volume CSV from basicsr test, "
                             f"found {len(found)}")
    return found[0]


def comparison_rows(methods: Sequence[Method]) -> list[dict[str, Any]]:
    """One row per tested method (and self-ensemble variant), Bicubic first."""
    rows: list[dict[str, Any]] = []
    first = next(iter(methods[0].tests.values()))
    rows.append({"method": "Bicubic", "network": "MATLAB bicubic", "params": 0, "macs": math.nan,
                 "macs_nominal": math.nan, "train_iters": 0, "train_s": math.nan,
                 "train_wall_s": math.nan, "test_s_per_slice": math.nan, "test_wall_s": math.nan,
                 "n_volumes": first["n_volumes"], "n_slices": first["n_slices"], **first["bicubic"]})
    for m in methods:
        for label, test in m.tests.items():
            copies = 8 if test["self_ensemble"] else 1
            rows.append({"method": label, "network": m.train_opt["network_g"]["type"],
                         "params": m.size.get("params", math.nan),
                         "macs": copies * m.size.get("macs", math.nan),
                         "macs_nominal": copies * m.size.get("macs_nominal", math.nan),
                         "train_iters": m.iters, "train_s": m.train["loop_s"],
                         "train_wall_s": m.train["wall_s"], "test_s_per_slice": test["s_per_slice"],
                         "test_wall_s": test["wall_s"], "n_volumes": test["n_volumes"],
                         "n_slices": test["n_slices"], **test["metrics"]})
    return rows


def _num(value: Any, fmt: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return format(value, fmt)


def comparison_markdown(rows: Sequence[dict[str, Any]], info: dict[str, Any]) -> str:
    """The comparison table (``comparison.md``) with the set-up it was measured on."""
    lines = [f"# Benchmark: {info['modality']} ×{info['scale']}, {info['budget']}", "",
             "| Method | Params (M) | MACs (G) | Train iters | Train (s) | Test (s/slice) "
             "| PSNR fg | SSIM fg | PSNR | SSIM |",
             "|:--|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for r in rows:
        bicubic = r["method"] == "Bicubic"
        lines.append(
            f"| {r['method']} | {'–' if bicubic else _num(r['params'] / 1e6, '.3f')} | "
            f"{_num(r['macs'] / 1e9, '.2f')} | {'–' if bicubic else r['train_iters']} | "
            f"{_num(r['train_s'], '.1f')} | {_num(r['test_s_per_slice'], '.4f')} | "
            f"{_num(r['psnr_fg'], '.2f')} | {_num(r['ssim_fg'], '.4f')} | "
            f"{_num(r['psnr'], '.2f')} | {_num(r['ssim'], '.4f')} |")
    lines += ["",
              f"- Test set: {info['test_set']} ({rows[0]['n_volumes']} volumes, {rows[0]['n_slices']} "
              "slices); PSNR/SSIM: mean over volumes of the per-volume mean over slices (Table III); "
              "fg = foreground only.",
              f"- Params and MACs: 1×{MACS_INPUT[0]}×{MACS_INPUT[1]} LR input (Table II), "
              "MACs as executed (`macs_nominal` in the CSV: every layer as the paper draws it); "
              "a `+` row (x8 self-ensemble) costs 8 forward passes.",
              "- Train (s): BasicSR's training loop; Test (s/slice): BasicSR's test loop (forward, "
              "metrics, bicubic reference) per slice. Start-up is excluded (whole commands: "
              "`train_wall_s`, `test_wall_s` in the CSV).",
              f"- Machine: {info['machine']}."]
    return "\n".join(lines) + "\n"


def plot_psnr_vs_params(rows: Sequence[dict[str, Any]], path: Path, title: str) -> None:
    """Fig. 3(a) of the paper: foreground PSNR against parameters (log axis), bicubic as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ...results.files import write_figure

    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    for r in rows:
        if r["method"] == "Bicubic":
            if math.isfinite(r["psnr_fg"]):
                ax.axhline(r["psnr_fg"], color="gray", ls="--", lw=1)
                ax.annotate(f"Bicubic {r['psnr_fg']:.2f} dB", xy=(0.01, r["psnr_fg"]),
                            xycoords=("axes fraction", "data"), va="bottom", fontsize=8, color="gray")
            continue
        x, y = r["params"] / 1e6, r["psnr_fg"]
        if not (math.isfinite(x) and x > 0 and math.isfinite(y)):
            continue
        ours = r["network"] == "W2AMSN"
        ax.scatter([x], [y], s=60, marker="*" if ours else "o", zorder=3,
                   color="tab:red" if ours else "tab:blue", alpha=0.6 if r["method"].endswith("+") else 1)
        below = r["method"].endswith("+")  # next to its plain twin: label under the point
        ax.annotate(r["method"], (x, y), textcoords="offset points", xytext=(6, -12 if below else 4),
                    fontsize=9)
    ax.set_xscale("log")
    ax.set_xlabel("Parameters (M)")
    ax.set_ylabel("PSNR, foreground (dB)")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    write_figure(fig, path, dpi=120)


def finite_or_none(value: Any) -> Any:
    """``value`` with NaN/inf floats as None (strict JSON)."""
    if isinstance(value, dict):
        return {k: finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_none(v) for v in value]
    return None if isinstance(value, float) and not math.isfinite(value) else value


def machine_summary() -> str:
    import torch

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU ({os.cpu_count()} cores)"
    return f"{device}, {platform.processor() or platform.machine()}, torch {torch.__version__}"




def table_iii(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Table III's shape: one row per measure (PSNR/SSIM whole slice and foreground, parameters,
    test seconds per slice), one column per method in the order tested, Bicubic first."""
    def pair(r: dict[str, Any], suffix: str) -> str:
        return f"{_num(r['psnr' + suffix], '.2f')}/{_num(r['ssim' + suffix], '.4f')}"

    measures = (("PSNR/SSIM", lambda r: pair(r, "")), ("PSNR/SSIM (foreground)", lambda r: pair(r, "_fg")),
                ("Params (M)", lambda r: "–" if r["method"] == "Bicubic" else _num(r["params"] / 1e6, ".3f")),
                ("Test (s/slice)", lambda r: _num(r["test_s_per_slice"], ".4f")))
    return [{"measure": name, **{r["method"]: cell(r) for r in rows}} for name, cell in measures]


def table_iii_markdown(table: Sequence[dict[str, Any]], info: dict[str, Any]) -> str:
    """:func:`table_iii` as Markdown with the set-up it was measured on."""
    methods = [k for k in table[0] if k != "measure"]
    lines = [f"# Table III shape: {info['modality']} ×{info['scale']}, {info['budget']}", "",
             "| | " + " | ".join(methods) + " |", "|:--|" + "--:|" * len(methods)]
    lines += ["| " + " | ".join([r["measure"]] + [str(r[m]) for m in methods]) + " |" for r in table]
    lines += ["", f"- Test set: {info['test_set']}; PSNR/SSIM: mean over volumes of the per-volume mean "
              "over slices (Table III's convention).", f"- Machine: {info['machine']}."]
    return "\n".join(lines) + "\n"


def plot_psnr_vs_time(rows: Sequence[dict[str, Any]], path: Path, title: str) -> None:
    """Fig. 3(b) of the paper: foreground PSNR against test seconds per slice (log axis); the
    marker area grows with the parameter count."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ...results.files import write_figure

    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    for r in rows:
        x, y = r["test_s_per_slice"], r["psnr_fg"]
        if r["method"] == "Bicubic" or not (math.isfinite(x) and x > 0 and math.isfinite(y)):
            continue
        ours = r["network"] == "W2AMSN"
        size = 30 + 300 * math.sqrt(max(r["params"], 0) / 1e6) if math.isfinite(r["params"]) else 30
        ax.scatter([x], [y], s=size, marker="*" if ours else "o", zorder=3, alpha=0.7,
                   color="tab:red" if ours else "tab:blue")
        ax.annotate(r["method"], (x, y), textcoords="offset points", xytext=(6, 4), fontsize=9)
    ax.set_xscale("log")
    ax.set_xlabel("Test time per slice (s; BasicSR test loop)")
    ax.set_ylabel("PSNR, foreground (dB)")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    write_figure(fig, path, dpi=120)
