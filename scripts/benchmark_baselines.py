#!/usr/bin/env python
"""Benchmark W²AMSN against the baselines (EDSR, RCAN, W²AMSN-S, ...) on your own data: train
each options file with the same budget, test each on the same test set, write a comparison table
and a PSNR-vs-parameters plot (the paper's Fig. 3(a)).

    python scripts/benchmark_baselines.py --iters 20000 \\
        --train-opts options/train/W2AMSN/train_W2AMSN_T1_x2.yml options/train/EDSR/train_EDSR_T1_x2.yml

Same as ``w2amsn baselines`` (kept so the README's and the paper's commands work as written);
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
    sys.exit(w2amsn_main(["baselines", *sys.argv[1:]]))
