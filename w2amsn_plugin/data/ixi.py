"""IXI file names, volume loading and the fixed-size axial slice stack (paper section IV-A;
docs/data.md).

IXI ships one ``IXI<id>-<site>-<session>-<MOD>.nii.gz`` per volume (e.g.
``IXI002-Guys-0828-T1.nii.gz``); T1 is acquired sagittally (~256x256x150), T2 and PD axially
(~256x256x130). Every volume is brought to one orientation the same way:

1. :func:`load_canonical` reads it with nibabel and reorients it (flips/permutations only, no
   resampling) to the closest canonical RAS orientation: array axes x (left->Right),
   y (posterior->Anterior), z (inferior->Superior).
2. Axial slices are cut along z; a slice is shown with anterior at the top and the patient's right
   on the image's right: slice ``k`` is ``vol[:, ::-1, k].T`` (height = y, width = x).
3. :func:`crop_axial_stack` centre-crops or zero-pads x and y to the crop size, and picks
   ``depth`` consecutive axial slices centred on the foreground bounding box along z (foreground:
   normalised intensity > :data:`FOREGROUND_THRESHOLD`), so the 96 slices of a ~130-256 slice
   volume cover the head rather than empty slices above or below it; volumes with fewer slices are
   zero-padded equally above and below.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "IXI_MODALITIES", "IXI_NAME_RE", "FOREGROUND_THRESHOLD", "IXIDataError", "IXIFile",
    "parse_ixi_name", "scan_ixi_tree", "load_canonical", "axial_stack", "crop_axial_stack",
    "slice_key", "parse_slice_key", "SLICE_KEY_RE", "open_volume",
]

#: the modalities the paper uses
IXI_MODALITIES = ("T1", "T2", "PD")
#: IXI's file name pattern; group ``subject`` (e.g. ``IXI002-Guys-0828``) and ``modality``
IXI_NAME_RE = re.compile(
    r"^(?P<subject>IXI(?P<number>\d{3})-(?P<site>[A-Za-z]+)-(?P<session>\d+))"
    r"-(?P<modality>T1|T2|PD|MRA|DTI(?:-\d+)?)\.nii(?:\.gz)?$")
#: database key of one slice: ``<subject>_<MOD>_s<slice:03d>`` (no dots: BasicSR splits at '.')
SLICE_KEY_RE = re.compile(r"^(?P<subject>[^.]+)_(?P<modality>T1|T2|PD)_s(?P<index>\d{3,})$")
#: a voxel with normalised intensity above this is foreground (chooses the axial slice window)
FOREGROUND_THRESHOLD = 0.1


class IXIDataError(ValueError):
    """Bad user input (file or option); ``str(err)`` is one line naming the file and problem."""


@dataclass(frozen=True)
class IXIFile:
    """One IXI volume file: ``subject`` like ``IXI002-Guys-0828``, ``modality`` like ``T1``."""

    path: Path
    subject: str
    modality: str


def parse_ixi_name(path: str | os.PathLike) -> IXIFile | None:
    """Parse an IXI file name; ``None`` when the name does not follow IXI's pattern."""
    path = Path(path)
    match = IXI_NAME_RE.match(path.name)
    if match is None:
        return None
    return IXIFile(path=path, subject=match["subject"], modality=match["modality"])


def scan_ixi_tree(root: str | os.PathLike, modality: str
                  ) -> tuple[dict[str, Path], list[str]]:
    """Find the ``modality`` volumes under ``root`` (recursively, hidden folders skipped).

    Returns ``(subject -> path, warnings)``; a warning line names each ``.nii``/``.nii.gz`` file
    whose name is not IXI's pattern (it is skipped). Files of other IXI modalities are ignored.
    Raises :class:`IXIDataError` when ``root`` is not a folder or a subject has two files.
    """
    root = Path(root)
    if not root.is_dir():
        raise IXIDataError(f"{root}: IXI root is not a folder")
    found: dict[str, Path] = {}
    warnings: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not (name.endswith(".nii.gz") or name.endswith(".nii")):
                continue
            path = Path(dirpath) / name
            parsed = parse_ixi_name(path)
            if parsed is None:
                warnings.append(f"{path}: skipped, not an IXI file name "
                                "(IXI<id>-<site>-<session>-<T1|T2|PD>.nii.gz)")
                continue
            if parsed.modality != modality:
                continue
            if parsed.subject in found:
                raise IXIDataError(f"{path}: subject {parsed.subject} already has a {modality} "
                                   f"volume ({found[parsed.subject]}); keep only one")
            found[parsed.subject] = path
    return dict(sorted(found.items())), warnings


def slice_key(subject: str, modality: str, index: int) -> str:
    """Key of slice ``index`` (0-based in the cropped stack): ``IXI002-Guys-0828_T1_s042``."""
    return f"{subject}_{modality}_s{index:03d}"


