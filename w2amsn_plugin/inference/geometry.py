"""Voxel-grid geometry of a super-resolved NIfTI volume: planes, reorientation, affines, header.

Super-resolving by ``s`` along a voxel axis divides that axis' voxel size by ``s`` and keeps the
field of view: the volume's outer voxel *edges* stay where they were in world (scanner/MNI)
coordinates. Output voxel ``j`` along such an axis therefore sits at input voxel coordinate
``(j + 0.5) / s - 0.5``, the same pixel-centre convention as MATLAB's ``imresize`` (and so as the
bicubic degradation the network learnt to invert, paper section IV-A). Everything here is a map
between voxel grids, so it is applied to the qform and the sform alike and both keep their codes.
"""
from __future__ import annotations

import itertools
from typing import Sequence

import nibabel as nib
import numpy as np
from nibabel import orientations

__all__ = ["PLANES", "CANONICAL_AXCODES", "canonical_ornt", "to_canonical", "from_canonical",
           "input_axes", "upscale_voxel_map", "upscaled_affine", "voxel_corners_world",
           "sr_image"]

#: anatomical plane -> the RAS+ (canonical) axis normal to it, i.e. the axis slices are taken along
PLANES: dict[str, int] = {"sagittal": 0, "coronal": 1, "axial": 2}
CANONICAL_AXCODES = ("R", "A", "S")


def canonical_ornt(affine: np.ndarray) -> np.ndarray:
    """nibabel orientation (``(3, 2)``: target axis, flip) taking the array to closest RAS+."""
    return orientations.io_orientation(np.asarray(affine)[:4, :4])


def to_canonical(data: np.ndarray, ornt: np.ndarray) -> np.ndarray:
    """``data`` (first 3 axes spatial) transposed/flipped into RAS+ order (a view, no copy)."""
    return orientations.apply_orientation(data, ornt)


def from_canonical(data: np.ndarray, ornt: np.ndarray) -> np.ndarray:
    """Inverse of :func:`to_canonical`: a RAS+ array back into the input's axis order (a view)."""
    back = orientations.ornt_transform(orientations.axcodes2ornt(CANONICAL_AXCODES), ornt)
    return orientations.apply_orientation(data, back)


def input_axes(canonical_axes: Sequence[int], ornt: np.ndarray) -> tuple[int, ...]:
    """The input array's axes that become ``canonical_axes`` after :func:`to_canonical`."""
    target = [int(t) for t in ornt[:, 0]]
    return tuple(target.index(a) for a in canonical_axes)


def upscale_voxel_map(scales: Sequence[float]) -> np.ndarray:
    """4x4 map from output voxel indices to input voxel indices for per-axis factors ``scales``
    (1 = axis unchanged): ``i = (j + 0.5) / s - 0.5``, so the outer voxel edges coincide."""
    s = np.asarray(scales, dtype=np.float64)
    vox = np.eye(4)
    vox[:3, :3] = np.diag(1.0 / s)
    vox[:3, 3] = 0.5 / s - 0.5
    return vox


def upscaled_affine(affine: np.ndarray, scales: Sequence[float]) -> np.ndarray:
    """``affine`` of the grid refined ``scales`` times per voxel axis (same world extent)."""
    return np.asarray(affine, dtype=np.float64) @ upscale_voxel_map(scales)


def voxel_corners_world(affine: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """World coordinates ``(8, 3)`` of the volume's outer corners (voxel edges, not centres)."""
    corners = np.array([[-0.5 if c == 0 else n - 0.5 for c, n in zip(bits, shape[:3])]
                        for bits in itertools.product((0, 1), repeat=3)])
    return nib.affines.apply_affine(affine, corners)


def sr_image(ref: nib.spatialimages.SpatialImage, data: np.ndarray, scales: Sequence[float],
             description: str = "") -> nib.Nifti1Image | nib.Nifti2Image:
    """NIfTI image of ``data``: the input ``ref`` refined ``scales`` times per voxel axis.

    The data is written with ``data.dtype`` and no intensity scaling. NIfTI input keeps its
    header (qform and sform, each mapped through :func:`upscale_voxel_map`, with their codes,
    units, intent, dim_info); an Analyze input becomes a NIfTI-1 image of its affine (sform code
    'aligned', as nibabel writes new images). Only the three spatial zooms change.
    """
    vox = upscale_voxel_map(scales)
    if isinstance(ref, (nib.Nifti1Image, nib.Nifti2Image)):  # Nifti2Image subclasses Nifti1Image
        header = ref.header.copy()
        qform, sform = header.get_qform(), header.get_sform()
        qcode, scode = int(header["qform_code"]), int(header["sform_code"])
        header.set_data_shape(data.shape)
        header.set_data_dtype(data.dtype)
        header.set_zooms(tuple(float(z) / s for z, s in zip(header.get_zooms()[:3], scales)))
        header.set_qform(qform @ vox, code=qcode)
        header.set_sform(sform @ vox, code=scode)
        header.set_slope_inter(np.nan, np.nan)
        header["cal_min"], header["cal_max"] = 0, 0
        if description:
            header["descrip"] = description.encode()[:79]
        out = type(ref)(data, header.get_best_affine(), header)
    else:
        out = nib.Nifti1Image(data, upscaled_affine(ref.affine, scales))
        out.header.set_xyzt_units("mm")  # Analyze 7.5 voxel sizes are in mm
        if description:
            out.header["descrip"] = description.encode()[:79]
    out.set_data_dtype(data.dtype)
    return out
