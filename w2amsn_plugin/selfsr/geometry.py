"""The scan's geometry for self-supervised SR: which voxel axis is coarse, by what factor, and
the output grid that keeps the field of view.

The coarse axis is the voxel axis with the largest spacing (the norm of its affine column, so
LPS, RAS and oblique affines are read alike); the in-plane spacing is the finer of the two others.
The factor ``s = slice spacing / in-plane spacing`` need not be an integer: the network upsamples
by ``k = ceil(s)`` (SMORE, Zhao et al., IEEE TMI 2021, sec. II-C, trains for the integer factor
and interpolates) and its output, ``n·k`` samples spaced ``S/k``, is resampled once onto the
output grid of ``n_out = round(n·s)`` voxels spanning the input's field of view ``n·S``.

Voxel centres follow :mod:`w2amsn_plugin.inference.geometry`: the outer voxel *edges* stay in
place, output voxel ``j`` sits at input voxel coordinate ``(j + 0.5)·n/n_out - 0.5``.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..inference.geometry import upscaled_affine
from .errors import SelfSRError

__all__ = ["MIN_FACTOR", "ScanGeometry", "scan_geometry", "voxel_spacings"]

#: Below this factor there is too little to gain (and a network factor of 2 would mostly resample)
MIN_FACTOR = 1.2
#: Spacings within this relative tolerance are the same (an isotropic scan)
_ISO_TOLERANCE = 0.02


def voxel_spacings(affine: np.ndarray) -> np.ndarray:
    """Voxel size along each of the three voxel axes (mm): the norms of the affine's columns."""
    return np.linalg.norm(np.asarray(affine, dtype=np.float64)[:3, :3], axis=0)


@dataclass(frozen=True)
class ScanGeometry:
    """What self-sr does to a 3-D scan of ``shape`` (voxel axes) and ``spacing`` (mm).

    Attributes:
        shape: The input's voxel grid.
        spacing: Voxel size per axis (mm).
        axis: The coarse (slice) voxel axis.
        in_plane: The target spacing along ``axis`` (the finer in-plane spacing, mm).
        factor: s = spacing[axis] / in_plane (may be non-integer).
        net_factor: k = ceil(s), the network's integer factor.
        out_len: Output voxels along ``axis``, ``round(n·s)``.
    """

    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    axis: int
    in_plane: float
    factor: float
    net_factor: int
    out_len: int

    @property
    def out_shape(self) -> tuple[int, int, int]:
        return tuple(self.out_len if ax == self.axis else n for ax, n in enumerate(self.shape))

    @property
    def out_spacing(self) -> float:
        """Output spacing along ``axis``: the field of view over ``out_len`` (~ ``in_plane``)."""
        return self.shape[self.axis] * self.spacing[self.axis] / self.out_len

    @property
    def integer(self) -> bool:
        """True when the network's output grid is the output grid (no final resampling)."""
        return self.out_len == self.shape[self.axis] * self.net_factor

    def out_affine(self, affine: np.ndarray) -> np.ndarray:
        """The output's affine: ``affine`` with the coarse axis refined, same field of view."""
        scales = [1.0, 1.0, 1.0]
        scales[self.axis] = self.out_len / self.shape[self.axis]
        return upscaled_affine(np.asarray(affine, dtype=np.float64), scales)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "out_shape": list(self.out_shape), "out_spacing": self.out_spacing}


def scan_geometry(shape: tuple[int, ...], affine: np.ndarray, slice_spacing: float | None = None,
                  name: str = "input") -> ScanGeometry:
    """The :class:`ScanGeometry` of a volume of ``shape`` with ``affine`` (one-line
    :class:`SelfSRError` for a volume that is not 3-D, is isotropic, or has a factor below
    :data:`MIN_FACTOR`). ``slice_spacing`` overrides the header's spacing of the coarse axis."""
    if len(shape) != 3:
        extra = " (a 4-D series: pick one volume first)" if len(shape) == 4 else ""
        raise SelfSRError(f"{name}: expected a 3-D volume, got shape {tuple(shape)}{extra}")
    if min(shape) < 2:
        raise SelfSRError(f"{name}: every axis needs at least 2 voxels, got shape {tuple(shape)}")
    spacing = voxel_spacings(affine)
    if not np.all(np.isfinite(spacing)) or np.any(spacing <= 0):
        raise SelfSRError(f"{name}: the header's voxel sizes {spacing.round(4).tolist()} are not positive")
    axis = int(np.argmax(spacing))
    if slice_spacing is not None:
        spacing[axis] = float(slice_spacing)
    in_plane = float(min(spacing[ax] for ax in range(3) if ax != axis))
    factor = float(spacing[axis] / in_plane)
    sizes = ", ".join(f"{v:.3g}" for v in spacing)
    if factor < 1 + _ISO_TOLERANCE:
        raise SelfSRError(f"{name}: the volume is isotropic ({sizes} mm): nothing to do")
    if factor < MIN_FACTOR:
        raise SelfSRError(f"{name}: slice spacing / in-plane spacing is {factor:.3f} ({sizes} mm), "
                          f"below {MIN_FACTOR}: too little to gain")
    net_factor = math.ceil(factor - 1e-6)
    out_len = max(1, round(shape[axis] * factor))
    return ScanGeometry(tuple(int(n) for n in shape), tuple(float(v) for v in spacing), axis,
                        in_plane, factor, net_factor, out_len)
