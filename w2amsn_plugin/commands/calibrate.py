"""``w2amsn calibrate``: bicubic PSNR/SSIM of the IXI test split under each reading of the data
protocol, beside the paper's Table III "Bicubic" column, and the closest reading
(:mod:`w2amsn_plugin.data.calibration`; docs/reproducing.md, "The data protocol")."""
from __future__ import annotations

import argparse
import math
import multiprocessing
import os
import sys
import time
from pathlib import Path

from ..data.calibration import (PLANE_CHOICES, TABLE_III_BICUBIC, add_sums, summarise,
                                volume_sums)
from ..data.ixi import IXI_MODALITIES, IXIDataError, scan_ixi_tree
from ..data.split import split_subjects

__all__ = ["configure_parser", "run"]


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``w2amsn calibrate``."""
    parser.add_argument("--ixi-root", required=True, type=Path,
                        help="folder with IXI's IXI<id>-<site>-<session>-<MOD>.nii.gz files")
    parser.add_argument("--modality", required=True, choices=IXI_MODALITIES)
    parser.add_argument("--scales", type=int, nargs="+", default=[2, 3, 4], metavar="S",
                        help="scales to score (default: 2 3 4, Table III's)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the table as JSON")
    parser.add_argument("--n-train", type=int, default=500, help="split sizes and seed as given to "
                        "prepare-ixi, so the test split is the same (500)")
    parser.add_argument("--n-test", type=int, default=70, help="test subjects (70)")
    parser.add_argument("--n-val", type=int, default=6, help="validation subjects (6)")
    parser.add_argument("--seed", type=int, default=0, help="subject split seed (0)")
    parser.add_argument("--max-volumes", type=int, default=None,
                        help="score only the first N test volumes (sorted by subject)")
    parser.add_argument("--crop", type=int, nargs=3, default=[240, 240, 96], metavar=("W", "H", "D"),
                        help="slice width, height and count per volume (240 240 96)")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1),
                        help="parallel worker processes (default: min(2, CPUs))")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _error(msg: str) -> int:
    print(f"w2amsn calibrate: error: {msg}", file=sys.stderr)
    return 2


def _init_worker() -> None:
    import cv2
    import torch

    cv2.setNumThreads(1)
    torch.set_num_threads(1)


def _task(args: tuple) -> dict:
    path, scales, crop = args
    return volume_sums(path, scales, PLANE_CHOICES, crop)


def run(args: argparse.Namespace) -> int:
    """Score every reading; print the table; returns the exit status."""
    from tqdm import tqdm

    scales = list(dict.fromkeys(args.scales))
    bad = [s for s in scales if s not in TABLE_III_BICUBIC[args.modality]]
    if bad:
        return _error(f"--scales {bad[0]}: Table III has scales 2, 3 and 4 only")
    if args.max_volumes is not None and args.max_volumes < 1:
        return _error(f"--max-volumes {args.max_volumes}: must be >= 1")
    if args.workers < 1:
        return _error(f"--workers {args.workers}: must be >= 1")
    if any(c < 1 for c in args.crop) or any(c % math.lcm(*scales) for c in args.crop[:2]):
        return _error(f"--crop {' '.join(map(str, args.crop))}: width and height must be positive "
                      f"multiples of lcm(scales) = {math.lcm(*scales)}")
    if args.json and not args.json.resolve().parent.is_dir():
        return _error(f"--json {args.json}: its folder does not exist")
    try:
        files, _ = scan_ixi_tree(args.ixi_root, args.modality)
        split = split_subjects(files, args.n_train, args.n_test, args.n_val, args.seed,
                               what=f"{args.ixi_root} ({args.modality})")
    except IXIDataError as err:
        return _error(str(err))
    test = split["test"][:args.max_volumes]
    if not test:
        return _error("--n-test 0: no test volume to score")
    tasks = [(str(files[s]), scales, tuple(args.crop)) for s in test]
    start = time.perf_counter()
    total: dict = {}
    ctx = multiprocessing.get_context("spawn")
    pool = (ctx.Pool(min(args.workers, len(tasks)), initializer=_init_worker)
            if args.workers > 1 and len(tasks) > 1 else None)
    try:
        results = pool.imap_unordered(_task, tasks) if pool else map(_task, tasks)
        with tqdm(total=len(tasks), desc=f"calibrate {args.modality}", unit="vol",
                  disable=args.no_progress, dynamic_ncols=True) as bar:
            for part in results:
                add_sums(total, part)
                bar.update(1)
    except IXIDataError as err:
        return _error(str(err))
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
    seconds = time.perf_counter() - start
    rows = summarise(total, args.modality, scales)
    print(_format(rows, args.modality, scales, len(test), seconds))
    if args.json:
        from ..results.files import write_json

        write_json(args.json, {"modality": args.modality, "scales": scales, "test_subjects": test,
                               "seconds": seconds, "paper_table_iii_bicubic": {
                                   s: list(TABLE_III_BICUBIC[args.modality][s]) for s in scales},
                               "variants": rows, "closest": rows[0]["variant"]})
    return 0


def _format(rows: list[dict], modality: str, scales: list[int], n_volumes: int,
            seconds: float) -> str:
    paper = TABLE_III_BICUBIC[modality]
    head = "| variant | " + " | ".join(f"x{s} PSNR/SSIM" for s in scales) + " | distance dB / SSIM |"
    lines = [f"Bicubic on {n_volumes} IXI {modality} test volume(s) ({seconds:.0f} s), closest to "
             "the paper first; * = the reading of the shipped options", "", head,
             "|" + "---|" * (len(scales) + 2),
             "| **paper, Table III** | " + " | ".join(f"{paper[s][0]:.2f}/{paper[s][1]:.4f}"
                                                     for s in scales) + " | |"]
    for r in rows:
        cells = " | ".join(f"{r['scores'][s]['psnr']:.2f}/{r['scores'][s]['ssim']:.4f}"
                           for s in scales)
        mark = " *" if r["shipped"] else ""
        lines.append(f"| {r['variant']}{mark} | {cells} | {r['distance_psnr_db']:.2f} / "
                     f"{r['distance_ssim']:.4f} |")
    shipped = next(r for r in rows if r["shipped"])
    lines += ["", f"closest: {rows[0]['variant']} ({rows[0]['distance_psnr_db']:.2f} dB from the "
              f"paper on average); shipped options: {shipped['variant']} "
              f"({shipped['distance_psnr_db']:.2f} dB)"]
    return "\n".join(lines)
