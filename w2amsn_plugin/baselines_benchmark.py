"""Benchmark W²AMSN against the baselines on the user's own data in one command: train every
given BasicSR options file with the same budget, test each on the same test set, and write one
comparison table and a PSNR-vs-parameters plot like the paper's Fig. 3(a).

    python scripts/benchmark_baselines.py \\
        --train-opts options/train/W2AMSN/train_W2AMSN_T1_x2.yml options/train/EDSR/train_EDSR_T1_x2.yml \\
        --iters 20000 [--minutes M] [--self-ensemble] [--force-yml num_gpu=1 ...] [--out DIR]

For each training options file, through the same ``basicsr train|test`` a user runs
(``python -m w2amsn_plugin.cli``, working directory ``--workdir``):

1. **Budget.** ``--iters N``: every method trains N iterations. ``--minutes M``: every method
   trains for about M minutes of BasicSR's training loop, measured per method: a calibration run
   of ``--calib-iters`` iterations (default 20) logs every iteration; the time per iteration is
   the spacing of the log lines over the second half of them (the first iterations are
   warm-up), and the budget is ``floor(M * 60 / seconds_per_iteration)`` iterations. The
   calibration run's experiment folder is deleted afterwards; its output stays in ``logs/``.
2. **Training options** (written to ``<out>/options/``): the file with ``--force-yml`` applied,
   ``name: <name>_bench<N>it``, ``total_iter: N``, the learning-rate schedule compressed to N
   (``milestones``, ``periods`` and ``warmup_iter`` scaled by N / the file's ``total_iter``, so a
   short run keeps the recipe's decays), one checkpoint at the end and no validation set (the
   test set scores the result). ``basicsr train`` on it; a rerun retrains (BasicSR archives
   the previous ``experiments/<name>``).
3. **Test options**: ``--test-opts`` (one per training file, in the same order) if given, with
   ``--force-yml`` entries whose keys exist in them; otherwise derived from the training options:
   their validation dataset (else the training one, without its training-only keys) with
   ``_train_``/``_val_`` in each ``dataroot`` file name replaced by ``_<--test-split>_`` (the
   names ``scripts/make_ixi_lmdb.py`` writes, e.g. ``IXI_T1_test_HR.lmdb``), and the
   training options' ``val.metrics``. Either way the weights are the run's
   ``net_g_latest.pth`` and ``val.method_name`` the method's label; with ``--self-ensemble``
   the test also runs with the x8 self-ensemble (label + ``+``, W²AMSN+ in Table III). Every
   method must be tested on the same data at the same scale.
4. **Results** in ``--out`` (default ``<workdir>/results/baselines``): ``comparison.md`` and
   ``comparison.csv`` (one row per method plus Bicubic: parameters and multiply-adds on a
   1x120x120 LR input as in Table II, iterations, training time, test time per slice, and the
   test-set means of the per-volume foreground and whole-slice PSNR/SSIM, Table III's
   convention), ``psnr_vs_params.png`` (Fig. 3(a): foreground PSNR against parameters, bicubic
   as a horizontal line) and ``benchmark.json`` (everything, with the options and logs used).

Times come from BasicSR's own log lines: training time is the training loop (from "Start
training" to "End of training"), test time per slice the test loop (forward pass, metrics and
the bicubic reference, from "Testing <set>..." to the last line) divided by the number of test
slices; the wall-clock times of the whole commands, start-up included, are in the CSV and JSON.
"""
from __future__ import annotations

import argparse
import copy
import datetime
import json
import math
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import yaml

from .experiments import metrics_options

__all__ = ["BenchmarkError", "RunFailed", "Method", "method_labels", "budget_train_options", "scale_schedule",
           "derive_test_options", "log_times", "seconds_per_iteration", "iterations_for_minutes",
           "comparison_rows", "comparison_markdown", "plot_psnr_vs_params", "run_benchmark",
           "configure_parser", "run", "main"]

