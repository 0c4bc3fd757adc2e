"""PSNR and SSIM for single-channel MR slices on [0, 1] data, whole slice and foreground only.

The paper (section IV) reports PSNR and SSIM [Wang et al. 2004]; MR is not 8-bit, so these work on
float data with data range 1 (numerically the same as the usual 255 scale on the same image).
Registered in BasicSR's ``METRIC_REGISTRY``:

- ``calculate_psnr_mr`` / ``calculate_ssim_mr``: the whole slice (float-aware counterparts of
  BasicSR's ``calculate_psnr`` / ``calculate_ssim``, which assume [0, 255]).
- ``calculate_psnr_fg`` / ``calculate_ssim_fg``: only the foreground pixels,
  ``mask = fill_holes(GT > fg_threshold)`` (:mod:`w2amsn_plugin.metrics.foreground`).

Inputs: ``img`` (SR) and ``img2`` (GT), HxW or HxWx1 numpy arrays; float arrays are taken as
[0, 1] (not clipped: MRSRModel clamps the network output to [0, 1] before scoring), uint8 is
divided by 255 and uint16 by 65535. Every YAML key reaches these functions (BasicSR passes the
whole ``val.metrics.<name>`` section), so they take ``**kwargs``.

Conventions, chosen so that a results table never holds NaN or inf:

- PSNR = 10 log10(1 / MSE) with the MSE floored at 1e-10, so an exact match gives
  :data:`PSNR_MAX_DB` = 100 dB rather than inf (this happens e.g. for bicubic on an all-zero slice).
- SSIM uses the Gaussian 11x11 window (sigma 1.5), K1 = 0.01, K2 = 0.03, population
  covariances, as BasicSR and Wang et al.; the SSIM map is the "valid" part (5 pixels from the
  border excluded), as in BasicSR and ``skimage.metrics.structural_similarity``. The foreground
  SSIM is the mean of that map over the foreground pixels inside it.
- A slice with no foreground pixel (inside the SSIM map's valid part, for SSIM) has no foreground
  score: the fg metrics return NaN, which MRSRModel recognises as "skipped", counts, and leaves
  out of every average (see :data:`NO_FOREGROUND`).
"""
from __future__ import annotations

import math
from typing import Any

import cv2
import numpy as np
from basicsr.utils.registry import METRIC_REGISTRY

from .foreground import DEFAULT_FG_THRESHOLD, foreground_mask

__all__ = ["FLOAT_METRICS", "NO_FOREGROUND", "PSNR_MAX_DB", "calculate_psnr_mr", "calculate_ssim_mr",
           "calculate_psnr_fg", "calculate_ssim_fg", "to_unit_float", "ssim_maps", "psnr_db"]

#: metric types that take float [0, 1] images (MRSRModel gives every other metric BasicSR's uint8)
FLOAT_METRICS = ("calculate_psnr_mr", "calculate_ssim_mr", "calculate_psnr_fg", "calculate_ssim_fg")
#: what a foreground metric returns for a slice without foreground ("skipped", never averaged)
NO_FOREGROUND = float("nan")
_MSE_FLOOR = 1e-10
#: PSNR of an exact match (MSE floored at 1e-10)
PSNR_MAX_DB = 10.0 * math.log10(1.0 / _MSE_FLOOR)
_SSIM_RADIUS = 5  # Gaussian window 11x11, sigma 1.5
_SSIM_GAUSS_1D = cv2.getGaussianKernel(2 * _SSIM_RADIUS + 1, 1.5)  # the window's separable factor
_C1 = 0.01 ** 2
_C2 = 0.03 ** 2


def to_unit_float(img: np.ndarray, name: str = "img") -> np.ndarray:
    """Return a single-channel slice as a float64 HxW array on the [0, 1] scale.

    uint8 is divided by 255, uint16 by 65535, float is taken as it is; other dtypes, more than one
    channel and NaN/inf raise ValueError.
    """
    arr = np.asarray(img)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if arr.ndim != 2:
        raise ValueError(f"{name}: expected a single-channel HxW or HxWx1 image, got shape {arr.shape}")
    if arr.dtype == np.uint8:
        return arr / 255.0
    if arr.dtype == np.uint16:
        return arr / 65535.0
    if not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(f"{name}: unsupported dtype {arr.dtype} (use float in [0, 1], uint8 or uint16)")
    arr = arr.astype(np.float64)
    if not np.isfinite(arr).all():
        raise ValueError(f"{name}: image contains NaN or inf")
    return arr


