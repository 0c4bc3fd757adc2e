#!/usr/bin/env python
"""Build the IXI slice LMDBs for one modality (paper section IV-A; README "Data preparation").

    python scripts/make_ixi_lmdb.py --ixi-root IXI --modality T1 --scales 2 3 4 --out datasets/IXI

Thin command line over :func:`w2amsn_plugin.data.prepare.make_ixi_lmdb`; ``--help`` lists the
options.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    try:
        from w2amsn_plugin.data import prepare
    except ImportError:  # run from a checkout without installing the package
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
        from w2amsn_plugin.data import prepare

    parser = argparse.ArgumentParser(prog="make_ixi_lmdb.py", description=__doc__.split("\n")[0])
    prepare.configure_parser(parser)
    return prepare.run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
