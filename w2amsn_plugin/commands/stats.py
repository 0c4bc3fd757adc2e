"""``w2amsn stats``: parameters and multiply-adds of every registered network as configured in
:data:`w2amsn_plugin.archs.PRESETS`, next to the paper's Table II (T1 x2) with the difference and,
beyond 5%, a reading of the paper's configuration (:mod:`w2amsn_plugin.benchmarks.model_size`;
counted by :func:`w2amsn_plugin.archs.complexity.count`).

Two MAC columns are printed, ``MACs`` (what our forward pass executes) and ``MACs (nominal)``
(every layer as the paper draws it, Table II's convention); the module doc of
:mod:`w2amsn_plugin.archs.complexity` says how they are counted and why they differ.

Further tables give W²AMSN's size for candidate S2/W2 output widths (``mid_feat``, eq. 10) and
with the upsampler on 8a features: the evidence for the defaults (docs/model-size.md).
"""
from __future__ import annotations

import argparse
import sys

from ..protocol import PAPER
from ..results.output_paths import output_file_problem

__all__ = ["configure_parser", "run"]


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``w2amsn stats``."""
    parser.add_argument("--scale", type=int, nargs="+", default=list(PAPER.scales), metavar="S",
                        help="upscaling factor(s) (default: the paper's, %(default)s)")
    parser.add_argument("--size", type=int, nargs=2, default=[120, 120], metavar=("H", "W"),
                        help="LR input size (default: 120 120, which Table II's MACs imply)")
    parser.add_argument("--json", metavar="FILE", help="also write the numbers to FILE as JSON")


def run(args: argparse.Namespace) -> int:
    """Print the tables; write JSON if asked. Returns the exit status."""
    from ..benchmarks.model_size import format_tables, model_rows, upsample_rows, width_rows
    from ..results.files import write_json  # (imported here: --help stays free of torch)

    size = (int(args.size[0]), int(args.size[1]))
    bad = [f"--scale {s}" for s in args.scale if s < 1] + [f"--size {n}" for n in size if n < 1]
    if bad:
        print(f"w2amsn stats: error: {bad[0]}: must be a positive integer", file=sys.stderr)
        return 2
    problem = output_file_problem(args.json) if args.json else None
    if problem:  # before the counting
        print(f"w2amsn stats: error: {problem}", file=sys.stderr)
        return 2
    models = model_rows(list(args.scale), size)
    widths = width_rows(size)
    upsample = upsample_rows(list(args.scale), size)
    print(format_tables(models, widths, size, upsample))
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
