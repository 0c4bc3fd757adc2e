#!/usr/bin/env python
"""Build the IXI slice LMDBs for one modality (paper section IV-A; README "Data preparation").

    python scripts/make_ixi_lmdb.py --ixi-root IXI --modality T1 --scales 2 3 4 --out datasets/IXI

Same as ``w2amsn prepare-ixi`` (kept so the README's and the paper's commands work as written);
``--help`` lists the options.
"""
from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__":
    try:
        from w2amsn_plugin.cli import w2amsn_main
    except ImportError:  # run from a checkout without installing the package
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
        from w2amsn_plugin.cli import w2amsn_main
    sys.exit(w2amsn_main(["prepare-ixi", *sys.argv[1:]]))
