"""Reading the volume to super-resolve (every 3-D/4-D image nibabel reads) and choosing the
output voxel type."""
from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np


from .loading import InferenceError

__all__ = ["load_volume", "to_output_dtype"]


def load_volume(path: Path, volume_index: int | None
                 ) -> tuple[nib.spatialimages.SpatialImage, np.ndarray]:
    if not path.is_file():
        raise InferenceError(f"{path}: input file not found")
    try:
        img = nib.load(path)
    except Exception as err:  # nibabel raises ImageFileError, EOFError, OSError, ...
        raise InferenceError(f"{path}: cannot read as an image ({err})") from err
    if not isinstance(img, (nib.Nifti1Image, nib.Nifti2Image, nib.AnalyzeImage)):
        raise InferenceError(f"{path}: {type(img).__name__} is not a NIfTI or Analyze image")
    shape = img.shape
    if len(shape) == 4 and shape[3] == 1 and volume_index in (None, 0):
        volume_index = 0
    if len(shape) == 3:
        if volume_index not in (None, 0):
            raise InferenceError(f"{path}: 3-D volume has no --volume-index {volume_index}")
        index: tuple = ()
    elif len(shape) == 4:
        if volume_index is None:
            raise InferenceError(f"{path}: 4-D file with {shape[3]} volumes; "
                                 "pick one with --volume-index")
        if not 0 <= volume_index < shape[3]:
            raise InferenceError(f"{path}: --volume-index {volume_index} out of range "
                                 f"(0..{shape[3] - 1})")
        index = (volume_index,)
    else:
        raise InferenceError(f"{path}: shape {shape} is not a 3-D volume (or 4-D series)")
    try:
        data = np.asanyarray(img.dataobj[(..., *index)] if index else img.dataobj)
    except Exception as err:  # truncated/corrupt payloads surface here
        raise InferenceError(f"{path}: cannot read the voxel data ({err})") from err
    if data.dtype.kind not in "iuf":
        raise InferenceError(f"{path}: voxel type {data.dtype} is not integer or float")
    if data.dtype.kind == "f" and not np.isfinite(data).all():
        raise InferenceError(f"{path}: {np.count_nonzero(~np.isfinite(data))} NaN/inf voxels; "
                             "fill or mask them first")
    return img, data


def to_output_dtype(volume: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Integer inputs get their own type back (rounded, clipped to its range); others float32."""
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return np.clip(np.rint(volume), info.min, info.max).astype(dtype)
    return volume.astype(np.float32, copy=False)


