"""``w2amsn prepare-ixi`` (also ``scripts/make_ixi_lmdb.py``): the paper's IXI slice LMDBs for one
modality (paper section IV-A), the IXI preset of ``w2amsn prepare``
(:func:`w2amsn_plugin.data.prepare.make_ixi_lmdb`)."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..protocol import PAPER
from .prepare import add_slice_options, run_config, slice_kwargs

__all__ = ["configure_parser", "run"]


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Options of ``w2amsn prepare-ixi`` (``scripts/make_ixi_lmdb.py``)."""
    split = PAPER.split
    parser.add_argument("--ixi-root", required=True, type=Path,
                        help="folder with IXI's IXI<id>-<site>-<session>-<MOD>.nii.gz files "
                             "(searched recursively); with --download, where they are unpacked")
    parser.add_argument("--modality", required=True, choices=PAPER.modalities)
    parser.add_argument("--n-train", type=int, default=split.n_train,
                        help=f"training subjects ({split.n_train})")
    parser.add_argument("--n-test", type=int, default=split.n_test,
                        help=f"test subjects ({split.n_test})")
    parser.add_argument("--n-val", type=int, default=split.n_val,
                        help=f"validation subjects ({split.n_val})")
    parser.add_argument("--seed", type=int, default=split.seed,
                        help=f"subject split seed ({split.seed})")
    add_slice_options(parser)
    parser.add_argument("--download", action="store_true",
                        help="first download and unpack IXI-<MOD>.tar into --ixi-root")
    parser.add_argument("--ixi-url", default=None,
                        help="base URL of the IXI tarballs (default: IXI's public address)")
    parser.add_argument("--sha256", default=None,
                        help="expected SHA-256 of the downloaded tarball (IXI publishes none)")


def run(args: argparse.Namespace) -> int:
    """Run from parsed arguments; returns the exit status (2: bad input, 130: interrupted)."""
    from ..data.download import IXI_BASE_URL, download_ixi
    from ..data.prepare import PrepConfig, make_ixi_lmdb

    def work() -> None:
        if args.download:
            download_ixi(args.modality, args.ixi_root, base_url=args.ixi_url or IXI_BASE_URL,
                         sha256=args.sha256, progress=not args.no_progress)
        make_ixi_lmdb(PrepConfig(ixi_root=args.ixi_root, modality=args.modality,
                                 n_train=args.n_train, n_test=args.n_test, n_val=args.n_val,
                                 seed=args.seed, **slice_kwargs(args)))

    return run_config("prepare-ixi", args, work)
