"""``w2amsn prepare``: build slice LMDBs from any folder of 3-D MR volumes (NIfTI-1/2, MGH/MGZ) or
a BIDS dataset (:func:`w2amsn_plugin.data.prepare.prepare_dataset`; docs/data.md). The options it
shares with ``w2amsn prepare-ixi`` (:func:`add_slice_options`) and the error handling
(:func:`run_config`) live here."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Callable

from ..protocol import (BIT_DEPTHS, DEFAULT_COMPRESS_LEVEL, DEGRADATIONS, PAPER, PLANES,
                        SLICE_SELECTIONS, SMALL_VOLUME_RULES, Split)

__all__ = ["configure_parser", "run", "add_slice_options", "slice_kwargs", "run_config"]


def add_slice_options(parser: argparse.ArgumentParser) -> None:
    """How volumes become slices and databases (shared with ``prepare-ixi``); the paper's
    defaults (:data:`w2amsn_plugin.protocol.PAPER`)."""
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument("--scales", type=int, nargs="+", default=list(PAPER.scales), metavar="S",
                        help=f"LR scales (default: {' '.join(map(str, PAPER.scales))})")
    parser.add_argument("--degradation", nargs="+", default=list(PAPER.degradations),
                        choices=DEGRADATIONS, help="LR degradation(s): MATLAB bicubic (default) "
                                                   "and/or k-space truncation")
    parser.add_argument("--plane", choices=PLANES, default=PAPER.plane,
                        help=f"plane the slices are cut in (default {PAPER.plane}: the plane of "
                             "the two finest stored axes) or an anatomical plane")
    w, h, d = PAPER.crop
    parser.add_argument("--crop", type=int, nargs=3, default=list(PAPER.crop),
                        metavar=("W", "H", "D"),
                        help=f"per volume: slice width W, height H (centre crop), D slices "
                             f"(default: {w} {h} {d}, the paper's {w}x{h}x{d})")
    parser.add_argument("--slices", choices=SLICE_SELECTIONS, default=PAPER.slice_selection,
                        help="which D slices: head = centred on the head's extent (default), "
                             "central = the middle D slices of the volume")
    parser.add_argument("--percentile", type=float, default=PAPER.percentile,
                        help="per-volume normalisation clip percentile, 100 = the volume's "
                             f"maximum ({PAPER.percentile})")
    parser.add_argument("--bits", type=int, choices=BIT_DEPTHS, default=PAPER.bits,
                        help=f"PNG bit depth of the stored slices ({PAPER.bits}; 8 as PNG-based "
                             "pipelines)")
    parser.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1),
                        help="parallel worker processes (default: min(4, CPUs))")
    parser.add_argument("--compress-level", type=int, default=DEFAULT_COMPRESS_LEVEL,
                        help=f"PNG compression level 0-9 ({DEFAULT_COMPRESS_LEVEL})")
    parser.add_argument("--overwrite", action="store_true",
                        help="discard this modality's previous outputs and unfinished run")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def slice_kwargs(args: argparse.Namespace) -> dict:
    """The config fields :func:`add_slice_options` gives."""
    return dict(out=args.out, scales=tuple(args.scales),
                degradations=tuple(dict.fromkeys(args.degradation)), crop=tuple(args.crop),
                percentile=args.percentile, plane=args.plane, slices=args.slices, bits=args.bits,
                workers=args.workers, compress_level=args.compress_level,
                overwrite=args.overwrite, progress=not args.no_progress)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Options of ``w2amsn prepare``."""
    parser.add_argument("--root", required=True, type=Path,
                        help="a BIDS dataset (dataset_description.json at its root) or any folder "
                             "of .nii/.nii.gz/.mgh/.mgz volumes, searched recursively")
    parser.add_argument("--suffix", default="T1w",
                        help="BIDS: the suffix of the volumes to use (sub-*/[ses-*/]anat/"
                             "*_<suffix>.nii[.gz]); also the modality label in the database names "
                             "(default: T1w)")
    parser.add_argument("--name", default=None,
                        help="dataset label, the first part of the database names (default: the "
                             "root folder's name)")
    parser.add_argument("--layout", choices=("auto", "bids", "folder"), default="auto",
                        help="auto (default): BIDS when the root has dataset_description.json")
    parser.add_argument("--subject-regex", default=None,
                        help="plain folder: the subject of a file is this regex's group "
                             "'subject' (or first group) in its stem (default: the stem)")
    parser.add_argument("--split", type=int, nargs=3, default=None,
                        metavar=("N_TRAIN", "N_TEST", "N_VAL"),
                        help="subjects per split (default: all subjects in the paper's "
                             f"{PAPER.split.n_train}:{PAPER.split.n_test}:{PAPER.split.n_val} "
                             "proportions)")
    parser.add_argument("--seed", type=int, default=PAPER.split.seed,
                        help=f"subject split seed ({PAPER.split.seed})")
    parser.add_argument("--small-volumes", choices=SMALL_VOLUME_RULES[:2], default="pad",
                        help="a volume smaller than the crop: pad (default: zero-padded) or skip")
    parser.add_argument("--strict", action="store_true",
                        help="an unreadable volume is an error (default: reported and skipped)")
    add_slice_options(parser)


def run_config(verb: str, args: argparse.Namespace, work: Callable[[], object]) -> int:
    """Run ``work`` after the pre-checks; one line and exit 2 for what a user can cause,
    130 for Ctrl-C."""
    import lmdb

    from ..data.download import DownloadError
    from ..data.ixi import IXIDataError
    from ..data.lock import FolderLocked
    from ..data.prepare import memory_problem
    from ..results.output_paths import output_folder_problem

    problem = output_folder_problem(args.out) or memory_problem(tuple(args.crop), args.workers)
    if problem:
        print(f"w2amsn {verb}: error: {problem}", file=sys.stderr)
        return 2
    try:
        work()
    except (IXIDataError, DownloadError, FolderLocked) as err:
        print(f"w2amsn {verb}: error: {err}", file=sys.stderr)
        return 2
    except (MemoryError, lmdb.MemoryError):
        print(f"w2amsn {verb}: error: out of memory with --crop {' '.join(map(str, args.crop))} "
              f"and --workers {args.workers}; use a smaller --crop or fewer --workers (finished "
              "volumes stay staged for a rerun)", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


def run(args: argparse.Namespace) -> int:
    """Run from parsed arguments; returns the exit status (2: bad input, 130: interrupted)."""
    from ..data.prepare import PrepareConfig, prepare_dataset

    split = None if args.split is None else Split(*args.split, seed=args.seed)
    cfg = PrepareConfig(root=args.root, modality=args.suffix, layout=args.layout,
                        dataset=args.name, subject_regex=args.subject_regex, split=split,
                        seed=args.seed,
                        small_volumes=args.small_volumes, strict=args.strict,
                        **slice_kwargs(args))
    return run_config("prepare", args, lambda: prepare_dataset(cfg))
