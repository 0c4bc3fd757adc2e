"""Per-volume intensity normalisation of MR volumes (paper section IV-A; docs/data.md).

MR intensities have no fixed range, so every volume is mapped to [0, 1] on its own:
``lo`` is the volume's minimum (0 for the usual non-negative magnitude images) and ``hi`` its
``percentile``-th percentile; values are clipped to [lo, hi] and scaled linearly. Clipping at a
high percentile (default 99.5) keeps a few bright outliers (vessels, fat, artefacts) from
compressing the anatomy into a small part of the range. Training data, inference and the demo
all use this one definition, so a model sees the same intensities everywhere.
"""
from __future__ import annotations

import numpy as np

from ..protocol import PAPER

__all__ = ["DEFAULT_PERCENTILE", "intensity_window", "normalize_intensity", "denormalize_intensity"]

#: the paper's clip percentile (:data:`w2amsn_plugin.protocol.PAPER`)
DEFAULT_PERCENTILE = PAPER.percentile


def intensity_window(volume: np.ndarray, percentile: float = DEFAULT_PERCENTILE
                     ) -> tuple[float, float]:
    """The window ``(lo, hi)`` :func:`normalize_intensity` maps to [0, 1]: the volume's minimum
    and its ``percentile``-th percentile (its maximum where that percentile is the minimum).

    Raises ValueError for NaN/inf values or a constant volume (nothing to normalise).
    """
    if not 0 < percentile <= 100:
        raise ValueError(f"percentile must be in (0, 100], got {percentile}")
    vol = np.asarray(volume, dtype=np.float32)
    if not np.isfinite(vol).all():
        raise ValueError("volume contains NaN or infinite values")
    lo = float(vol.min())
    hi = float(np.percentile(vol, percentile))
    if hi <= lo:
        hi = float(vol.max())
    if hi <= lo:
        raise ValueError("volume is constant; it cannot be normalised")
    return lo, hi


def normalize_intensity(volume: np.ndarray, percentile: float = DEFAULT_PERCENTILE
                        ) -> tuple[np.ndarray, float, float]:
    """Map ``volume`` to float32 in [0, 1]; return ``(normalised, lo, hi)``.

    Raises ValueError for NaN/inf values or a constant volume (nothing to normalise).
    """
    lo, hi = intensity_window(volume, percentile)
    vol = np.asarray(volume, dtype=np.float32)
    out = (np.clip(vol, lo, hi) - lo) / (hi - lo)
    return out.astype(np.float32, copy=False), lo, hi


def denormalize_intensity(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Inverse of :func:`normalize_intensity` (up to the clipping): ``x * (hi - lo) + lo``."""
    return np.asarray(x, dtype=np.float32) * np.float32(hi - lo) + np.float32(lo)