PROG = "benchmark_baselines"
#: LR input size of the parameter/multiply-add count (Table II's MACs are params x 120 x 120)
MACS_INPUT = (120, 120)
METRICS = ("psnr_fg", "ssim_fg", "psnr", "ssim")
#: dataset keys that only make sense in training (dropped when a test set is derived)
_TRAIN_ONLY_KEYS = ("gt_size", "use_hflip", "use_rot", "num_worker_per_gpu", "batch_size_per_gpu",
                    "dataset_enlarge_ratio", "prefetch_mode", "pin_memory", "persistent_workers")
_SECTION_ORDER = ("name", "model_type", "scale", "num_gpu", "manual_seed", "datasets", "network_g",
                  "path", "train", "val", "logger", "dist_params")
_SPLIT_RE = re.compile(r"_(train|val)_")
_LOG_RE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) \w+: (.*)$")
_ITER_RE = re.compile(r"\[epoch:\s*\d+, iter:\s*([\d,]+),")


class BenchmarkError(RuntimeError):
    """A problem the user can fix (a file, an option); the message is one line."""


class RunFailed(BenchmarkError):
    """A ``basicsr train|test`` run failed; the message is one line naming its output file."""


@dataclass
class Method:
    """One network of the benchmark: its label, options files and results."""

    label: str
    source: Path
    train_opt: dict[str, Any]
    test_source: Path | None = None
    iters: int = 0
    calibration: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    tests: dict[str, dict[str, Any]] = field(default_factory=dict)
    size: dict[str, Any] = field(default_factory=dict)


def _say(msg: str) -> None:
    print(f"[{PROG}] {msg}", flush=True)


# --- options ---------------------------------------------------------------------------------
def method_labels(paths: Sequence[str | os.PathLike]) -> list[str]:
    """Labels from options file names: the stem without ``train_`` and without the suffix all
    stems share, e.g. ``train_W2AMSN_S_T1_x2.yml``, ``train_EDSR_T1_x2.yml`` -> ``W2AMSN_S``,
    ``EDSR``. Raises :class:`BenchmarkError` if two labels are equal."""
    stems = [Path(p).name.split(".")[0].removeprefix("train_") for p in paths]
    if len(stems) > 1:
        common = os.path.commonprefix([s[::-1] for s in stems])[::-1]
        common = common[common.find("_"):] if "_" in common else ""  # whole "_"-parts only
        if common and all(len(s) > len(common) for s in stems):
            stems = [s[: -len(common)] for s in stems]
    seen: dict[str, str] = {}
    for label, path in zip(stems, paths):
        if label in seen:
            raise BenchmarkError(f"{path} and {seen[label]} give the same label {label!r}; "
                                 "name the methods with --labels")
        seen[label] = str(path)
    return stems


def scale_schedule(train: dict[str, Any], iters: int) -> None:
    """Set ``train.total_iter`` to ``iters`` and compress the learning-rate schedule with it:
    ``milestones`` (MultiStepLR), ``periods`` (CosineAnnealingRestartLR; the last one is set
    so they add up to ``iters``) and ``warmup_iter`` scaled by ``iters / total_iter``."""
    factor = iters / int(train["total_iter"])
    train["total_iter"] = iters
    sched = train.get("scheduler") or {}
    if "milestones" in sched:
        sched["milestones"] = sorted({m for m in (round(x * factor) for x in sched["milestones"])
                                      if 0 < m < iters})
    if "periods" in sched:
        periods = [max(1, round(p * factor)) for p in sched["periods"]]
        periods[-1] = max(1, iters - sum(periods[:-1]))
        sched["periods"] = periods
    if (train.get("warmup_iter") or -1) > 0:
        train["warmup_iter"] = max(1, round(train["warmup_iter"] * factor))


def budget_train_options(opt: dict[str, Any], iters: int, name: str, *, print_freq: int | None = None
                         ) -> dict[str, Any]:
    """Training options of one benchmark run (module doc, step 2): ``name``, ``iters``
    iterations with the schedule compressed, one checkpoint at the end, no validation set."""
    out = copy.deepcopy(opt)
    out["name"] = name
    scale_schedule(out["train"], iters)
    out["datasets"].pop("val", None)
    out.setdefault("path", {})["resume_state"] = None
    logger = out.setdefault("logger", {})
    logger["save_checkpoint_freq"] = iters
    logger["print_freq"] = print_freq or min(int(logger.get("print_freq", 100)), iters)
    if out.get("val") is not None:
        out["val"]["val_freq"] = iters
    return out


