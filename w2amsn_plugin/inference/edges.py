"""Edges of a super-resolved magnitude image: no values the input could not have, and its
background left at zero.

A network trained on normalised slices overshoots at sharp edges (dark undershoot halos where a
skull-stripped brain meets the zero background, small positive values in slice corners where the
input is exactly 0). For a magnitude image (no negative voxel in the input) the output is clamped
to the input volume's range ``[min, max]``, and voxels whose input neighbourhood is all zero (the
input voxel under them and its in-plane neighbours, the support of the bicubic interpolation the
network learnt to invert, paper section IV-A) are set to exactly 0. An input with negative values
(phase, a difference image) is left as the network gives it. ``w2amsn infer --no-edges`` (and
``edges=False`` in the library) turns this off.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

__all__ = ["EdgeFix", "background_mask", "fix_edges"]


@dataclass(frozen=True)
class EdgeFix:
    """What :func:`fix_edges` did to one volume (``applied`` False: nothing, and why)."""

    applied: bool
    why: str
    range: tuple[float, float] | None = None
    clamped_voxels: int = 0
    background_voxels: int = 0

    def record(self) -> dict:
        """The sidecar's entry for this volume."""
        return {"applied": self.applied, "why": self.why,
                "range": None if self.range is None else list(self.range),
                "clamped_voxels": self.clamped_voxels, "background_voxels": self.background_voxels}


def _grow(mask: np.ndarray, axis: int) -> np.ndarray:
    """``mask`` with each True voxel's two neighbours along ``axis`` set too."""
    grown = mask.copy()
    lead = (slice(None),) * axis
    grown[lead + (slice(None, -1),)] |= mask[lead + (slice(1, None),)]
    grown[lead + (slice(1, None),)] |= mask[lead + (slice(None, -1),)]
    return grown


def background_mask(volume: np.ndarray, in_plane_axes: Sequence[int]) -> np.ndarray:
    """True where ``volume`` and its neighbours along ``in_plane_axes`` (a 3x3 in-plane
    neighbourhood) are all exactly zero."""
    nonzero = volume != 0
    for axis in in_plane_axes:
        nonzero = _grow(nonzero, axis)
    return ~nonzero


def fix_edges(sr: np.ndarray, lr: np.ndarray, scales: Sequence[int]) -> EdgeFix:
    """Clamp ``sr`` (float, in place) to ``lr``'s range and zero its background (module
    docstring), for a 3-D ``lr`` refined ``scales[axis]`` times along each axis into ``sr``."""
    lo, hi = float(lr.min()), float(lr.max())
    if lo < 0:
        return EdgeFix(False, "the input has negative values (not a magnitude image)")
    clamped = int(np.count_nonzero((sr < lo) | (sr > hi)))
    np.clip(sr, lo, hi, out=sr)
    in_plane = [ax for ax, s in enumerate(scales) if s != 1]
    mask = background_mask(lr, in_plane)
    for ax in in_plane:
        mask = np.repeat(mask, scales[ax], axis=ax)
    background = int(np.count_nonzero(mask & (sr != 0)))
    sr[mask] = 0
    return EdgeFix(True, "magnitude image: clamped to the input's range, background kept at 0",
                   (lo, hi), clamped, background)
