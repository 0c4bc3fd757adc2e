"""``w2amsn baselines``: train and test W²AMSN and baselines with one budget; comparison table,
Table III's shape and the PSNR-vs-parameters and PSNR-vs-time plots (what is run and measured:
:mod:`w2amsn_plugin.benchmarks.baselines.runner`; ``--methods``:
:mod:`w2amsn_plugin.benchmarks.baselines.methods`)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from ..benchmarks.baselines.method import PROG, BenchmarkError, RunFailed, say
from ..results.output_paths import output_folder_problem

__all__ = ["configure_parser", "run", "main"]


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``scripts/benchmark_baselines.py``."""
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--train-opts", nargs="+", metavar="YML",
                       help="BasicSR training options, one per method "
                            "(e.g. options/train/*/train_*_T1_x2.yml)")
    which.add_argument("--methods", nargs="+", metavar="NAME",
                       help="registered networks (w2amsn stats lists them), each trained with the "
                            "recipe and data of --like and tested with --like-test")
    parser.add_argument("--like", metavar="YML", help="with --methods: the training options whose data, "
                        "patches, batch and schedule every method uses (its network_g is replaced)")
    parser.add_argument("--like-test", metavar="YML", help="with --methods: the test options of the "
                        "test set (default: derived from --like, see --test-split)")
    parser.add_argument("--small", action="store_true", help="with --methods: each network cut to a "
                        "few hundred thousand parameters (the arch's SMALL entry), for CPUs")
    parser.add_argument("--plus", nargs="*", metavar="NAME", default=None,
                        help="methods also tested with the x8 self-ensemble (default with --methods: "
                             "W2AMSN, Table III's W²AMSN+)")
    budget = parser.add_mutually_exclusive_group(required=True)
    budget.add_argument("--iters", type=int, help="training iterations per method")
    budget.add_argument("--minutes", type=float,
                        help="training minutes per method (converted to iterations by a calibration run)")
    parser.add_argument("--calib-iters", type=int, default=20, metavar="N",
                        help="iterations of the --minutes calibration run "
                             "(default 20; the second half is timed)")
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
    from ..benchmarks.baselines.methods import write_method_options  # (here: --help stays free of torch)
    from ..benchmarks.baselines.runner import run_benchmark

    if args.iters is not None and args.iters < 1:
        print(f"{PROG}: error: --iters must be at least 1", file=sys.stderr)
        return 2
    if args.minutes is not None and not args.minutes > 0:
        print(f"{PROG}: error: --minutes must be positive", file=sys.stderr)
        return 2
    if args.calib_iters < 4:
        print(f"{PROG}: error: --calib-iters must be at least 4", file=sys.stderr)
        return 2
    workdir = Path(args.workdir)
    out = Path(args.out) if args.out else workdir / "results" / "baselines"
    problem = output_folder_problem(workdir) or output_folder_problem(out)
    if problem:  # before any training
        print(f"{PROG}: error: {problem}", file=sys.stderr)
        return 2
    if args.methods and not args.like:
        print(f"{PROG}: error: --methods needs --like (the training options to take data and recipe from)",
              file=sys.stderr)
        return 2
    try:
        if args.methods:
            args.train_opts, args.test_opts, args.labels = write_method_options(
                args.methods, Path(args.like), Path(args.like_test) if args.like_test else None,
                out / "options", small=args.small)
            args.test_opts = args.test_opts or None
            if args.plus is None:
                args.plus = [m for m in args.methods if m == "W2AMSN"]
        report = run_benchmark(args)
    except BenchmarkError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 1 if isinstance(err, RunFailed) else 2
    print(Path(report["files"]["comparison.md"]).read_text(encoding="utf-8"))
    for name, path in report["files"].items():
        say(f"{name:20s} {path}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python scripts/benchmark_baselines.py ...`` (see the module doc)."""
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0].replace("\n", " "))
    configure_parser(parser)
    return run(parser.parse_args(argv))


