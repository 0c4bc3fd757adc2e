#!/usr/bin/env python
"""What 8-bit slice storage costs in PSNR, measured on the shipped real MR samples (docs/data.md,
"Why 16-bit storage").

    python scripts/bit_depth_psnr.py

For every slice of the acquisition plane (96 per volume, the paper's protocol otherwise:
normalisation at the 99.5th percentile, head-centred slices) it prints the mean whole-slice and
foreground PSNR (the plugin's metrics, peak 1) of

1. the 8-bit slice against the 16-bit one (8-bit quantisation alone);
2. an output about 40 dB from the 16-bit truth (the truth plus Gaussian error, sigma 0.01,
   seed 0) scored against the 16-bit and against the 8-bit truth: the change 8-bit ground truth
   makes to a score at the 40 dB level.
"""
from __future__ import annotations

import numpy as np

from w2amsn_plugin.data.ixi import crop_stack, load_canonical, open_volume, plane_geometry
from w2amsn_plugin.data.normalization import normalize_intensity
from w2amsn_plugin.data.planes import plane_stack
from w2amsn_plugin.data.png16 import quantize
from w2amsn_plugin.data.samples import sample_paths
from w2amsn_plugin.metrics.psnr_ssim import calculate_psnr_fg, calculate_psnr_mr
from w2amsn_plugin.protocol import PAPER


def slices_16bit(path) -> np.ndarray:
    """The volume's acquisition-plane slices as stored by prepare (16 bit), as [0, 1] floats."""
    img, shape = open_volume(path)
    geo = plane_geometry(path, img, shape, PAPER.plane)
    norm, _, _ = normalize_intensity(load_canonical(path)[0], PAPER.percentile)
    stack = plane_stack(norm, geo.ras_axis)
    h, w = (n - n % 2 for n in stack.shape[1:])
    cropped, _ = crop_stack(stack, h, w, PAPER.slices_per_volume, PAPER.slice_selection)
    return quantize(cropped, 16) / 65535.0


def main() -> None:
    rng = np.random.default_rng(0)
    rows: dict[str, list[tuple[float, float]]] = {"8-bit vs 16-bit truth": [],
                                                  "40 dB output vs 16-bit truth": [],
                                                  "40 dB output vs 8-bit truth": []}
    for path in sample_paths():
        for x16 in slices_16bit(path):
            if x16.max() <= 0:
                continue
            x8 = quantize(x16, 8) / 255.0
            y = np.clip(x16 + rng.normal(0.0, 0.01, x16.shape), 0.0, 1.0)
            for name, (a, b) in {"8-bit vs 16-bit truth": (x8, x16),
                                 "40 dB output vs 16-bit truth": (y, x16),
                                 "40 dB output vs 8-bit truth": (y, x8)}.items():
                rows[name].append((calculate_psnr_mr(a, b), calculate_psnr_fg(a, b)))
    print(f"{'comparison':32s} {'slices':>6s} {'PSNR (dB)':>10s} {'PSNR fg (dB)':>13s}")
    for name, values in rows.items():
        whole, fg = np.mean(values, axis=0)
        print(f"{name:32s} {len(values):6d} {whole:10.3f} {fg:13.3f}")


if __name__ == "__main__":
    main()
