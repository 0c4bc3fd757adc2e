"""The training pairs of one scan: its in-plane slices as high resolution, the same slices
degraded along one in-plane axis as low resolution (SMORE, Zhao et al., IEEE TMI 2021, sec. II-B;
Magn. Reson. Imaging 2019, Fig. 2).

The volume comes with its coarse axis last, so ``volume[:, :, z]`` is an acquired (sharp) slice.
Each of the two in-plane axes in turn is the degraded axis (SMORE uses both, so the network sees
the anatomy of both through-plane orientations). Along it:

1. the slice is resampled once with a cubic B-spline onto pixels of ``S/k`` mm (S: slice
   spacing, k: the network's integer factor), a no-op when the factor is an integer;
2. :meth:`SliceProfile.matrix` blurs it with the slice profile, centred at fine pixel
   ``r + (k - 1)/2`` for every ``r`` ("all phases"), so rows ``r0, r0 + k, ...`` of the result are
   the thick slices of the fine rows ``[r0, r0 + k), [r0 + k, r0 + 2k), ...``: every crop of the
   fine stack has its low-resolution partner, with the same voxel-centre convention as the
   output grid (:mod:`.geometry`).

:class:`TrainingPairs` holds, per orientation, the fine stack and its blurred stack with the
degraded axis as rows (``(slices, rows, columns)``), ready for patch sampling.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .slice_profile import SliceProfile, apply_along

__all__ = ["Orientation", "TrainingPairs", "build_pairs", "resample_axis"]


@functools.lru_cache(maxsize=32)
def _spline_matrix(n: int, length: int) -> np.ndarray:
    """``(length, n)`` matrix of 1-D cubic B-spline resampling (mirrored borders, voxel edges
    kept: SciPy's ``zoom`` in grid mode, applied to each unit vector, so it is exact and 1-D)."""
    cols = [ndimage.zoom(e, length / n, order=3, mode="grid-mirror", grid_mode=True)
            for e in np.eye(n)]
    matrix = np.stack(cols, axis=1)
    assert matrix.shape == (length, n), (matrix.shape, n, length)
    return matrix.astype(np.float32)


def resample_axis(volume: np.ndarray, axis: int, length: int) -> np.ndarray:
    """``volume`` resampled along ``axis`` to ``length`` samples spanning the same extent (voxel
    edges kept; cubic B-spline, mirrored borders); float32. The identity at the same length."""
    volume = np.asarray(volume, dtype=np.float32)
    if volume.shape[axis] == length:
        return volume
    return apply_along(volume, _spline_matrix(volume.shape[axis], length), axis)


@dataclass(frozen=True)
class Orientation:
    """One degraded axis: the fine stack ``hr`` and its all-phase blurred stack ``blurred``, both
    ``(slices, rows, columns)`` with the degraded axis as rows."""

    axis: int
    hr: np.ndarray
    blurred: np.ndarray


@dataclass(frozen=True)
class TrainingPairs:
    """Both orientations of one scan at network factor ``factor``."""

    factor: int
    orientations: tuple[Orientation, ...]


def build_pairs(volume: np.ndarray, spacing: tuple[float, float, float], slice_spacing: float,
                factor: int, profile: SliceProfile) -> TrainingPairs:
    """The :class:`TrainingPairs` of ``volume`` (normalised, coarse axis last, voxel sizes
    ``spacing``), for slices ``slice_spacing`` mm apart and a network factor ``factor``."""
    orientations = []
    for axis in (0, 1):
        n = volume.shape[axis]
        fine = max(factor, round(n * spacing[axis] * factor / slice_spacing))
        pixel_mm = n * spacing[axis] / fine
        hr = resample_axis(volume, axis, fine)
        centres = np.arange(fine) + (factor - 1) / 2
        blurred = apply_along(hr, profile.matrix(centres, fine, pixel_mm), axis)
        # (slices, rows = degraded axis, columns = the other in-plane axis)
        order = (2, axis, 1 - axis)
        orientations.append(Orientation(axis, np.ascontiguousarray(hr.transpose(order)),
                                        np.ascontiguousarray(blurred.transpose(order))))
    return TrainingPairs(factor, tuple(orientations))
