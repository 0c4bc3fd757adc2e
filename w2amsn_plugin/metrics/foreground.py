"""Foreground (anatomy) mask of an MR slice, used by the foreground PSNR/SSIM (docs/metrics-and-model.md).

An MR slice is mostly background (air), where any method is almost perfect; whole-slice PSNR/SSIM
therefore rewards predicting zeros. The foreground metrics score only the anatomy:

    mask = fill_holes(GT > fg_threshold)

computed on the ground-truth slice in [0, 1] (after the per-volume normalisation of
:mod:`w2amsn_plugin.data.normalization`, i.e. 1.0 = the volume's 99.5th intensity percentile).
Holes are filled with :func:`scipy.ndimage.binary_fill_holes` (4-connected background), so dark
structures enclosed by tissue (ventricles, CSF, bone between scalp and brain) count as
foreground; only background connected to the slice border stays out. The default threshold 0.05
(5 % of the volume's 99.5th percentile) sits above the Rician noise floor of the air in magnitude
MR images and far below tissue intensity.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = ["DEFAULT_FG_THRESHOLD", "foreground_mask"]

#: default intensity threshold (on [0, 1] ground truth) of :func:`foreground_mask`
DEFAULT_FG_THRESHOLD = 0.05


def foreground_mask(gt: np.ndarray, fg_threshold: float = DEFAULT_FG_THRESHOLD) -> np.ndarray:
    """Boolean HxW mask ``fill_holes(gt > fg_threshold)`` of a 2-D ground-truth slice in [0, 1]."""
    if gt.ndim != 2:
        raise ValueError(f"foreground_mask expects a 2-D slice, got shape {gt.shape}")
    if not 0.0 <= fg_threshold < 1.0:
        raise ValueError(f"fg_threshold must be in [0, 1), got {fg_threshold}")
    return ndimage.binary_fill_holes(gt > fg_threshold)
