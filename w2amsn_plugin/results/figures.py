"""Figures of results: the demo's LR / bicubic / W²AMSN / HR panel with error maps and zoomed
insets (the picture at the top of the README)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .files import write_figure

__all__ = ["demo_figure"]


def demo_figure(weights: Path, train_opt: Path, lmdb_root: Path, modality: str, test_subject: str,
            out_png: Path) -> dict[str, Any]:
    """LR / bicubic / W²AMSN / HR / |error| on the test slice with the most foreground."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch
    from basicsr.utils.matlab_functions import imresize

    from ..data.ixi_paired_dataset import IXIPairedDataset
    from ..data.naming import database_path
    from ..inference.loading import load_model
    from ..metrics.foreground import foreground_mask
    from ..metrics.psnr_ssim import calculate_psnr_fg

    ds = IXIPairedDataset({"dataroot_gt": database_path(str(lmdb_root), modality, "test"),
                           "dataroot_lq": database_path(str(lmdb_root), modality, "test", 2),
                           "io_backend": {"type": "lmdb"}, "scale": 2, "phase": "test"})
    items = [ds[i] for i in range(len(ds))]
    items = [it for it in items if it["subject"] == test_subject] or items
    best = max(items, key=lambda it: int(foreground_mask(it["gt"][0].numpy()).sum()))
    net, scale = load_model(str(weights), str(train_opt))
    with torch.inference_mode():
        sr = net(best["lq"][None]).clamp(0, 1)[0, 0].numpy()
    lr, gt = best["lq"][0].numpy(), best["gt"][0].numpy()
    bic = np.clip(imresize(lr, scale), 0, 1)
    p_sr, p_bic = calculate_psnr_fg(sr, gt, crop_border=scale), calculate_psnr_fg(bic, gt, crop_border=scale)
    err_bic, err_sr = np.abs(bic - gt), np.abs(sr - gt)
    vmax_err = float(np.percentile(np.concatenate([err_bic.ravel(), err_sr.ravel()]), 99.5)) or 1e-3
    h, w = gt.shape
    ys, xs = np.nonzero(foreground_mask(gt))
    cy, cx = int(ys.mean()), int(xs.mean())
    half = max(12, min(h, w) // 8)
    box = (slice(max(cy - half, 0), cy + half), slice(max(cx - half, 0), cx + half))
    panels = [("LR (input, nearest x2)", np.kron(lr, np.ones((scale, scale))), "gray", 1.0),
              (f"Bicubic  {p_bic:.2f} dB fg", bic, "gray", 1.0),
              (f"W²AMSN  {p_sr:.2f} dB fg", sr, "gray", 1.0),
              ("HR (ground truth)", gt, "gray", 1.0),
              ("|Bicubic - HR|", err_bic, "magma", vmax_err),
              ("|W²AMSN - HR|", err_sr, "magma", vmax_err)]
    fig, axes = plt.subplots(2, len(panels), figsize=(3.0 * len(panels), 6.4))
    for col, (title, img, cmap, vmax) in enumerate(panels):
        axes[0, col].imshow(img, cmap=cmap, vmin=0, vmax=vmax)
        axes[0, col].add_patch(plt.Rectangle((box[1].start, box[0].start), box[1].stop - box[1].start,
                                             box[0].stop - box[0].start, fill=False, ec="cyan", lw=1))
        axes[0, col].set_title(title, fontsize=9)
        axes[1, col].imshow(img[box], cmap=cmap, vmin=0, vmax=vmax, interpolation="nearest")
        axes[1, col].set_title("zoom", fontsize=8)
        for ax in axes[:, col]:
            ax.axis("off")
    fig.suptitle(f"{best['key']}: unseen test volume, x{scale}", fontsize=10)
    fig.tight_layout()
    write_figure(fig, out_png, dpi=110)
    return {"slice": best["key"], "psnr_fg_sr": p_sr, "psnr_fg_bicubic": p_bic}


