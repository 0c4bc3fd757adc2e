"""Metrics of the W²AMSN plugin: whole-slice and foreground PSNR/SSIM for MR, registered in
BasicSR's ``METRIC_REGISTRY`` on import (``calculate_psnr_mr``, ``calculate_ssim_mr``,
``calculate_psnr_fg``, ``calculate_ssim_fg``)."""
from __future__ import annotations

from .foreground import DEFAULT_FG_THRESHOLD, foreground_mask
from .psnr_ssim import (FLOAT_METRICS, NO_FOREGROUND, PSNR_MAX_DB, calculate_psnr_fg, calculate_psnr_mr,
                        calculate_ssim_fg, calculate_ssim_mr, to_unit_float)

__all__ = ["DEFAULT_FG_THRESHOLD", "FLOAT_METRICS", "NO_FOREGROUND", "PSNR_MAX_DB", "calculate_psnr_fg",
           "calculate_psnr_mr", "calculate_ssim_fg", "calculate_ssim_mr", "foreground_mask", "to_unit_float"]
