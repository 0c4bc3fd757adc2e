"""Figures of results: the demo's LR / bicubic / W²AMSN / HR panel with error maps, one row per
test row (the picture at the top of the README; docs/demo.md)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .files import write_figure

__all__ = ["demo_figure"]


def demo_figure(weights: Path, train_opt: Path, testset: Path, modality: str, subjects: Sequence[str],
                out_png: Path) -> list[dict[str, Any]]:
    """One row per test subject (its slice with the most foreground), zoomed on the head's centre:
    LR, bicubic, W²AMSN, HR and both error maps (one colour scale per row). Returns, per row,
    the slice and its foreground PSNRs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch
    from basicsr.utils.matlab_functions import imresize

    from ..data.ixi_paired_dataset import IXIPairedDataset
    from ..protocol import database_path
    from ..inference.loading import load_model
    from ..metrics.foreground import foreground_mask
    from ..metrics.psnr_ssim import calculate_psnr_fg

    ds = IXIPairedDataset({"dataroot_gt": database_path(str(testset), modality, "test"),
                           "dataroot_lq": database_path(str(testset), modality, "test", 2),
                           "io_backend": {"type": "lmdb"}, "scale": 2, "phase": "test"})
    best: dict[str, tuple[int, int]] = {}
    for i, (subject, _, _) in enumerate(ds.slices):
        if subject in subjects:
            n = int(foreground_mask(ds[i]["gt"][0].numpy()).sum())
            if n > best.get(subject, (-1, -1))[0]:
                best[subject] = (n, i)
    net, scale = load_model(str(weights), str(train_opt))
    rows = [s for s in subjects if s in best]
    fig, axes = plt.subplots(len(rows), 6, figsize=(13.2, 2.35 * len(rows)), squeeze=False)
    info = []
    for r, subject in enumerate(rows):
        item = ds[best[subject][1]]
        with torch.inference_mode():
            sr = net(item["lq"][None]).clamp(0, 1)[0, 0].numpy()
        lr, gt = item["lq"][0].numpy(), item["gt"][0].numpy()
        bic = np.clip(imresize(lr, scale), 0, 1)
        p_sr = calculate_psnr_fg(sr, gt, crop_border=scale)
        p_bic = calculate_psnr_fg(bic, gt, crop_border=scale)
        err_bic, err_sr = np.abs(bic - gt), np.abs(sr - gt)
        vmax_err = float(np.percentile(np.concatenate([err_bic.ravel(), err_sr.ravel()]), 99.5)) or 1e-3
        h, w = gt.shape
        ys, xs = np.nonzero(foreground_mask(gt))
        cy, cx = int(ys.mean()), int(xs.mean())
        half = max(12, min(h, w) // 4)
        box = (slice(max(cy - half, 0), cy + half), slice(max(cx - half, 0), cx + half))
        panels = [("LR (input)", np.kron(lr, np.ones((scale, scale))), "gray", 1.0),
                  (f"Bicubic {p_bic:.2f} dB", bic, "gray", 1.0),
                  (f"W²AMSN {p_sr:.2f} dB", sr, "gray", 1.0),
                  ("HR (ground truth)", gt, "gray", 1.0),
                  ("|Bicubic - HR|", err_bic, "magma", vmax_err),
                  ("|W²AMSN - HR|", err_sr, "magma", vmax_err)]
        for c, (title, img, cmap, vmax) in enumerate(panels):
            ax = axes[r, c]
            ax.imshow(img[box], cmap=cmap, vmin=0, vmax=vmax, interpolation="nearest")
            ax.set_title(title, fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r, 0].set_ylabel(subject, fontsize=8)
        info.append({"slice": item["key"], "psnr_fg_sr": p_sr, "psnr_fg_bicubic": p_bic})
    fig.suptitle(f"Unseen test rows, x{scale} (foreground PSNR of the slice; centre of the head)",
                 fontsize=10)
    fig.tight_layout()
    write_figure(fig, out_png, dpi=100)
    return info
