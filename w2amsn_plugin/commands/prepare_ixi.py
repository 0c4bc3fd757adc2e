"""``w2amsn prepare-ixi`` (also ``scripts/make_ixi_lmdb.py``): build the paper's IXI slice LMDBs for
one modality (paper section IV-A; :func:`w2amsn_plugin.data.prepare.make_ixi_lmdb`)."""
from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path


from ..data.degradations import DEGRADATIONS
from ..data.ixi import IXI_MODALITIES, SLICE_SELECTIONS, IXIDataError
from ..data.normalization import DEFAULT_PERCENTILE
from ..data.planes import PLANES
from ..data.png16 import BIT_DEPTHS, DEFAULT_COMPRESS_LEVEL

from ..data.prepare import PrepConfig, make_ixi_lmdb

__all__ = ["configure_parser", "run"]


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Options of ``w2amsn prepare-ixi`` (``scripts/make_ixi_lmdb.py``)."""
    parser.add_argument("--ixi-root", required=True, type=Path,
                        help="folder with IXI's IXI<id>-<site>-<session>-<MOD>.nii.gz files "
                             "(searched recursively); with --download, where they are unpacked")
    parser.add_argument("--modality", required=True, choices=IXI_MODALITIES)
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument("--scales", type=int, nargs="+", default=[2, 3, 4], metavar="S",
                        help="LR scales (default: 2 3 4)")
    parser.add_argument("--degradation", nargs="+", default=["bicubic"], choices=DEGRADATIONS,
                        help="LR degradation(s): MATLAB bicubic (default) and/or k-space "
                             "truncation")
    parser.add_argument("--n-train", type=int, default=500, help="training subjects (500)")
    parser.add_argument("--n-test", type=int, default=70, help="test subjects (70)")
    parser.add_argument("--n-val", type=int, default=6, help="validation subjects (6)")
    parser.add_argument("--seed", type=int, default=0, help="subject split seed (0)")
    parser.add_argument("--plane", choices=PLANES, default=PLANES[0],
                        help="plane the slices are cut in: acquisition (default: the plane of the "
                             "two finest stored axes, IXI T1 sagittal, T2/PD axial) or an "
                             "anatomical plane")
    parser.add_argument("--crop", type=int, nargs=3, default=[240, 240, 96],
                        metavar=("W", "H", "D"),
                        help="per volume: slice width W, height H (centre crop), D slices "
                             "(default: 240 240 96, the paper's 240x240x96)")
    parser.add_argument("--slices", choices=SLICE_SELECTIONS, default=SLICE_SELECTIONS[0],
                        help="which D slices: head = centred on the head's extent (default), "
                             "central = the middle D slices of the volume")
    parser.add_argument("--percentile", type=float, default=DEFAULT_PERCENTILE,
                        help="per-volume normalisation clip percentile, 100 = the volume's "
                             f"maximum ({DEFAULT_PERCENTILE})")
    parser.add_argument("--bits", type=int, choices=BIT_DEPTHS, default=BIT_DEPTHS[0],
                        help="PNG bit depth of the stored slices (16; 8 as PNG-based pipelines)")
    parser.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1),
                        help="parallel worker processes (default: min(4, CPUs))")
    parser.add_argument("--compress-level", type=int, default=DEFAULT_COMPRESS_LEVEL,
                        help=f"PNG compression level 0-9 ({DEFAULT_COMPRESS_LEVEL})")
    parser.add_argument("--overwrite", action="store_true",
                        help="discard this modality's previous outputs and unfinished run")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--download", action="store_true",
                        help="first download and unpack IXI-<MOD>.tar into --ixi-root")
    parser.add_argument("--ixi-url", default=None,
                        help="base URL of the IXI tarballs (default: IXI's public address)")
    parser.add_argument("--sha256", default=None,
                        help="expected SHA-256 of the downloaded tarball (IXI publishes none)")


#: working memory of one volume in a worker, bytes per voxel of the crop (a float64 copy, float32
#: and 16-bit stages of the HR and LR stacks, measured order of magnitude)
_BYTES_PER_VOXEL = 16


def _available_memory() -> int | None:
    """MemAvailable of /proc/meminfo in bytes (None where there is no such file)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _memory_problem(crop: tuple[int, ...], workers: int) -> str | None:
    """Why ``--crop`` cannot fit this machine's memory, checked before any work (numpy or LMDB
    would otherwise fail after minutes with a MemoryError traceback), or None."""
    available = _available_memory()
    need = math.prod(int(c) for c in crop) * _BYTES_PER_VOXEL * max(1, workers)
    if available is None or need <= available:
        return None
    return (f"--crop {' '.join(map(str, crop))}: each volume needs about "
            f"{need / max(1, workers) / 2**30:.1f} GiB per worker ({max(1, workers)} workers), "
            f"{available / 2**30:.1f} GiB is available; use a smaller --crop or fewer --workers")


def run(args: argparse.Namespace) -> int:
    """Run from parsed arguments; returns the exit status (2: bad input, 130: interrupted)."""
    import lmdb

    from ..data.download import IXI_BASE_URL, DownloadError, download_ixi
    from ..data.lock import FolderLocked
    from ..results.output_paths import output_folder_problem

    problem = output_folder_problem(args.out) or _memory_problem(tuple(args.crop), args.workers)
    if problem:  # before any work (issue 17)
        print(f"w2amsn prepare-ixi: error: {problem}", file=sys.stderr)
        return 2
    try:
        if args.download:
            download_ixi(args.modality, args.ixi_root, base_url=args.ixi_url or IXI_BASE_URL,
                         sha256=args.sha256, progress=not args.no_progress)
        cfg = PrepConfig(
            ixi_root=args.ixi_root, modality=args.modality, out=args.out,
            scales=tuple(args.scales), degradations=tuple(dict.fromkeys(args.degradation)),
            n_train=args.n_train, n_test=args.n_test, n_val=args.n_val, seed=args.seed,
            crop=tuple(args.crop), percentile=args.percentile, plane=args.plane,
            slices=args.slices, bits=args.bits, workers=args.workers,
            compress_level=args.compress_level, overwrite=args.overwrite,
            progress=not args.no_progress)
        make_ixi_lmdb(cfg)
    except (IXIDataError, DownloadError, FolderLocked) as err:
        print(f"w2amsn prepare-ixi: error: {err}", file=sys.stderr)
        return 2
    except (MemoryError, lmdb.MemoryError):
        print(f"w2amsn prepare-ixi: error: out of memory with --crop {' '.join(map(str, args.crop))} "
              f"and --workers {args.workers}; use a smaller --crop or fewer --workers (finished "
              "volumes stay staged for a rerun)", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0
