"""``w2amsn stats``: parameters and multiply-adds of W²AMSN, W²AMSN-S, EDSR and RCAN as configured
in :data:`w2amsn_plugin.archs.PRESETS`, next to the paper's Table II (T2 x2), counted by
:func:`w2amsn_plugin.archs.complexity.count`.

Two MAC columns are printed, ``MACs`` (what our forward pass executes) and ``MACs (nominal)``
(every layer as the paper draws it, Table II's convention); the module doc of
:mod:`w2amsn_plugin.archs.complexity` says how they are counted and why they differ.

A second table gives W²AMSN's size for candidate S2/W2 output widths (``mid_feat``, eq. 10): the
evidence for the default width (docs/model-size.md).
"""
from __future__ import annotations

import argparse
import sys
from typing import Any


from ..archs.presets import PRESETS, preset

from ..archs.complexity import TABLE_II, UPSAMPLE_READING, count
from ..results.files import write_json
from ..results.output_paths import output_file_problem

__all__ = ["configure_parser", "run"]

WIDTH_MULTIPLES = (1, 2, 4, 8)


def _model_rows(scales: list[int], size: tuple[int, int]) -> list[dict[str, Any]]:
    rows = []
    for name in PRESETS:
        for scale in scales:
            row: dict[str, Any] = {"model": name, "scale": scale}
            try:
                row.update(count(preset(name, scale), size))
            except ValueError as err:  # e.g. BasicSR's Upsample: only 2^n and 3
                row["error"] = str(err)
            if scale == 2 and name in TABLE_II:
                row["paper_params"], row["paper_macs"] = TABLE_II[name]
            rows.append(row)
    return rows


def _width_rows(size: tuple[int, int]) -> list[dict[str, Any]]:
    rows = []
    for multiple in WIDTH_MULTIPLES:
        row: dict[str, Any] = {"mid_feat_multiple": multiple}
        for name in ("W2AMSN", "W2AMSN-S"):
            opt = preset(name, 2)
            opt["mid_feat"] = multiple * opt["num_feat"]
            row["mid_feat"] = opt["mid_feat"]
            row[name] = count(opt, size)
        blocks = PRESETS["W2AMSN"]["num_block"] - PRESETS["W2AMSN-S"]["num_block"]
        row["per_block_params"] = (row["W2AMSN"]["params"] - row["W2AMSN-S"]["params"]) / blocks
        rows.append(row)
    return rows


def _upsample_rows(scales: list[int], size: tuple[int, int]) -> list[dict[str, Any]]:
    """W²AMSN and W²AMSN-S with the upsampler on 8a features (UPSAMPLE_READING) per scale."""
    rows = []
    for name in ("W2AMSN", "W2AMSN-S"):
        for scale in scales:
            row: dict[str, Any] = {"model": name, "scale": scale, **UPSAMPLE_READING}
            row.update(count({**preset(name, scale), **UPSAMPLE_READING}, size))
            if scale == 2:
                row["paper_params"], row["paper_macs"] = TABLE_II[name]
            rows.append(row)
    return rows


def _m(n: float) -> str:
    return f"{n / 1e6:.2f}M"


def _g(n: float) -> str:
    return f"{n / 1e9:.2f}G"


