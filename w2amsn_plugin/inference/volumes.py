"""Reading the volume to super-resolve and choosing what is written: the image formats nibabel
both reads and writes (NIfTI-1/2, single file or .hdr/.img pair, Analyze 7.5 and SPM's variants,
FreeSurfer MGH/MGZ), 3-D or 4-D, and the output's format and voxel type (docs/inference.md)."""
from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

from .loading import InferenceError

__all__ = ["INPUT_CLASSES", "OUTPUT_SUFFIXES", "DTYPE_CHOICES", "load_volume", "output_class",
           "output_dtype", "to_output_dtype", "image_files", "strip_suffix"]

#: image classes read (Spm99/Spm2 Analyze and the NIfTI classes are AnalyzeImage subclasses)
INPUT_CLASSES = (nib.AnalyzeImage, nib.MGHImage)
#: output file name endings -> the format family written
OUTPUT_SUFFIXES = {".nii": "nifti", ".nii.gz": "nifti", ".mgh": "mgh", ".mgz": "mgh",
                   ".img": "pair", ".hdr": "pair", ".img.gz": "pair", ".hdr.gz": "pair"}
#: ``--dtype`` values; ``auto`` is the default rule of :func:`output_dtype`
DTYPE_CHOICES = ("auto", "input", "float32", "int16", "uint16")


def strip_suffix(name: str) -> tuple[str, str | None]:
    """``name`` without its image suffix (the longest of :data:`OUTPUT_SUFFIXES` it ends with),
    and that suffix (None when it has none)."""
    for suffix in sorted(OUTPUT_SUFFIXES, key=len, reverse=True):
        if name.lower().endswith(suffix):
            return name[:-len(suffix)], suffix
    return name, None


def load_volume(path: Path, volume_index: int | None
                ) -> tuple[nib.spatialimages.SpatialImage, np.ndarray]:
    """The image and its voxel data: 3-D, or 4-D (volumes last) for a series when
    ``volume_index`` is None; one-line :class:`InferenceError` naming ``path`` otherwise."""
    if not path.is_file():
        raise InferenceError(f"{path}: input file not found")
    try:
        img = nib.load(path)
    except Exception as err:  # nibabel raises ImageFileError, EOFError, OSError, ...
        raise InferenceError(f"{path}: cannot read as an image ({err})") from err
    if not isinstance(img, INPUT_CLASSES):
        raise InferenceError(f"{path}: {type(img).__name__} is not supported (NIfTI, Analyze or "
                             "MGH/MGZ); convert it to NIfTI first")
    shape = img.shape
    if len(shape) not in (3, 4):
        raise InferenceError(f"{path}: shape {shape} is not a 3-D volume (or 4-D series)")
    n_volumes = shape[3] if len(shape) == 4 else 1
    if volume_index is not None and not 0 <= volume_index < n_volumes:
        raise InferenceError(f"{path}: --volume-index {volume_index} out of range "
                             f"(0..{n_volumes - 1})")
    try:
        data = np.asanyarray(img.dataobj[..., volume_index] if len(shape) == 4
                             and volume_index is not None else img.dataobj)
    except Exception as err:  # truncated/corrupt payloads surface here
        raise InferenceError(f"{path}: cannot read the voxel data ({err})") from err
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.dtype.kind not in "iuf":
        raise InferenceError(f"{path}: voxel type {data.dtype} is not integer or float")
    if data.dtype.kind == "f" and not np.isfinite(data).all():
        raise InferenceError(f"{path}: {np.count_nonzero(~np.isfinite(data))} NaN/inf voxels; "
                             "fill or mask them first")
    return img, data


def output_class(ref: nib.spatialimages.SpatialImage, out_path: Path) -> type:
    """The image class written to ``out_path``: the input's format where the name allows it,
    else the name's. ``.nii``/``.nii.gz``: NIfTI-1 (NIfTI-2 for a NIfTI-2 input); ``.mgh``/
    ``.mgz``: MGH; ``.img``/``.hdr``: the input's Analyze/SPM/NIfTI pair class, NIfTI-1 pair for
    an MGH input (Analyze cannot hold its orientation)."""
    _, suffix = strip_suffix(out_path.name)
    family = OUTPUT_SUFFIXES.get(suffix or "")
    nifti2 = isinstance(ref, (nib.Nifti2Image, nib.Nifti2Pair))
    if family == "nifti":
        return nib.Nifti2Image if nifti2 else nib.Nifti1Image
    if family == "mgh":
        return nib.MGHImage
    if family == "pair":
        if isinstance(ref, nib.Nifti1Pair):
            return nib.Nifti2Pair if nifti2 else nib.Nifti1Pair
        return type(ref) if isinstance(ref, nib.AnalyzeImage) else nib.Nifti1Pair
    raise InferenceError(f"{out_path}: output must end with "
                         f"{', '.join(s for s in OUTPUT_SUFFIXES if not s.endswith('.gz'))} "
                         "(or .img.gz/.hdr.gz)")


def _storable(klass: type, dtype: np.dtype) -> bool:
    try:
        klass.header_class().set_data_dtype(dtype)
    except Exception:  # nibabel's HeaderDataError / MGHError for types a format lacks
        return False
    return True


def output_dtype(choice: str, in_dtype: np.dtype, klass: type) -> tuple[np.dtype, str]:
    """The output voxel type for ``--dtype choice`` and why.

    ``auto``: float32 for float inputs and for integer inputs under 16 bits (uint8, int8: the
    network's output lies between their levels, and int16 would round it to the same levels);
    the input's own type for integers of 16 bits and more; float32 where ``klass`` cannot store
    that type. ``input``: the input's type. ``float32``/``int16``/``uint16``: that type. An
    explicit type ``klass`` cannot store is a one-line :class:`InferenceError`.
    """
    in_dtype = np.dtype(in_dtype)
    if choice == "auto":
        if in_dtype.kind in "iu" and in_dtype.itemsize >= 2:
            dtype, why = in_dtype, f"the input's {in_dtype} (integers of >= 16 bits are kept)"
        elif in_dtype.kind in "iu":
            dtype, why = np.dtype(np.float32), (f"float32: the input's {in_dtype} has under 16 "
                                                "bits (--dtype input keeps it)")
        else:
            dtype, why = np.dtype(np.float32), "float32 (float input)"
        if not _storable(klass, dtype):
            return np.dtype(np.float32), f"float32 ({klass.__name__} cannot store {dtype})"
        return dtype, why
    if choice not in DTYPE_CHOICES:
        raise InferenceError(f"--dtype {choice}: choose from {', '.join(DTYPE_CHOICES)}")
    dtype = in_dtype if choice == "input" else np.dtype(choice)
    if not _storable(klass, dtype):
        raise InferenceError(f"--dtype {choice}: {klass.__name__} cannot store {dtype}; "
                             "choose another --dtype or output format")
    return dtype, f"{dtype} (--dtype {choice})"


def to_output_dtype(volume: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """``volume`` as ``dtype``: integers rounded and clipped to the type's range; floats cast."""
    dtype = np.dtype(dtype)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return np.clip(np.rint(volume), info.min, info.max).astype(dtype)
    return volume.astype(dtype, copy=False)


def image_files(klass: type, path: Path) -> list[Path]:
    """Every file an image of ``klass`` saved as ``path`` consists of (two for a pair)."""
    try:
        file_map = klass.filespec_to_file_map(str(path))
    except Exception as err:  # nibabel's ImageFileError for a name the class cannot use
        raise InferenceError(f"{path}: not a file name for {klass.__name__} ({err})") from err
    return [Path(holder.filename) for holder in file_map.values()]