def _test_root(path: str, split: str, where: str) -> str:
    head, tail = os.path.split(path)
    if not _SPLIT_RE.search(tail):
        raise BenchmarkError(f"{where}: cannot derive the {split} set from {path} (no _train_ or "
                             "_val_ in its name); pass --test-opts")
    return os.path.join(head, _SPLIT_RE.sub(f"_{split}_", tail, count=1))


def derive_test_options(train_opt: dict[str, Any], label: str, weights: str, *, split: str = "test",
                        self_ensemble: bool = False, test_opt: dict[str, Any] | None = None,
                        where: str = "<options>") -> dict[str, Any]:
    """Test options of one method (module doc, step 3): ``test_opt`` (a ``--test-opts`` file)
    or options derived from ``train_opt``, with the run's ``weights`` and ``label``."""
    plus = "plus_" if self_ensemble else ""
    if test_opt is not None:
        out = copy.deepcopy(test_opt)
    else:
        datasets = train_opt["datasets"]
        base = copy.deepcopy(datasets.get("val") or datasets["train"])
        for key in _TRAIN_ONLY_KEYS:
            base.pop(key, None)
        base.pop("phase", None)
        for key in ("dataroot_gt", "dataroot_lq"):
            base[key] = _test_root(str(base[key]), split, f"{where}: datasets")
        old = str(base.get("name", "data"))
        base["name"] = re.sub(r"(train|val)$", split, old) if re.search(r"(train|val)$", old) else f"{old}_{split}"
        metrics = (train_opt.get("val") or {}).get("metrics")
        if not metrics:
            metrics = metrics_options(train_opt["scale"])
        out = {key: copy.deepcopy(train_opt[key]) for key in ("model_type", "scale", "num_gpu",
                                                             "manual_seed") if key in train_opt}
        out["datasets"] = {"test_1": base}
        out["network_g"] = copy.deepcopy(train_opt["network_g"])
        out["val"] = {"save_img": False, "suffix": None, "metrics": copy.deepcopy(metrics)}
    out["name"] = f"test_{plus}{train_opt['name']}"
    out["path"] = {**(out.get("path") or {}), "pretrain_network_g": weights, "strict_load_g": True,
                   "param_key_g": "params"}
    val = out.setdefault("val", {})
    val.update(self_ensemble=self_ensemble, results_table=True,
               method_name=label + ("+" if self_ensemble else ""))
    return out


def _has_key(opt: dict[str, Any], entry: str) -> bool:
    node: Any = opt
    for key in entry.split("=", 1)[0].strip().split(":"):
        if not isinstance(node, dict) or key not in node:
            return False
        node = node[key]
    return True


def _load_options(path: Path, force_yml: Sequence[str], *, is_train: bool, only_existing: bool = False
                  ) -> dict[str, Any]:
    """Options file with ``--force-yml`` applied and checked (one-line errors)."""
    from .option_check import OptionsError, check_options_file

    if not path.is_file():
        raise BenchmarkError(f"{path}: options file not found")
    if only_existing:
        with open(path, encoding="utf-8") as f:
            raw = yaml.safe_load(f)
        force_yml = [e for e in force_yml if isinstance(raw, dict) and _has_key(raw, e)]
    try:
        # data paths are checked relative to --workdir (_check_data), not the current directory
        opt = check_options_file(str(path), force_yml=list(force_yml), is_train=is_train,
                                 check_paths=False)
    except OptionsError as err:
        raise BenchmarkError(str(err)) from None
    if is_train:
        for key in ("train", "network_g"):
            if not isinstance(opt.get(key), dict):
                raise BenchmarkError(f"{path}: no {key!r} section: not a training options file")
        if "train" not in opt["datasets"]:
            raise BenchmarkError(f"{path}: no datasets:train section: not a training options file")
    return opt


def _check_data(opt: dict[str, Any], where: str, workdir: Path) -> None:
    for phase, section in opt["datasets"].items():
        for key in ("dataroot_gt", "dataroot_lq"):
            if key in section and not (workdir / section[key]).exists():
                raise BenchmarkError(f"{where}: datasets:{phase}:{key}: {section[key]} not found "
                                     f"(relative paths are taken from --workdir {workdir})")