def _format(models: list[dict[str, Any]], widths: list[dict[str, Any]], size: tuple[int, int],
            upsample: list[dict[str, Any]] = ()) -> str:
    h, w = size
    lines = [f"Model size on a 1x{h}x{w} LR input (MACs = FLOPs/2 from torch.utils.flop_counter);",
             "paper = Table II (T2 x2).", "",
             "| model | scale | params | MACs | MACs (nominal) | paper params | paper MACs |",
             "|---|---|---|---|---|---|---|"]
    for r in models:
        paper = (_m(r["paper_params"]), _g(r["paper_macs"])) if "paper_params" in r else ("", "")
        if "error" in r:
            lines.append(f"| {r['model']} | x{r['scale']} | n/a: {r['error']} | | "
                         f"| {paper[0]} | {paper[1]} |")
            continue
        lines.append(f"| {r['model']} | x{r['scale']} | {_m(r['params'])} | {_g(r['macs'])} | "
                     f"{_g(r['macs_nominal'])} | {paper[0]} | {paper[1]} |")
    per_block = (TABLE_II["W2AMSN"][0] - TABLE_II["W2AMSN-S"][0]) / (
        PRESETS["W2AMSN"]["num_block"] - PRESETS["W2AMSN-S"]["num_block"])
    lines += ["", "S2/W2 output width (mid_feat, eq. 10) vs Table II, x2:", "",
              "| mid_feat | W2AMSN params | W2AMSN MACs (nominal) | W2AMSN-S params "
              "| W2AMSN-S MACs (nominal) | per block (t=20 minus t=8, /12) |",
              "|---|---|---|---|---|---|",
              f"| paper | 11.67M | 167.91G | 5.93M | 85.33G | {per_block / 1e3:.0f}k |"]
    for r in widths:
        big, small = r["W2AMSN"], r["W2AMSN-S"]
        lines.append(f"| {r['mid_feat_multiple']}a = {r['mid_feat']} | {_m(big['params'])} | "
                     f"{_g(big['macs_nominal'])} | {_m(small['params'])} | "
                     f"{_g(small['macs_nominal'])} | {r['per_block_params'] / 1e3:.0f}k |")
    if upsample:
        lines += ["", f"Upsampler on 8a = {UPSAMPLE_READING['upsample_feat']} features "
                  "(upsample_feat; conv1x1 a -> 8a, EDSR-style conv3x3 8a -> p²8a per factor p):", "",
                  "| model | scale | params | MACs (nominal) | paper params | paper MACs |",
                  "|---|---|---|---|---|---|"]
        for r in upsample:
            paper = (_m(r["paper_params"]), _g(r["paper_macs"])) if "paper_params" in r else ("", "")
            lines.append(f"| {r['model']} | x{r['scale']} | {_m(r['params'])} | "
                         f"{_g(r['macs_nominal'])} | {paper[0]} | {paper[1]} |")
    return "\n".join(lines)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``w2amsn stats``."""
    parser.add_argument("--scale", type=int, nargs="+", default=[2, 3, 4], metavar="S",
                        help="upscaling factor(s) (default: 2 3 4)")
    parser.add_argument("--size", type=int, nargs=2, default=[120, 120], metavar=("H", "W"),
                        help="LR input size (default: 120 120, which Table II's MACs imply)")
    parser.add_argument("--json", metavar="FILE", help="also write the numbers to FILE as JSON")


def run(args: argparse.Namespace) -> int:
    """Print the tables; write JSON if asked. Returns the exit status."""
    size = (int(args.size[0]), int(args.size[1]))
    bad = [f"--scale {s}" for s in args.scale if s < 1] + [f"--size {n}" for n in size if n < 1]
    if bad:
        print(f"w2amsn stats: error: {bad[0]}: must be a positive integer", file=sys.stderr)
        return 2
    problem = output_file_problem(args.json) if args.json else None
    if problem:  # before the counting (issue 17)
        print(f"w2amsn stats: error: {problem}", file=sys.stderr)
        return 2
    models = _model_rows(list(args.scale), size)
    widths = _width_rows(size)
    upsample = _upsample_rows(list(args.scale), size)
    print(_format(models, widths, size, upsample))
    if args.json:
        try:
            write_json(args.json, {"input_size": list(size), "models": models,
                                   "mid_feat_candidates": widths,
                                   "upsample_feat_reading": upsample})
        except OSError as err:
            print(f"w2amsn stats: error: cannot write {args.json}: {err.strerror or err}",
                  file=sys.stderr)
            return 2
    return 0
