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

Display convention (:data:`DISPLAY`, :func:`plane_stack`): a slice is a picture with the anatomy
upright, the same for every modality, so a network sees one orientation per plane:

- axial: anterior at the top, the patient's right on the image's right (``vol[:, ::-1, k].T``);
- coronal: superior at the top, the patient's right on the image's right (``vol[:, k, ::-1].T``);
- sagittal: superior at the top, anterior on the left (``vol[k, ::-1, ::-1].T``).

Right on the right is the neurological convention (radiology puts it on the left); a network is
indifferent to a mirror image (training flips at random) but not to a plane of other anatomy.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from nibabel import orientations

from ..protocol import ACQUISITION, ANATOMICAL_PLANES, PLANES

__all__ = ["PLANES", "ANATOMICAL_PLANES", "DISPLAY", "acquisition_voxel_axis", "slice_axis", "plane_name",
           "ras_orientation", "plane_stack", "unplane_stack", "plane_pixel_axes"]

#: RAS+ axis normal to the plane -> (row RAS axis, rows run towards -, column RAS axis, columns
#: run towards -): the picture's top row is the + end of the row axis when the flag is True
DISPLAY: dict[int, tuple[int, bool, int, bool]] = {
    2: (1, True, 0, False),   # axial: anterior at the top, patient's right on the right
    1: (2, True, 0, False),   # coronal: superior at the top, patient's right on the right
    0: (2, True, 1, True),    # sagittal: superior at the top, anterior on the left
}


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
    if plane != ACQUISITION:
        raise ValueError(f"unknown plane {plane!r} (choose from {', '.join(PLANES)})")
    ornt = ras_orientation(affine)
    return int(ornt[acquisition_voxel_axis(zooms), 0])


def ras_orientation(affine: np.ndarray) -> np.ndarray:
    """nibabel's ``io_orientation`` of ``affine`` (stored axis -> (RAS axis, flip)) as integers.

    Raises ValueError when an axis has no direction (a zero column: the orientation is unknown).
    """
    ornt = orientations.io_orientation(np.asarray(affine, dtype=np.float64)[:4, :4])
    if not np.isfinite(ornt).all():
        raise ValueError("unknown orientation: the affine gives a voxel axis no direction")
    return ornt.astype(int)


def plane_pixel_axes(ras_axis: int) -> tuple[int, int]:
    """The RAS+ axes of the rows and the columns of a slice normal to ``ras_axis``."""
    row, _, col, _ = DISPLAY[_check_axis(ras_axis)]
    return row, col


def plane_stack(volume_ras: np.ndarray, ras_axis: int) -> np.ndarray:
    """The slices of a canonical RAS+ volume normal to ``ras_axis`` as ``(n, height, width)``,
    each upright by :data:`DISPLAY` (a contiguous copy)."""
    row, row_flip, col, col_flip = DISPLAY[_check_axis(ras_axis)]
    stack = np.transpose(np.asarray(volume_ras), (ras_axis, row, col))
    return np.ascontiguousarray(stack[:, ::-1 if row_flip else 1, ::-1 if col_flip else 1])


def unplane_stack(stack: np.ndarray, ras_axis: int) -> np.ndarray:
    """Inverse of :func:`plane_stack`: ``(n, height, width)`` slices back to a RAS+ volume
    (a view; the in-plane size may differ from the source's, e.g. after super-resolution)."""
    row, row_flip, col, col_flip = DISPLAY[_check_axis(ras_axis)]
    upright = np.asarray(stack)[:, ::-1 if row_flip else 1, ::-1 if col_flip else 1]
    return np.transpose(upright, np.argsort((ras_axis, row, col)))


def _check_axis(ras_axis: int) -> int:
    if ras_axis not in DISPLAY:
        raise ValueError(f"RAS axis must be 0, 1 or 2, got {ras_axis!r}")
    return int(ras_axis)


def plane_name(ras_axis: int) -> str:
    """The anatomical name of the plane normal to RAS+ axis ``ras_axis``."""
    for name, axis in ANATOMICAL_PLANES.items():
        if axis == ras_axis:
            return name
    raise ValueError(f"RAS axis must be 0, 1 or 2, got {ras_axis!r}")
