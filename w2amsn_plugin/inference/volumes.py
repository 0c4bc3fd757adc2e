"""Reading the volume to super-resolve and choosing what is written: the image formats nibabel
both reads and writes (NIfTI-1/2, single file or .hdr/.img pair, Analyze 7.5 and SPM's variants,
FreeSurfer MGH/MGZ), 3-D or 4-D, and the output's format and voxel type (docs/inference.md)."""
from __future__ import annotations

import os
from pathlib import Path

import nibabel as nib
import numpy as np

from .errors import InferenceError
from .settings import DTYPE_CHOICES

__all__ = ["INPUT_CLASSES", "OUTPUT_SUFFIXES", "DTYPE_CHOICES", "load_volume", "open_volume",
           "check_image", "read_voxels", "output_class", "output_dtype", "to_output_dtype",
           "image_files", "strip_suffix"]

#: image classes read (Spm99/Spm2 Analyze and the NIfTI classes are AnalyzeImage subclasses)
INPUT_CLASSES = (nib.AnalyzeImage, nib.MGHImage)
#: output file name endings -> the format family written
OUTPUT_SUFFIXES = {".nii": "nifti", ".nii.gz": "nifti", ".mgh": "mgh", ".mgz": "mgh",
                   ".img": "pair", ".hdr": "pair", ".img.gz": "pair", ".hdr.gz": "pair"}
#: share of this machine's memory one input volume may take once read as float32: the output
#: (``scale**2`` times larger) and the network's work need the rest
_MEMORY_SHARE = 0.5


def strip_suffix(name: str) -> tuple[str, str | None]:
    """``name`` without its image suffix (the longest of :data:`OUTPUT_SUFFIXES` it ends with),
    and that suffix (None when it has none)."""
    for suffix in sorted(OUTPUT_SUFFIXES, key=len, reverse=True):
        if name.lower().endswith(suffix):
            return name[:-len(suffix)], suffix
    return name, None


def _memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return None


def _size(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return ""


def open_volume(path: Path) -> nib.spatialimages.SpatialImage:
    """The image at ``path`` (header only; the voxels are read by :func:`read_voxels`), checked
    by :func:`check_image`; one-line :class:`InferenceError` naming ``path`` otherwise."""
    if not path.is_file():
        raise InferenceError(f"{path}: input file not found")
    try:
        img = nib.load(path)
    except Exception as err:  # nibabel raises ImageFileError, EOFError, OSError, ...
        raise InferenceError(f"{path}: cannot read as an image ({_reason(err)})") from err
    check_image(img, path)
    return img


def check_image(img: nib.spatialimages.SpatialImage, where: Path | str) -> None:
    """What the header alone tells: a supported class, 3-D or 4-D, a voxel-to-world affine that
    is finite and invertible (a singular sform with no qform has no orientation), and a size
    that fits this machine's memory; one-line :class:`InferenceError` naming ``where``."""
    if not isinstance(img, INPUT_CLASSES):
        raise InferenceError(f"{where}: {type(img).__name__} is not supported (NIfTI, Analyze or "
                             "MGH/MGZ); convert it to NIfTI first")
    shape = img.shape
    if len(shape) not in (3, 4):
        raise InferenceError(f"{where}: shape {shape} is not a 3-D volume (or 4-D series)")
    if min(shape) < 1:
        raise InferenceError(f"{where}: shape {shape} has an empty axis")
    affine = np.asarray(img.affine, dtype=np.float64)
    if not np.isfinite(affine).all() or abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        codes = ""
        if isinstance(img, nib.Nifti1Pair):
            codes = (f" (sform code {int(img.header['sform_code'])}, qform code "
                     f"{int(img.header['qform_code'])})")
        raise InferenceError(f"{where}: its voxel-to-world affine is singular or not finite"
                             f"{codes}, so its orientation and voxel size are unknown; fix the "
                             "header (e.g. set a valid sform or qform)")
    needed = float(np.prod(shape, dtype=np.float64)) * 4
    memory = _memory_bytes()
    if memory is not None and needed > _MEMORY_SHARE * memory:
        raise InferenceError(f"{where}: the header claims {'x'.join(map(str, shape))} voxels "
                             f"({_size(needed)} as float32), more than this machine's memory "
                             f"({_size(memory)}) allows; a damaged header, or a volume to crop "
                             "first")


def _reason(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def read_voxels(img: nib.spatialimages.SpatialImage, path: Path | str,
                volume_index: int | None) -> np.ndarray:
    """The voxel data of ``img``: 3-D, or 4-D (volumes last) for a series when ``volume_index``
    is None; one-line :class:`InferenceError` naming ``path`` otherwise."""
    shape = img.shape
    n_volumes = shape[3] if len(shape) == 4 else 1
    if volume_index is not None and not 0 <= volume_index < n_volumes:
        raise InferenceError(f"{path}: --volume-index {volume_index} out of range "
                             f"(0..{n_volumes - 1})")
    try:
        data = np.asanyarray(img.dataobj[..., volume_index] if len(shape) == 4
                             and volume_index is not None else img.dataobj)
    except MemoryError as err:
        raise InferenceError(f"{path}: not enough memory to read its "
                             f"{'x'.join(map(str, shape))} voxels") from err
    except Exception as err:  # truncated/corrupt payloads surface here
        raise InferenceError(f"{path}: cannot read the voxel data ({_reason(err)})") from err
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.dtype.kind not in "iuf":
        raise InferenceError(f"{path}: voxel type {data.dtype} is not integer or float")
    if data.dtype.kind == "f" and not np.isfinite(data).all():
        raise InferenceError(f"{path}: {np.count_nonzero(~np.isfinite(data))} NaN/inf voxels; "
                             "fill or mask them first")
    return data


def load_volume(path: Path, volume_index: int | None
                ) -> tuple[nib.spatialimages.SpatialImage, np.ndarray]:
    """The image at ``path`` and its voxel data (:func:`open_volume`, :func:`read_voxels`)."""
    img = open_volume(path)
    return img, read_voxels(img, path, volume_index)


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


def to_output_dtype(volume: np.ndarray, dtype: np.dtype) -> tuple[np.ndarray, int]:
    """``volume`` as ``dtype`` (integers rounded and clipped to the type's range; floats cast)
    and how many voxels the clip changed (0 for floats)."""
    dtype = np.dtype(dtype)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        rounded = np.rint(volume)
        clipped = int(np.count_nonzero((rounded < info.min) | (rounded > info.max)))
        return np.clip(rounded, info.min, info.max).astype(dtype), clipped
    return volume.astype(dtype, copy=False), 0


def image_files(klass: type, path: Path) -> list[Path]:
    """Every file an image of ``klass`` saved as ``path`` consists of (two for a pair)."""
    try:
        file_map = klass.filespec_to_file_map(str(path))
    except Exception as err:  # nibabel's ImageFileError for a name the class cannot use
        raise InferenceError(f"{path}: not a file name for {klass.__name__} ({err})") from err
    return [Path(holder.filename) for holder in file_map.values()]
