#!/usr/bin/env python
"""Generate every options YAML under options/ from w2amsn_plugin/experiments.py (one table).

    python scripts/make_options.py            # (re)write options/
    python scripts/make_options.py --check    # exit 1 if options/ differs from the table

Same as ``w2amsn make-options`` (kept so the README's and the paper's commands work as written);
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
    sys.exit(w2amsn_main(["make-options", *sys.argv[1:]]))
