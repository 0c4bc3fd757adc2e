#!/usr/bin/env python
"""Benchmark W²AMSN against the baselines (EDSR, RCAN, W²AMSN-S, ...) on your own data in one
command: train each options file with the same budget, test each on the same test set, and write
a comparison table and a PSNR-vs-parameters plot (the paper's Fig. 3(a)).

    python scripts/benchmark_baselines.py --iters 20000 \\
        --train-opts options/train/W2AMSN/train_W2AMSN_T1_x2.yml options/train/EDSR/train_EDSR_T1_x2.yml

Thin command line over :mod:`w2amsn_plugin.baselines_benchmark` (its docstring says exactly what
is run and measured); ``--help`` lists the options.
"""
from __future__ import annotations

import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    try:
        from w2amsn_plugin import baselines_benchmark
    except ImportError:  # run from a checkout without installing the package
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
        from w2amsn_plugin import baselines_benchmark
    return baselines_benchmark.main(argv)


if __name__ == "__main__":
    sys.exit(main())