def parse_slice_key(key: str) -> tuple[str, str, int]:
    """``(subject, modality, slice index)`` of a key made by :func:`slice_key`.

    Raises ValueError for a key that does not follow the pattern.
    """
    match = SLICE_KEY_RE.match(key)
    if match is None:
        raise ValueError(f"{key!r} is not a slice key <subject>_<T1|T2|PD>_s<NNN>")
    return match["subject"], match["modality"], int(match["index"])


def open_volume(path: str | os.PathLike):
    """Open a NIfTI file (header only) and check it holds a 3-D volume; return
    ``(nibabel image, 3-D shape)`` (trailing singleton dimensions dropped).

    Raises :class:`IXIDataError` with one line naming the file for an unreadable header or a
    volume that is not 3-D.
    """
    import nibabel as nib

    try:
        img = nib.load(str(path))
    except Exception as err:  # nibabel raises many types for bad headers
        raise IXIDataError(f"{path}: cannot read NIfTI header ({_short(err)})") from None
    shape = tuple(int(n) for n in img.shape)
    while len(shape) > 3 and shape[-1] == 1:
        shape = shape[:-1]
    if len(shape) != 3:
        raise IXIDataError(f"{path}: expected a 3-D volume, got shape {tuple(img.shape)}")
    if min(shape) < 2:
        raise IXIDataError(f"{path}: volume shape {tuple(img.shape)} is degenerate")
    return img, shape


def load_canonical(path: str | os.PathLike) -> tuple[np.ndarray, tuple[str, str, str]]:
    """Read a 3-D NIfTI volume and reorient it to canonical RAS (no resampling).

    Returns ``(float32 array x-y-z, original axis codes)``. Raises :class:`IXIDataError` with one
    line naming the file for unreadable/truncated files, non-3-D volumes and NaN/inf values.
    """
    import nibabel as nib

    path = Path(path)
    img, shape = open_volume(path)
    try:
        if len(img.shape) != 3:
            img = nib.Nifti1Image(np.asanyarray(img.dataobj).reshape(shape), img.affine,
                                  img.header)
        codes = tuple(str(c) for c in nib.aff2axcodes(img.affine))
        canonical = nib.as_closest_canonical(img)
        data = np.asarray(canonical.get_fdata(dtype=np.float32))
    except Exception as err:  # zlib.error, EOFError, OSError for truncated/corrupt data
        raise IXIDataError(f"{path}: cannot read voxel data, file corrupt or truncated "
                           f"({_short(err)})") from None
    if not np.isfinite(data).all():
        raise IXIDataError(f"{path}: volume contains NaN or infinite values")
    return data, codes  # type: ignore[return-value]


def axial_stack(volume_ras: np.ndarray) -> np.ndarray:
    """Axial slices of a canonical RAS volume as ``(z, height=y, width=x)``, anterior at the top."""
    return np.ascontiguousarray(np.transpose(volume_ras, (2, 1, 0))[:, ::-1, :])


def crop_axial_stack(stack: np.ndarray, height: int, width: int, depth: int
                     ) -> tuple[np.ndarray, int]:
    """Crop/pad a normalised ``(z, y, x)`` stack to ``(depth, height, width)``.

    Height and width: centre crop or symmetric zero-padding. Depth: ``depth`` consecutive slices
    centred on the foreground bounding box along z (clamped to the volume); zero-padded equally
    above and below when the volume has fewer slices. Returns ``(stack, z_start)`` where
    ``z_start`` is the canonical z index of output slice 0 (negative when padded).
    """
    n_z = stack.shape[0]
    fg = np.flatnonzero((stack > FOREGROUND_THRESHOLD).any(axis=(1, 2)))
    centre = (int(fg[0]) + int(fg[-1]) + 1) // 2 if fg.size else n_z // 2
    if n_z >= depth:
        z_start = min(max(centre - depth // 2, 0), n_z - depth)
    else:
        z_start = -((depth - n_z) // 2)
    out = _crop_or_pad(stack, 0, z_start, depth)
    out = _crop_or_pad(out, 1, (out.shape[1] - height) // 2, height)
    out = _crop_or_pad(out, 2, (out.shape[2] - width) // 2, width)
    return np.ascontiguousarray(out), z_start


def _crop_or_pad(arr: np.ndarray, axis: int, start: int, size: int) -> np.ndarray:
    """Window ``[start, start + size)`` of ``arr`` along ``axis``; outside the array is 0."""
    n = arr.shape[axis]
    lo, hi = max(start, 0), min(start + size, n)
    window = np.take(arr, np.arange(lo, hi), axis=axis)
    pad = [(0, 0)] * arr.ndim
    pad[axis] = (lo - start, start + size - hi)
    return np.pad(window, pad) if any(pad[axis]) else window


def _short(err: BaseException) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= 160 else text[:157] + "..."