def _dump(path: Path, opt: dict[str, Any], note: str) -> Path:
    """Write ``opt`` as YAML in BasicSR's section order (general, datasets, network_g, path,
    train, val, logger, dist_params), atomically, under a one-line comment."""
    from .models.results_table import write_text

    ordered = {k: opt[k] for k in _SECTION_ORDER if k in opt}
    ordered.update({k: v for k, v in opt.items() if k not in ordered})
    write_text(path, f"# {note}\n" + yaml.safe_dump(ordered, sort_keys=False, allow_unicode=True,
                                                    default_flow_style=None, width=120))
    return path


# --- logs and timing -------------------------------------------------------------------------
def log_times(text: str) -> list[tuple[float, str]]:
    """``(seconds since the epoch, message)`` of each BasicSR log line in ``text``."""
    out = []
    for line in text.splitlines():
        match = _LOG_RE.match(line)
        if match:
            stamp = datetime.datetime.strptime(match[1], "%Y-%m-%d %H:%M:%S,%f")
            out.append((stamp.timestamp(), match[2]))
    return out


def _span(lines: list[tuple[float, str]], start: str, end: str | None) -> float | None:
    """Seconds from the first line starting with ``start`` to the next starting with ``end``
    (None: to the last line)."""
    begin = next((t for t, msg in lines if msg.startswith(start)), None)
    if begin is None:
        return None
    after = [(t, msg) for t, msg in lines if t >= begin]
    stop = after[-1][0] if end is None else next((t for t, msg in after if msg.startswith(end)), None)
    return None if stop is None else stop - begin


