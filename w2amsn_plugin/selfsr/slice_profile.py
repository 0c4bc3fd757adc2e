"""The slice profile: how one acquired slice averages the object along the slice axis, and the
degradation it defines (blur with the profile, sample at the slice spacing).

SMORE (Zhao et al., Magn. Reson. Imaging 2019, sec. 2.2; IEEE TMI 2021, eq. 1) models a thick
slice as the object convolved with the slice-selection profile and sampled at the slice spacing;
by default a Gaussian whose FWHM is the slice thickness. A rectangular profile (an ideal slab) and
a measured profile (``--slice-profile FILE.npy``: a 1-D array sampled at the in-plane spacing,
centred) are the alternatives. ``mixed`` is for a profile that is not known: training draws each
patch's degradation from the Gaussian or the rectangle (:data:`MIXED_KINDS`), so the network
undoes either; as one profile (the self-consistency score) it is the mean of the two. A thickness
below the spacing (a slice gap) is the same model with a narrower profile: the samples then
alias, and the network learns that too.

Every degradation here is one matrix along one axis (:meth:`SliceProfile.matrix`): row ``i`` holds
the profile centred at a (possibly fractional) position of the fine grid, integrated over each
fine pixel and normalised to sum 1 (so the truncated rows at the borders keep the mean).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.special import erf

from .errors import SelfSRError

__all__ = ["MIXED_KINDS", "PROFILE_KINDS", "SliceProfile", "apply_along", "load_profile"]

PROFILE_KINDS = ("gaussian", "rect", "mixed", "file")
#: the profiles a ``mixed`` profile trains on, with equal probability
MIXED_KINDS = ("gaussian", "rect")
_FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))


@dataclass(frozen=True)
class SliceProfile:
    """A slice profile in millimetres.

    Args:
        kind: ``'gaussian'`` (FWHM = ``thickness``), ``'rect'`` (width ``thickness``),
            ``'mixed'`` (either, module doc) or ``'file'`` (``samples`` at ``sample_mm``
            spacing, centred on the middle sample).
        thickness: Slice thickness (mm); for ``'file'``, the profile's FWHM (for reports).
        samples: The measured profile (``'file'`` only).
        sample_mm: Spacing of ``samples`` (mm).
    """

    kind: str
    thickness: float
    samples: tuple[float, ...] | None = None
    sample_mm: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in PROFILE_KINDS:
            raise SelfSRError(f"slice profile must be one of {PROFILE_KINDS}, got {self.kind!r}")
        if not (self.thickness > 0 and math.isfinite(self.thickness)):
            raise SelfSRError(f"slice thickness must be a positive number of mm, got {self.thickness}")

    def pixel_weights(self, offsets_mm: np.ndarray, pixel_mm: float) -> np.ndarray:
        """The profile integrated over fine pixels of width ``pixel_mm`` centred at ``offsets_mm``
        from the slice centre (unnormalised)."""
        lo, hi = offsets_mm - pixel_mm / 2, offsets_mm + pixel_mm / 2
        if self.kind == "mixed":  # the mean of the two, each of unit area
            parts = [SliceProfile(kind, self.thickness).pixel_weights(offsets_mm, pixel_mm)
                     for kind in MIXED_KINDS]
            return 0.5 * (parts[0] + parts[1] / self.thickness)
        if self.kind == "gaussian":
            scale = math.sqrt(2.0) * self.thickness / _FWHM_PER_SIGMA
            return 0.5 * (erf(hi / scale) - erf(lo / scale))
        if self.kind == "rect":
            half = self.thickness / 2
            return np.clip(np.minimum(hi, half) - np.maximum(lo, -half), 0.0, None)
        values = np.asarray(self.samples, dtype=np.float64)
        pos = (np.arange(values.size) - (values.size - 1) / 2) * self.sample_mm
        return np.interp(offsets_mm, pos, values, left=0.0, right=0.0) * pixel_mm

    def matrix(self, centres: np.ndarray, n_fine: int, pixel_mm: float) -> np.ndarray:
        """``(len(centres), n_fine)`` float32 matrix sampling a fine axis of ``n_fine`` pixels of
        ``pixel_mm`` at ``centres`` (fine pixel coordinates, fractional allowed)."""
        centres = np.asarray(centres, dtype=np.float64)
        offsets = (np.arange(n_fine)[None, :] - centres[:, None]) * pixel_mm
        w = self.pixel_weights(offsets, pixel_mm)
        total = w.sum(axis=1, keepdims=True)
        nearest = np.clip(np.rint(centres).astype(int), 0, n_fine - 1)
        empty = total[:, 0] <= 0  # a profile narrower than a pixel between two pixel centres
        w[empty, nearest[empty]] = 1.0
        total[empty] = 1.0
        return (w / total).astype(np.float32)

    def training_profiles(self) -> tuple["SliceProfile", ...]:
        """The profiles training degrades with: :data:`MIXED_KINDS` for ``mixed``, else itself."""
        if self.kind == "mixed":
            return tuple(SliceProfile(kind, self.thickness) for kind in MIXED_KINDS)
        return (self,)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "thickness_mm": self.thickness}
        if self.kind == "gaussian":
            out["fwhm_mm"] = self.thickness
        if self.samples is not None:
            out.update(samples=list(self.samples), sample_mm=self.sample_mm)
        return out


def apply_along(volume: np.ndarray, matrix: np.ndarray, axis: int) -> np.ndarray:
    """``matrix`` (m x n) applied along ``axis`` (length n) of ``volume``: float32, length m there."""
    out = np.tensordot(matrix, np.asarray(volume, dtype=np.float32), axes=([1], [axis]))
    return np.ascontiguousarray(np.moveaxis(out, 0, axis), dtype=np.float32)


def load_profile(path: str | Path, sample_mm: float) -> SliceProfile:
    """A measured profile from a ``.npy`` file: 1-D, finite, non-negative, sampled at
    ``sample_mm`` (the in-plane spacing), centred on its middle sample."""
    path = Path(path)
    try:
        values = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise SelfSRError(f"{path}: not a readable .npy slice profile ({err})") from err
    values = np.asarray(values, dtype=np.float64).squeeze()
    if values.ndim != 1 or values.size < 1:
        raise SelfSRError(f"{path}: a slice profile must be a 1-D array, got shape {values.shape}")
    if not np.all(np.isfinite(values)) or values.min() < 0 or values.sum() <= 0:
        raise SelfSRError(f"{path}: a slice profile must be finite, non-negative and not all zero")
    peak = values.max()
    fwhm = float(np.count_nonzero(values >= peak / 2) * sample_mm)
    return SliceProfile("file", fwhm, tuple(float(v) for v in values), float(sample_mm))
