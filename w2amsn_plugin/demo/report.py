"""The demo's report: one line per test row and their mean (the README's headline), from the
per-volume CSVs of ``basicsr test`` (docs/demo.md, "Result")."""
from __future__ import annotations

import math
from typing import Any, Sequence

from ..results.tables import BICUBIC, volumes_from_rows
from ..results.volume_scores import set_means

__all__ = ["TARGET_GAIN_DB", "demo_rows", "rows_markdown", "method_means"]

#: the demo's target: mean foreground-PSNR gain over bicubic on the test rows
TARGET_GAIN_DB = 1.5


def method_means(rows: Sequence[dict[str, Any]], method: str) -> dict[str, dict[str, float]]:
    """Test-set means (:func:`~w2amsn_plugin.results.volume_scores.set_means`) of ``method`` and
    of bicubic on the same slices."""
    volumes = volumes_from_rows([r for r in rows if r["method"] == method])
    return {"method": set_means(volumes, method), "bicubic": set_means(volumes, BICUBIC)}


def demo_rows(rows: Sequence[dict[str, Any]], plain: str, plus: str, order: Sequence[str],
              what: dict[str, str]) -> list[dict[str, Any]]:
    """One dict per test row (in ``order``) and a last ``mean`` row: foreground PSNR/SSIM of
    bicubic and the network, the gain, and the x8 self-ensemble's gain on its slices."""
    by = {(r["subject"], r["method"]): r for r in rows}
    out = []
    for subject in order:
        p, q = by.get((subject, plain)), by.get((subject, plus))
        if p is None:
            continue
        out.append({"subject": subject, "what": what.get(subject, ""), "n_slices": p["n_slices"],
                    "bicubic_psnr_fg": p["bicubic_psnr_fg"], "bicubic_ssim_fg": p["bicubic_ssim_fg"],
                    "w2amsn_psnr_fg": p["psnr_fg"], "w2amsn_ssim_fg": p["ssim_fg"],
                    "gain_db": p["psnr_fg"] - p["bicubic_psnr_fg"],
                    "plus_n_slices": q["n_slices"] if q else 0,
                    "plus_gain_db": q["psnr_fg"] - q["bicubic_psnr_fg"] if q else math.nan})
    if not out:
        raise SystemExit("demo: basicsr test scored none of the test rows")
    keys = [k for k in out[0] if k not in ("subject", "what")]
    mean = {k: math.fsum(r[k] for r in out) / len(out) for k in keys}
    return out + [{"subject": "mean", "what": "", **mean}]


def rows_markdown(rows: Sequence[dict[str, Any]]) -> str:
    """The Markdown table of :func:`demo_rows` (foreground PSNR dB / SSIM)."""
    lines = ["| test row | what | slices | Bicubic | W²AMSN | gain (dB) | W²AMSN+ gain (dB) |",
             "|:--|:--|--:|--:|--:|--:|--:|"]
    for r in rows:
        name = "**mean**" if r["subject"] == "mean" else r["subject"]
        slices = "" if r["subject"] == "mean" else str(r["n_slices"])
        lines.append(f"| {name} | {r['what']} | {slices} | "
                     f"{r['bicubic_psnr_fg']:.2f}/{r['bicubic_ssim_fg']:.4f} | "
                     f"{r['w2amsn_psnr_fg']:.2f}/{r['w2amsn_ssim_fg']:.4f} | {r['gain_db']:+.2f} | "
                     f"{r['plus_gain_db']:+.2f} |")
    return "\n".join(lines) + "\n"