def seconds_per_iteration(text: str) -> float:
    """Training seconds per iteration from a run logged every iteration: the spacing of the
    iteration lines over their second half (the first iterations are warm-up)."""
    points = []
    for t, msg in log_times(text):
        match = _ITER_RE.search(msg)
        if match:
            points.append((int(match[1].replace(",", "")), t))
    if len(points) < 4:
        raise BenchmarkError(f"calibration logged {len(points)} iterations; need at least 4 "
                             "(raise --calib-iters)")
    (i0, t0), (i1, t1) = points[len(points) // 2], points[-1]
    return max(t1 - t0, 1e-3) / (i1 - i0)


def iterations_for_minutes(minutes: float, sec_per_iter: float) -> int:
    """Iterations that fit in ``minutes`` of training at ``sec_per_iter`` (at least 1)."""
    return max(1, int(minutes * 60.0 / sec_per_iter))


def _basicsr(verb: str, opt_path: Path, workdir: Path, log_path: Path, what: str) -> tuple[str, float]:
    """Run ``basicsr <verb> -opt <opt_path>`` in ``workdir``; output to ``log_path``.
    Returns (output, wall seconds); a failure raises :class:`BenchmarkError`."""
    cmd = [sys.executable, "-m", "w2amsn_plugin.cli", verb, "-opt", str(opt_path)]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with open(log_path, "w", encoding="utf-8") as log:
        log.write("$ " + " ".join(cmd) + "\n")
        log.flush()
        code = subprocess.run(cmd, cwd=workdir, stdout=log, stderr=subprocess.STDOUT).returncode
    wall = time.perf_counter() - t0
    text = log_path.read_text(encoding="utf-8", errors="replace")
    if code != 0:
        last = next((ln.strip() for ln in reversed(text.splitlines()) if ln.strip()), "")
        raise RunFailed(f"{what} failed (exit {code}): {last[:300]}; full output: {log_path}")
    return text, wall


# --- results ---------------------------------------------------------------------------------
def _volume_csv(results_dir: Path) -> Path:
    found = sorted(results_dir.glob("*_volumes.csv"))
    if len(found) != 1:
        raise BenchmarkError(f"{results_dir}: expected one per-volume CSV from basicsr test, found {len(found)}")
    return found[0]


def _means(rows: list[dict[str, Any]], prefix: str = "") -> dict[str, float]:
    """Test-set means of the per-volume values (Table III's convention), NaN if none."""
    from .models.volume_scores import finite_mean

    return {m: finite_mean([r.get(prefix + m, math.nan) for r in rows]) for m in METRICS}


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

    from .models.results_table import write_figure

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


def _finite(value: Any) -> Any:
    """``value`` with NaN/inf floats as None (strict JSON)."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _machine() -> str:
    import torch

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU ({os.cpu_count()} cores)"
    return f"{device}, {platform.processor() or platform.machine()}, torch {torch.__version__}"


# --- the benchmark ---------------------------------------------------------------------------
def _prepare(args: argparse.Namespace, workdir: Path) -> list[Method]:
    """Load and check every options file before anything runs (fail fast)."""
    train_paths = [Path(p).resolve() for p in args.train_opts]
    test_paths = [Path(p).resolve() for p in args.test_opts] if args.test_opts else []
    if test_paths and len(test_paths) != len(train_paths):
        raise BenchmarkError(f"--test-opts: {len(test_paths)} files for {len(train_paths)} --train-opts "
                             "(one per training file, in the same order)")
    if args.labels and len(args.labels) != len(train_paths):
        raise BenchmarkError(f"--labels: {len(args.labels)} labels for {len(train_paths)} --train-opts")
    labels = list(args.labels) if args.labels else method_labels(args.train_opts)
    if len(set(labels)) != len(labels):
        raise BenchmarkError(f"--labels: repeated label in {labels}")
    force = list(args.force_yml or [])
    methods = []
    for i, (label, path) in enumerate(zip(labels, train_paths)):
        opt = _load_options(path, force, is_train=True)
        _check_data({"datasets": {"train": opt["datasets"]["train"]}}, str(path), workdir)
        methods.append(Method(label=label, source=path, train_opt=opt,
                              test_source=test_paths[i] if test_paths else None))
    tested: dict[tuple, str] = {}
    for m in methods:  # derive once now to check every test set exists and all are the same
        test = _test_options(m, args, weights="<weights>")
        _check_data(test, str(m.test_source or m.source), workdir)
        if len(test["datasets"]) != 1:
            raise BenchmarkError(f"{m.test_source}: {len(test['datasets'])} test datasets; the benchmark "
                                 "compares the methods on one")
        data = next(iter(test["datasets"].values()))
        tested[(int(test["scale"]), str(data["dataroot_gt"]), str(data["dataroot_lq"]))] = m.label
    if len(tested) > 1:
        raise BenchmarkError("the methods are tested on different data or scales: " + "; ".join(
            f"{label}: x{k[0]} {k[1]}" for k, label in tested.items()) + "; a comparison needs one test set")
    return methods


def _test_options(m: Method, args: argparse.Namespace, weights: str, self_ensemble: bool = False
                  ) -> dict[str, Any]:
    test_opt = None
    if m.test_source is not None:
        test_opt = _load_options(m.test_source, list(args.force_yml or []), is_train=False,
                                 only_existing=True)
    return derive_test_options(m.train_opt, m.label, weights, split=args.test_split,
                               self_ensemble=self_ensemble, test_opt=test_opt, where=str(m.source))


def _calibrate(m: Method, args: argparse.Namespace, workdir: Path, out: Path) -> int:
    """Iterations of ``args.minutes`` for method ``m`` (module doc, step 1)."""
    name = f"{m.train_opt['name']}_bench_calib"
    opt = budget_train_options(m.train_opt, args.calib_iters, name, print_freq=1)
    opt["logger"]["use_tb_logger"] = False
    opt_path = _dump(out / "options" / f"calibrate_{m.label}.yml", opt,
                     f"{PROG}: calibration of {m.label} (from {m.source})")
    _say(f"{m.label}: calibrating the minutes budget ({args.calib_iters} iterations)")
    text, _ = _basicsr("train", opt_path, workdir, out / "logs" / f"calibrate_{m.label}.txt",
                       f"calibration training of {m.label}")
    shutil.rmtree(workdir / "experiments" / name, ignore_errors=True)
    sec = seconds_per_iteration(text)
    iters = iterations_for_minutes(args.minutes, sec)
    m.calibration = {"iters": args.calib_iters, "s_per_iter": sec, "minutes": args.minutes}
    _say(f"{m.label}: {sec:.4f} s/iteration -> {iters} iterations in {args.minutes:g} min")
    return iters


def _train(m: Method, args: argparse.Namespace, workdir: Path, out: Path) -> Path:
    name = f"{m.train_opt['name']}_bench{m.iters}it"
    opt = budget_train_options(m.train_opt, m.iters, name)
    m.train_opt = opt
    opt_path = _dump(out / "options" / f"train_{m.label}.yml", opt,
                     f"{PROG}: {m.label}, {m.iters} iterations (from {m.source})")
    _say(f"{m.label}: basicsr train ({opt['network_g']['type']}, {m.iters} iterations) -> experiments/{name}")
    log = out / "logs" / f"train_{m.label}.txt"
    text, wall = _basicsr("train", opt_path, workdir, log, f"training {m.label}")
    weights = workdir / "experiments" / name / "models" / "net_g_latest.pth"
    if not weights.is_file():
        raise RunFailed(f"training {m.label} wrote no {weights}; full output: {log}")
    loop = _span(log_times(text), "Start training", "End of training")
    m.train = {"options": str(opt_path), "log": str(log), "weights": str(weights), "wall_s": wall,
               "loop_s": loop if loop is not None else wall, "schedule": opt["train"].get("scheduler")}
    _say(f"{m.label}: trained in {m.train['loop_s']:.1f} s (command {wall:.1f} s)")
    return weights


def _test(m: Method, args: argparse.Namespace, workdir: Path, out: Path, weights: Path,
          self_ensemble: bool) -> None:
    from .models.results_table import read_volume_rows

    opt = _test_options(m, args, str(weights), self_ensemble)
    label = opt["val"]["method_name"]
    tag = f"{m.label}_plus" if self_ensemble else m.label
    opt_path = _dump(out / "options" / f"test_{tag}.yml", opt, f"{PROG}: {label} on the test set")
    _say(f"{label}: basicsr test -> results/{opt['name']}")
    log = out / "logs" / f"test_{tag}.txt"
    text, wall = _basicsr("test", opt_path, workdir, log, f"testing {label}")
    csv_path = _volume_csv(workdir / "results" / opt["name"])
    rows = [r for r in read_volume_rows(csv_path) if r["method"] == label]
    n_slices = sum(r["n_slices"] for r in rows)
    loop = _span(log_times(text), "Testing ", None)
    data = next(iter(opt["datasets"].values()))
    m.tests[label] = {"options": str(opt_path), "log": str(log), "csv": str(csv_path),
                      "self_ensemble": self_ensemble, "wall_s": wall,
                      "s_per_slice": (loop if loop is not None else wall) / max(n_slices, 1),
                      "n_volumes": len(rows), "n_slices": n_slices, "metrics": _means(rows),
                      "bicubic": _means(rows, "bicubic_"), "dataroot_gt": data["dataroot_gt"],
                      "modality": rows[0]["modality"] if rows else "-", "scale": opt["scale"]}
    _say(f"{label}: PSNR fg {m.tests[label]['metrics']['psnr_fg']:.2f} dB "
         f"(bicubic {m.tests[label]['bicubic']['psnr_fg']:.2f}), {n_slices} slices")


def run_benchmark(args: argparse.Namespace) -> dict[str, Any]:
    """Train and test every method, write the results (module doc); return ``benchmark.json``."""
    from .models.results_table import write_csv, write_text
    from .stats import count

    workdir = Path(args.workdir).resolve()
    out = Path(args.out).resolve() if args.out else workdir / "results" / "baselines"
    methods = _prepare(args, workdir)
    for m in methods:
        try:
            m.size = count(m.train_opt["network_g"], MACS_INPUT)
        except (ValueError, TypeError, RuntimeError) as err:
            _say(f"{m.label}: cannot count parameters/MACs: {err}")
    for m in methods:
        m.iters = args.iters if args.iters else _calibrate(m, args, workdir, out)
        weights = _train(m, args, workdir, out)
        for plus in ((False, True) if args.self_ensemble else (False,)):
            _test(m, args, workdir, out, weights, plus)
    rows = comparison_rows(methods)
    first = next(iter(methods[0].tests.values()))
    budget = f"{args.iters} iterations" if args.iters else f"{args.minutes:g} min of training per method"
    info = {"modality": first["modality"], "scale": first["scale"], "budget": budget,
            "test_set": first["dataroot_gt"], "machine": _machine()}
    files = {name: str(out / name) for name in
             ("comparison.md", "comparison.csv", "psnr_vs_params.png", "benchmark.json")}
    write_csv(out / "comparison.csv", rows)
    write_text(out / "comparison.md", comparison_markdown(rows, info))
    plot_psnr_vs_params(rows, out / "psnr_vs_params.png",
                        f"PSNR vs parameters: {info['modality']} ×{info['scale']}, {budget}")
    report = {"settings": {"iters": args.iters, "minutes": args.minutes, "calib_iters": args.calib_iters,
                           "self_ensemble": args.self_ensemble, "force_yml": list(args.force_yml or []),
                           "test_split": args.test_split, "workdir": str(workdir)},
              **info, "rows": rows, "files": files,
              "methods": {m.label: {"source": str(m.source), "test_source": str(m.test_source or ""),
                                    "network_g": m.train_opt["network_g"], "iters": m.iters,
                                    "size": m.size, "calibration": m.calibration, "train": m.train,
                                    "tests": m.tests} for m in methods}}
    write_text(out / "benchmark.json", json.dumps(_finite(report), indent=1) + "\n")
    return report


# --- command line ----------------------------------------------------------------------------
def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``scripts/benchmark_baselines.py``."""
    parser.add_argument("--train-opts", nargs="+", required=True, metavar="YML",
                        help="BasicSR training options, one per method (e.g. options/train/*/train_*_T1_x2.yml)")
    budget = parser.add_mutually_exclusive_group(required=True)
    budget.add_argument("--iters", type=int, help="training iterations per method")
    budget.add_argument("--minutes", type=float,
                        help="training minutes per method (converted to iterations by a calibration run)")
    parser.add_argument("--calib-iters", type=int, default=20, metavar="N",
                        help="iterations of the --minutes calibration run (default 20; the second half is timed)")
    parser.add_argument("--test-opts", nargs="+", metavar="YML",
                        help="test options, one per --train-opts file in the same order "
                             "(default: derived from the training options, see --test-split)")
    parser.add_argument("--test-split", default="test", metavar="SPLIT",
                        help="split of the derived test set: _train_/_val_ in the dataroot names "
                             "become _SPLIT_ (default: test)")
    parser.add_argument("--labels", nargs="+", metavar="NAME",
                        help="method names (default: from the file names, e.g. W2AMSN, EDSR)")
    parser.add_argument("--force-yml", nargs="+", default=[], metavar="KEY=VALUE",
                        help="override options as BasicSR's --force_yml, e.g. num_gpu=1 "
                             "datasets:train:batch_size_per_gpu=16 (test options: the keys they have)")
    parser.add_argument("--self-ensemble", action="store_true",
                        help="also test every method with the x8 self-ensemble (rows NAME+)")
    parser.add_argument("--workdir", default=".", metavar="DIR",
                        help="where experiments/ and results/ go and relative dataroots start (default: cwd)")
    parser.add_argument("--out", metavar="DIR", help="results folder (default: WORKDIR/results/baselines)")


def run(args: argparse.Namespace) -> int:
    """Run the benchmark; print the table. Returns the exit status (2: a user error)."""
    if args.iters is not None and args.iters < 1:
        print(f"{PROG}: error: --iters must be at least 1", file=sys.stderr)
        return 2
    if args.minutes is not None and not args.minutes > 0:
        print(f"{PROG}: error: --minutes must be positive", file=sys.stderr)
        return 2
    if args.calib_iters < 4:
        print(f"{PROG}: error: --calib-iters must be at least 4", file=sys.stderr)
        return 2
    try:
        report = run_benchmark(args)
    except BenchmarkError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 1 if isinstance(err, RunFailed) else 2
    print(Path(report["files"]["comparison.md"]).read_text(encoding="utf-8"))
    for name, path in report["files"].items():
        _say(f"{name:20s} {path}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python scripts/benchmark_baselines.py ...`` (see the module doc)."""
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0].replace("\n", " "))
    configure_parser(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
