"""``w2amsn bench [--quick] [--models NAME ...] [--json FILE] [--device cpu|cuda] [--threads N]
[--weights PTH]``:
measure this machine's limits and the plugin's speed against them (what is measured:
:mod:`w2amsn_plugin.benchmarks.suite`)."""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from ..results.output_paths import output_file_problem

__all__ = ["configure_parser", "run"]


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Options of ``w2amsn bench``."""
    parser.add_argument("--quick", action="store_true",
                        help="the short run (< 3 min on 2 cores): fewer networks, repetitions and "
                             "slices, no torch.compile")
    parser.add_argument("--json", metavar="FILE", help="also write every number to FILE as JSON")
    parser.add_argument("--models", nargs="+", metavar="NAME", default=None,
                        help="registered networks to measure instead of the profile's (w2amsn stats "
                             "lists them), e.g. --models RDN CSFM W2AMSN")
    parser.add_argument("--device", default="cpu",
                        help="cpu, cuda or cuda:N for the network rows (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=0, metavar="N",
                        help="torch threads (default: torch's choice, one per core; on a machine "
                             "shared with other jobs, the number of free cores)")
    parser.add_argument("--weights", default=None, metavar="PTH",
                        help="a trained checkpoint: also measure bf16's PSNR cost on the shipped "
                             "sample (e.g. experiments/<name>/models/net_g_latest.pth)")
    parser.add_argument("--opt", default=None, metavar="YAML",
                        help="options of --weights (default: the experiment's YAML, as "
                             "'w2amsn infer' finds it)")


def run(args: argparse.Namespace) -> int:
    """``w2amsn bench``: print the table (and write JSON); 0 unless the arguments are wrong."""
    import torch  # (imported here: --help stays free of torch)

    from ..benchmarks.suite import PROFILES, report, run_bench, with_models
    from ..results.files import write_text

    try:
        dev_type = torch.device(args.device).type
    except RuntimeError:
        dev_type = None
    if dev_type not in ("cpu", "cuda"):
        print(f"w2amsn bench: error: --device must be cpu, cuda or cuda:N, got {args.device!r}",
              file=sys.stderr)
        return 2
    if dev_type == "cuda" and not torch.cuda.is_available():
        print("w2amsn bench: error: --device cuda, but CUDA is not available", file=sys.stderr)
        return 2
    if args.threads < 0:
        print("w2amsn bench: error: --threads must be >= 0", file=sys.stderr)
        return 2
    if args.weights is not None and not Path(args.weights).is_file():
        print(f"w2amsn bench: error: {args.weights}: weights file not found", file=sys.stderr)
        return 2
    problem = output_file_problem(args.json) if args.json else None
    if problem:  # before the minutes of measuring
        print(f"w2amsn bench: error: {problem}", file=sys.stderr)
        return 2
    profile = PROFILES["quick" if args.quick else "full"]
    if args.models:
        try:
            profile = with_models(profile, tuple(args.models))
        except ValueError as err:
            print(f"w2amsn bench: error: --models: {err}", file=sys.stderr)
            return 2
    command = "w2amsn bench" + (" --quick" if args.quick else "") + (
        f" --device {args.device}" if args.device != "cpu" else "") + (
        f" --threads {args.threads}" if args.threads else "") + (
        f" --models {' '.join(args.models)}" if args.models else "")
    if args.weights:
        command += f" --weights {args.weights}" + (f" --opt {args.opt}" if args.opt else "")
    result = run_bench(profile, device=args.device, threads=args.threads, command=command,
                       weights=args.weights, opt=args.opt)
    print(report(result))
    if args.json:
        write_text(args.json, json.dumps(asdict(result), indent=1, default=str) + "\n")
    return 0