def _prepare(img: np.ndarray, img2: np.ndarray, crop_border: int, fg_threshold: float | None,
             kwargs: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """SR and GT as cropped float64 [0, 1] slices, and the cropped foreground mask if asked."""
    if kwargs.get("test_y_channel"):
        raise ValueError("test_y_channel: true has no meaning for single-channel MR slices")
    if kwargs.get("input_order", "HWC") != "HWC":
        raise ValueError(f"input_order {kwargs['input_order']!r}: MR metrics take HxW or HxWx1 arrays")
    sr, gt = to_unit_float(img, "img (SR)"), to_unit_float(img2, "img2 (GT)")
    if sr.shape != gt.shape:
        raise ValueError(f"SR and GT shapes differ: {sr.shape} vs {gt.shape}")
    mask = None if fg_threshold is None else foreground_mask(gt, fg_threshold)
    if crop_border:
        if 2 * crop_border >= min(gt.shape):
            raise ValueError(f"crop_border {crop_border} leaves nothing of a {gt.shape} slice")
        crop = (slice(crop_border, -crop_border), slice(crop_border, -crop_border))
        sr, gt = sr[crop], gt[crop]
        mask = None if mask is None else mask[crop]
    return sr, gt, mask


def _psnr(mse: float) -> float:
    return 10.0 * math.log10(1.0 / max(mse, _MSE_FLOOR))


def psnr_db(mse: np.ndarray) -> np.ndarray:
    """PSNR in dB of [0, 1] data for an array of MSEs, floored as every metric here floors it."""
    return 10.0 * np.log10(1.0 / np.maximum(mse, _MSE_FLOOR))


def ssim_maps(sr: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """SSIM maps of [0, 1] slices over the window's valid part: ``(..., H, W)`` in,
    ``(..., H-10, W-10)`` out (Wang et al. 2004: Gaussian 11x11 window, sigma 1.5, L = 1).

    The separable Gaussian runs over every slice stacked into one tall image; it mixes
    neighbouring slices only within 5 rows of their edges, which the valid part drops. One slice
    or a whole stack gives the same map per slice.
    """
    sr, gt = np.asarray(sr, dtype=np.float64), np.asarray(gt, dtype=np.float64)
    if min(gt.shape[-2:]) <= 2 * _SSIM_RADIUS:
        raise ValueError(f"SSIM needs a slice larger than 11x11 after cropping, got {gt.shape[-2:]}")
    lead, (h, w) = gt.shape[:-2], gt.shape[-2:]
    stats = np.stack([sr.reshape(-1, h, w), gt.reshape(-1, h, w), sr.reshape(-1, h, w) ** 2,
                      gt.reshape(-1, h, w) ** 2, (sr * gt).reshape(-1, h, w)])  # (5, n, H, W)
    filtered = cv2.sepFilter2D(stats.reshape(-1, w), -1, _SSIM_GAUSS_1D, _SSIM_GAUSS_1D)
    r = _SSIM_RADIUS
    mu_x, mu_y, xx, yy, xy = filtered.reshape(stats.shape)[:, :, r:-r, r:-r]
    var_x, var_y, cov = xx - mu_x * mu_x, yy - mu_y * mu_y, xy - mu_x * mu_y
    numerator = (2 * mu_x * mu_y + _C1) * (2 * cov + _C2)
    out = numerator / ((mu_x * mu_x + mu_y * mu_y + _C1) * (var_x + var_y + _C2))
    return out.reshape(*lead, h - 2 * r, w - 2 * r)


@METRIC_REGISTRY.register()
def calculate_psnr_mr(img: np.ndarray, img2: np.ndarray, crop_border: int = 0, **kwargs: Any) -> float:
    """Whole-slice PSNR in dB on [0, 1] data: 10 log10(1 / MSE), MSE floored at 1e-10."""
    sr, gt, _ = _prepare(img, img2, crop_border, None, kwargs)
    return _psnr(float(np.mean((sr - gt) ** 2)))


@METRIC_REGISTRY.register()
def calculate_ssim_mr(img: np.ndarray, img2: np.ndarray, crop_border: int = 0, **kwargs: Any) -> float:
    """Whole-slice SSIM (Wang et al. 2004): mean of the valid-part Gaussian SSIM map, L = 1."""
    sr, gt, _ = _prepare(img, img2, crop_border, None, kwargs)
    return float(ssim_maps(sr, gt).mean())


@METRIC_REGISTRY.register()
def calculate_psnr_fg(img: np.ndarray, img2: np.ndarray, crop_border: int = 0,
                      fg_threshold: float = DEFAULT_FG_THRESHOLD, **kwargs: Any) -> float:
    """Foreground PSNR in dB: the MSE over ``fill_holes(GT > fg_threshold)`` only.

    Returns :data:`NO_FOREGROUND` (NaN) when the mask is empty.
    """
    sr, gt, mask = _prepare(img, img2, crop_border, fg_threshold, kwargs)
    if not mask.any():
        return NO_FOREGROUND
    return _psnr(float(np.mean((sr[mask] - gt[mask]) ** 2)))


@METRIC_REGISTRY.register()
def calculate_ssim_fg(img: np.ndarray, img2: np.ndarray, crop_border: int = 0,
                      fg_threshold: float = DEFAULT_FG_THRESHOLD, **kwargs: Any) -> float:
    """Foreground SSIM: mean of the SSIM map over the foreground pixels in its valid part.

    Returns :data:`NO_FOREGROUND` (NaN) when no foreground pixel lies in the valid part.
    """
    sr, gt, mask = _prepare(img, img2, crop_border, fg_threshold, kwargs)
    ssim_map = ssim_maps(sr, gt)
    r = _SSIM_RADIUS
    mask = mask[r:-r, r:-r]
    if not mask.any():
        return NO_FOREGROUND
    return float(ssim_map[mask].mean())
