"""Which plane of a volume is sliced: the one definition shared by data preparation and inference.

The paper cuts each IXI volume "to 240x240x96, where 96 indicates the number of slices" (section
IV-A): a 240x240 crop of the plane in which the volume was *acquired*, 96 of its slices. IXI's T1
is acquired sagittally (256x256x150 at 0.94x0.94x1.2 mm), T2 and PD axially (256x256x130), so the
acquisition plane differs per modality. Planes are named:

- ``acquisition``: the plane of the two finest axes of the stored voxel grid (ties go to the
  stored first two axes, the usual in-plane axes of a 2-D acquisition); the slices run along the
  remaining axis;
- ``axial``, ``coronal``, ``sagittal``: the anatomical planes, normal to the RAS+ axes S, A and R.

Everything is expressed on the canonical RAS+ array (:func:`w2amsn_plugin.inference.geometry.
to_canonical`, nibabel's closest-canonical reorientation: flips and permutations only): a plane is
the RAS+ axis normal to it (:func:`slice_axis`).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from nibabel import orientations

__all__ = ["PLANES", "ANATOMICAL_PLANES", "acquisition_voxel_axis", "slice_axis", "plane_name"]

#: anatomical plane -> the RAS+ (canonical) axis normal to it, i.e. the axis slices are taken along
ANATOMICAL_PLANES: dict[str, int] = {"sagittal": 0, "coronal": 1, "axial": 2}
#: every value ``--plane`` takes (the default first)
PLANES: tuple[str, ...] = ("acquisition", *ANATOMICAL_PLANES)


def acquisition_voxel_axis(zooms: Sequence[float], rtol: float = 1e-3) -> int:
    """The stored voxel axis *normal* to the acquisition plane: the coarsest of the three, or
    axis 2 when the two finest are not unique (e.g. an isotropic volume; ties go to the stored
    first two axes being the plane)."""
    z = [float(v) for v in zooms[:3]]
    if len(z) != 3 or min(z) <= 0:
        raise ValueError(f"voxel sizes {tuple(zooms)} are not three positive numbers")
    order = sorted(range(3), key=lambda ax: (z[ax], ax))  # finest first, stored order on ties
    coarsest = order[2]
    if abs(z[coarsest] - z[order[1]]) <= rtol * z[coarsest]:
        return 2  # no single coarsest axis: the stored first two axes are the plane
    return coarsest


def slice_axis(plane: str, affine: np.ndarray, zooms: Sequence[float]) -> int:
    """The RAS+ axis (0 = R, 1 = A, 2 = S) along which ``plane``'s slices are taken, for a volume
    with this ``affine`` and voxel sizes ``zooms`` (as stored, before reorientation)."""
    if plane in ANATOMICAL_PLANES:
        return ANATOMICAL_PLANES[plane]
    if plane != "acquisition":
        raise ValueError(f"unknown plane {plane!r} (choose from {', '.join(PLANES)})")
    ornt = orientations.io_orientation(np.asarray(affine)[:4, :4])
    return int(ornt[acquisition_voxel_axis(zooms), 0])


def plane_name(ras_axis: int) -> str:
    """The anatomical name of the plane normal to RAS+ axis ``ras_axis``."""
    for name, axis in ANATOMICAL_PLANES.items():
        if axis == ras_axis:
            return name
    raise ValueError(f"RAS axis must be 0, 1 or 2, got {ras_axis!r}")
