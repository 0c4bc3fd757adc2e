"""Voxel-grid geometry of a super-resolved volume: reorientation, affines, the output image.

Super-resolving by ``s`` along a voxel axis divides that axis' voxel size by ``s`` and keeps the
field of view: the volume's outer voxel *edges* stay where they were in world (scanner/MNI)
coordinates. Output voxel ``j`` along such an axis therefore sits at input voxel coordinate
``(j + 0.5) / s - 0.5``, the same pixel-centre convention as MATLAB's ``imresize`` (and so as the
bicubic degradation the network learnt to invert, paper section IV-A). Everything here is a map
between voxel grids, so it is applied to the qform and the sform alike and both keep their codes.
Planes (which RAS+ axis the slices are taken along) are defined once, in
:mod:`w2amsn_plugin.data.planes`.
"""
from __future__ import annotations

import itertools
from typing import Sequence

import nibabel as nib
import numpy as np
from nibabel import orientations

__all__ = ["CANONICAL_AXCODES", "canonical_ornt", "to_canonical", "from_canonical",
           "input_axes", "upscale_voxel_map", "upscaled_affine", "voxel_corners_world",
           "sr_image"]

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


def _nifti_header(ref: nib.spatialimages.SpatialImage, klass: type, shape: Sequence[int],
                  dtype: np.dtype, scales: Sequence[float]) -> nib.Nifti1Header:
    """The NIfTI header of ``ref`` (NIfTI-1/2, single file or pair) for the refined grid: qform
    and sform mapped through :func:`upscale_voxel_map` with their codes, three zooms divided."""
    vox = upscale_voxel_map(scales)
    header = klass.header_class.from_header(ref.header)
    qform, sform = ref.header.get_qform(), ref.header.get_sform()
    qcode, scode = int(ref.header["qform_code"]), int(ref.header["sform_code"])
    header.set_data_shape(shape)
    header.set_data_dtype(dtype)
    zooms = list(ref.header.get_zooms())
    zooms[:3] = [float(z) / s for z, s in zip(zooms[:3], scales)]
    header.set_zooms(zooms[:len(shape)])
    header.set_qform(qform @ vox, code=qcode)
    header.set_sform(sform @ vox, code=scode)
    header.set_slope_inter(np.nan, np.nan)
    if np.dtype(dtype).kind in "iu":  # the display window in the type's range
        info = np.iinfo(dtype)
        for key in ("cal_min", "cal_max"):
            header[key] = np.clip(header[key], info.min, info.max)
    return header


def _descrip(ref: nib.spatialimages.SpatialImage, tag: str) -> bytes:
    """``ref``'s ``descrip`` with ``tag`` appended (``"<descrip>; <tag>"``), the description cut
    so that the whole tag fits the field's 79 bytes."""
    tag_bytes = tag.encode()[:79]
    old = bytes(ref.header["descrip"]).rstrip(b"\0 ") if "descrip" in ref.header else b""
    if not old:
        return tag_bytes
    room = 79 - len(tag_bytes) - 2
    return (old[:room] + b"; " + tag_bytes) if room > 0 else tag_bytes


def sr_image(ref: nib.spatialimages.SpatialImage, data: np.ndarray, scales: Sequence[float],
             description: str = "", klass: type | None = None) -> nib.spatialimages.SpatialImage:
    """Image of class ``klass`` (default: NIfTI-1, NIfTI-2 for a NIfTI-2 ``ref``) holding
    ``data``, the 3-D or 4-D input ``ref`` refined ``scales`` times per spatial voxel axis.

    The data is written with ``data.dtype`` and no intensity scaling. A NIfTI ``ref`` written as
    NIfTI keeps its header (qform and sform, each mapped through :func:`upscale_voxel_map`, with
    their codes, units, intent, dim_info, the 4th zoom); an MGH ``ref`` written as MGH keeps its
    header (TR, flip angle, TE, TI); anything else gets a new header of its affine, mapped the
    same way (NIfTI: sform code 'aligned', as nibabel writes new images; Analyze keeps only what
    its header can hold). Only the three spatial zooms change. A NIfTI header's display window
    ``cal_min``/``cal_max`` is kept: it is in the data's real units, which the output keeps (for
    an integer output it is clipped to the type's range). ``description`` (a short tool tag) is
    appended to the header's ``descrip`` where the format has one (NIfTI, Analyze), the old text
    cut so the tag fits.
    """
    if klass is None:
        klass = nib.Nifti2Image if isinstance(ref, (nib.Nifti2Image, nib.Nifti2Pair)) \
            else nib.Nifti1Image
    affine = upscaled_affine(ref.affine, scales)
    if issubclass(klass, nib.Nifti1Pair) and isinstance(ref, nib.Nifti1Pair):
        header = _nifti_header(ref, klass, data.shape, data.dtype, scales)
        out = klass(data, header.get_best_affine(), header)
    elif issubclass(klass, nib.MGHImage) and isinstance(ref, nib.MGHImage):
        header = klass.header_class.from_header(ref.header)
        header.set_data_dtype(data.dtype)
        out = klass(data, affine, header)
    else:
        out = klass(data, affine)
        if issubclass(klass, nib.Nifti1Pair):
            out.header.set_xyzt_units("mm")  # Analyze and MGH voxel sizes are in mm
    if description and "descrip" in out.header:
        out.header["descrip"] = _descrip(ref, description)
    out.set_data_dtype(data.dtype)
    return out
