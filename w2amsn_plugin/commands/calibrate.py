"""``w2amsn calibrate``: bicubic PSNR/SSIM of the IXI test split under each reading of the data
protocol, beside the paper's Table III "Bicubic" column, ranked by PSNR and SSIM together, with
the readings it cannot tell apart and what the data settle (:mod:`w2amsn_plugin.data.calibration`;
docs/reproducing.md, "Which reading of the protocol")."""
from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

from ..protocol import PAPER

__all__ = ["configure_parser", "run"]


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``w2amsn calibrate``."""
    split = PAPER.split
    parser.add_argument("--ixi-root", required=True, type=Path,
                        help="folder with IXI's IXI<id>-<site>-<session>-<MOD>.nii.gz files")
    parser.add_argument("--modality", required=True, choices=PAPER.modalities)
    parser.add_argument("--scales", type=int, nargs="+", default=list(PAPER.scales), metavar="S",
                        help="scales to score (default: 2 3 4, Table III's)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write every reading as JSON")
    parser.add_argument("--n-train", type=int, default=split.n_train, help="split sizes and seed as "
                        f"given to prepare-ixi, so the test split is the same ({split.n_train})")
    parser.add_argument("--n-test", type=int, default=split.n_test, help=f"test subjects ({split.n_test})")
    parser.add_argument("--n-val", type=int, default=split.n_val, help=f"validation subjects ({split.n_val})")
    parser.add_argument("--seed", type=int, default=split.seed, help=f"subject split seed ({split.seed})")
    parser.add_argument("--max-volumes", type=int, default=None,
                        help="score only the first N test volumes (sorted by subject)")
    parser.add_argument("--crop", type=int, nargs=3, default=list(PAPER.crop), metavar=("W", "H", "D"),
                        help="slice width, height and count per volume (%(default)s)")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1),
                        help="parallel worker processes (default: min(2, CPUs))")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _error(msg: str) -> int:
    print(f"w2amsn calibrate: error: {msg}", file=sys.stderr)
    return 2


def _check(args: argparse.Namespace, scales: list[int]) -> str | None:
    """The first problem with the arguments, or None."""
    from ..data.calibration import TABLE_III_BICUBIC

    bad = [s for s in scales if s not in TABLE_III_BICUBIC[args.modality]]
    if bad:
        return f"--scales {bad[0]}: Table III has scales 2, 3 and 4 only"
    if args.max_volumes is not None and args.max_volumes < 1:
        return f"--max-volumes {args.max_volumes}: must be >= 1"
    if args.workers < 1:
        return f"--workers {args.workers}: must be >= 1"
    if any(c < 1 for c in args.crop) or any(c % math.lcm(*scales) for c in args.crop[:2]):
        return (f"--crop {' '.join(map(str, args.crop))}: width and height must be positive "
                f"multiples of lcm(scales) = {math.lcm(*scales)}")
    if args.json and not args.json.resolve().parent.is_dir():
        return f"--json {args.json}: its folder does not exist"
    return None


def run(args: argparse.Namespace) -> int:
    """Score every reading; print the ranking; returns the exit status."""
    from ..data.calibration import TABLE_III_BICUBIC, format_report, identify, rank, score_volumes
    from ..data.ixi import IXIDataError, scan_ixi_tree
    from ..data.prep_pool import WorkerDied, progress
    from ..data.split import split_subjects

    scales = list(dict.fromkeys(args.scales))
    problem = _check(args, scales)
    if problem:
        return _error(problem)
    try:
        files, _ = scan_ixi_tree(args.ixi_root, args.modality)
        split = split_subjects(files, args.n_train, args.n_test, args.n_val, args.seed,
                               what=f"{args.ixi_root} ({args.modality})")
    except IXIDataError as err:
        return _error(str(err))
    test = split["test"][:args.max_volumes]
    if not test:
        return _error("--n-test 0: no test volume to score")
    start = time.perf_counter()
    try:
        with progress(len(test), 0, f"calibrate {args.modality}", not args.no_progress) as bar:
            parts = score_volumes([files[s] for s in test], scales, tuple(args.crop), args.workers,
                                  bar.update)
    except (IXIDataError, WorkerDied) as err:
        return _error(str(err))
    seconds = time.perf_counter() - start
    rows = rank(parts, args.modality, scales)
    print(format_report(rows, args.modality, scales, len(test), seconds))
    if args.json:
        from ..results.files import write_json

        write_json(args.json, {
            "modality": args.modality, "scales": scales, "test_subjects": test, "seconds": seconds,
            "paper_table_iii_bicubic": {s: list(TABLE_III_BICUBIC[args.modality][s]) for s in scales},
            "ranking": "distance = mean over scales of |dPSNR|/0.01 dB + |dSSIM|/0.0001; a tie is "
                       "a distance within 'margin' of the closest reading's",
            "readings": rows, "closest": rows[0]["reading"],
            "ties": [r["reading"] for r in rows if r["tie"]], "identified": identify(rows)})
    return 0
