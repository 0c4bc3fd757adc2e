"""IXI file names, volume loading and the fixed-size slice stack of one plane (paper section IV-A;
docs/data.md).

IXI ships one ``IXI<id>-<site>-<session>-<MOD>.nii.gz`` per volume (e.g.
``IXI002-Guys-0828-T1.nii.gz``); T1 is acquired sagittally (256x256x150 at 0.94x0.94x1.2 mm),
T2 and PD axially (256x256x130). Every volume is brought to slices the same way:

1. :func:`load_canonical` reads it with nibabel and reorients it (flips/permutations only, no
   resampling) to the closest canonical RAS orientation: array axes x (left->Right),
   y (posterior->Anterior), z (inferior->Superior).
2. :func:`plane_geometry` (header only) names the RAS axis the slices are taken along
   (:func:`w2amsn_plugin.data.planes.slice_axis`: by default the acquisition plane) and the
   slices' size; :func:`~w2amsn_plugin.data.planes.plane_stack` cuts them upright
   (:data:`~w2amsn_plugin.data.planes.DISPLAY`).
3. :func:`crop_stack` centre-crops the slices to the crop size (zero-pads only a plane smaller than
   the crop, which the acquisition plane is never allowed to be) and picks ``depth`` consecutive
   slices: ``head``, centred on the foreground bounding box (normalised intensity >
   :data:`FOREGROUND_THRESHOLD`) so the 96 slices of a 130-256 slice volume cover the head rather
   than empty slices beside it, or ``central``, the middle ``depth`` slices; volumes with fewer
   slices are zero-padded equally on both sides.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..protocol import PAPER, SLICE_SELECTIONS, parse_slice_key, slice_key
from .planes import (ANATOMICAL_PLANES, plane_name, plane_pixel_axes, plane_stack, ras_orientation,
                     slice_axis)
from .walk import walk_files

__all__ = [
    "IXI_MODALITIES", "IXI_NAME_RE", "FOREGROUND_THRESHOLD", "IXIDataError", "IXIFile",
    "parse_ixi_name", "scan_ixi_tree", "load_canonical", "axial_stack", "crop_stack",
    "slice_key", "parse_slice_key", "open_volume", "SLICE_SELECTIONS",
    "PlaneGeometry", "plane_geometry",
]

#: the modalities the paper uses (:data:`w2amsn_plugin.protocol.PAPER`)
IXI_MODALITIES = PAPER.modalities
#: IXI's file name pattern; group ``subject`` (e.g. ``IXI002-Guys-0828``) and ``modality``
IXI_NAME_RE = re.compile(
    r"^(?P<subject>IXI(?P<number>\d{3})-(?P<site>[A-Za-z]+)-(?P<session>\d+))"
    r"-(?P<modality>T1|T2|PD|MRA|DTI(?:-\d+)?)\.nii(?:\.gz)?$")
#: a voxel with normalised intensity above this is foreground (chooses the ``head`` slice window)
FOREGROUND_THRESHOLD = 0.1
#: how the ``depth`` slices of a volume are chosen (:func:`crop_stack`)


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
    """Find the ``modality`` volumes under ``root`` (recursively, hidden folders skipped, linked
    folders followed: :func:`~.walk.walk_files`).

    Returns ``(subject -> path, warnings)``; a warning line names each ``.nii``/``.nii.gz`` file
    whose name is not IXI's pattern (it is skipped). Files of other IXI modalities are ignored.
    Raises :class:`IXIDataError` when ``root`` is not a folder or a subject has two files.
    """
    root = Path(root)
    if not root.is_dir():
        raise IXIDataError(f"{root}: IXI root is not a folder")
    found: dict[str, Path] = {}
    warnings: list[str] = []
    for path in walk_files(root):
        name = path.name
        if not (name.endswith(".nii.gz") or name.endswith(".nii")):
            continue
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


@dataclass(frozen=True)
class PlaneGeometry:
    """Where a volume's slices come from: the RAS axis they are taken along, its anatomical name,
    the slice size ``(rows, cols)`` and slice count before cropping, and the rows' and columns'
    voxel sizes in mm."""

    ras_axis: int
    name: str
    shape: tuple[int, int]
    n_slices: int
    pixel_mm: tuple[float, float]


def plane_geometry(path: str | os.PathLike, img, shape: tuple[int, int, int], plane: str
                   ) -> PlaneGeometry:
    """The :class:`PlaneGeometry` of ``plane`` in the volume ``img`` (an :func:`open_volume`
    result; header only). Raises :class:`IXIDataError` naming ``path`` for an orientation the
    affine does not define or voxel sizes that are not positive."""
    zooms = tuple(round(float(z), 6) for z in img.header.get_zooms()[:3])
    try:
        ornt = ras_orientation(img.affine)
        ras_axis = slice_axis(plane, img.affine, zooms)
    except ValueError as err:
        raise IXIDataError(f"{path}: {err}") from None
    ras_shape, ras_zooms = [0, 0, 0], [0.0, 0.0, 0.0]
    for stored, (ras, _) in enumerate(ornt):
        ras_shape[ras], ras_zooms[ras] = int(shape[stored]), zooms[stored]
    row, col = plane_pixel_axes(ras_axis)
    return PlaneGeometry(ras_axis, plane_name(ras_axis), (ras_shape[row], ras_shape[col]),
                         ras_shape[ras_axis], (ras_zooms[row], ras_zooms[col]))


def axial_stack(volume_ras: np.ndarray) -> np.ndarray:
    """Axial slices of a canonical RAS volume as ``(z, height=y, width=x)``, anterior at the top."""
    return plane_stack(volume_ras, ANATOMICAL_PLANES["axial"])


def crop_stack(stack: np.ndarray, height: int, width: int, depth: int, selection: str = "head"
               ) -> tuple[np.ndarray, int]:
    """Crop a normalised ``(n, rows, cols)`` slice stack to ``(depth, height, width)``.

    Rows and columns: centre crop (symmetric zero-padding where the slice is smaller). Slices:
    ``depth`` consecutive ones, ``selection`` ``head`` = centred on the foreground bounding box
    (clamped to the volume), ``central`` = the middle ones; zero-padded equally on both sides when
    the volume has fewer. Returns ``(stack, start)``, ``start`` the index of output slice 0 in
    the input stack (negative when padded).
    """
    if selection not in SLICE_SELECTIONS:
        raise ValueError(f"slice selection must be one of {SLICE_SELECTIONS}, got {selection!r}")
    n = stack.shape[0]
    if selection == "head":
        fg = np.flatnonzero((stack > FOREGROUND_THRESHOLD).any(axis=(1, 2)))
        centre = (int(fg[0]) + int(fg[-1]) + 1) // 2 if fg.size else n // 2
    else:
        centre = n // 2
    if n >= depth:
        start = min(max(centre - depth // 2, 0), n - depth)
    else:
        start = -((depth - n) // 2)
    out = _crop_or_pad(stack, 0, start, depth)
    out = _crop_or_pad(out, 1, (out.shape[1] - height) // 2, height)
    out = _crop_or_pad(out, 2, (out.shape[2] - width) // 2, width)
    return np.ascontiguousarray(out), start


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
