"""The demo's validation and test sets: real volumes, never made by the training augmentation
(docs/demo.md, "Validation and test rows").

Each :class:`DemoScan` becomes one row: its axial slices, normalised as data preparation
normalises (:func:`~w2amsn_plugin.data.normalization.normalize_intensity`), cropped to
:data:`~w2amsn_plugin.experiments.DEMO_CROP` millimetres (in the scan's own pixels, even sizes;
never resampled: a 2 mm scan stays a 2 mm scan) around the image centre and the head's slab, every
``slice_mm``-th millimetre kept when it shows the head, quantised to 16 bit; the LR slice is the
MATLAB-bicubic x``scale`` of the quantised HR slice. Written as one pair of BasicSR LMDBs
(``IXI_<MOD>_<split>_HR.lmdb``, ``IXI_<MOD>_<split>_LR_bicubic_X<s>.lmdb``), one subject per scan.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..protocol import database_path
from .degradations import bicubic_downscale
from .ixi import FOREGROUND_THRESHOLD, load_canonical, open_volume, plane_geometry, slice_key
from .lmdb_io import LmdbWriter, lmdb_map_size, write_meta_info
from .normalization import normalize_intensity
from .planes import ANATOMICAL_PLANES, plane_stack
from .png16 import DEFAULT_COMPRESS_LEVEL, encode_png16, to_uint16

__all__ = ["DemoScan", "scan_slices", "build_slice_set"]

_FORMAT = 2


@dataclass(frozen=True)
class DemoScan:
    """One row: ``subject`` (its name in the tables), the file, and what it is."""

    subject: str
    path: str
    what: str


def _window(n: int, size: int, centre: int) -> slice:
    """``size`` indices around ``centre`` clamped to ``[0, n)`` (all of them when n <= size)."""
    if n <= size:
        return slice(0, n)
    start = min(max(centre - size // 2, 0), n - size)
    return slice(start, start + size)


def scan_slices(path: str | Path, crop_mm: tuple[int, int, int], scale: int, slice_mm: float
                ) -> tuple[np.ndarray, list[int], float]:
    """The HR slices of one scan as float32 ``(n, H, W)`` in [0, 1] (H, W multiples of ``scale``),
    their indices in the axial stack, and the pixel size in mm: the ``crop_mm[2]`` mm slab centred
    on the head, every ``slice_mm`` mm (every slice of a scan whose slices are further apart)."""
    img, shape = open_volume(path)
    geo = plane_geometry(path, img, shape, "axial")
    data, _ = load_canonical(path)
    vol, _, _ = normalize_intensity(data)
    stack = plane_stack(vol, ANATOMICAL_PLANES["axial"])
    pixel_mm = float(min(geo.pixel_mm))
    slab = np.flatnonzero((stack > FOREGROUND_THRESHOLD).any(axis=(1, 2)))
    centre = (int(slab[0]) + int(slab[-1]) + 1) // 2 if slab.size else stack.shape[0] // 2
    spacing = max(float(img.header.get_zooms()[:3][int(np.argmax(np.abs(img.affine[2, :3])))]), 1e-3)
    # thick-slice scans (slices further apart than slice_mm): every slice that shows the head
    coarse = spacing >= slice_mm
    depth = stack.shape[0] if coarse else max(1, int(round(crop_mm[2] / spacing)))
    rows = _window(stack.shape[1], int(round(crop_mm[1] / geo.pixel_mm[0])), stack.shape[1] // 2)
    cols = _window(stack.shape[2], int(round(crop_mm[0] / geo.pixel_mm[1])), stack.shape[2] // 2)
    h = (rows.stop - rows.start) // scale * scale
    w = (cols.stop - cols.start) // scale * scale
    zs = _window(stack.shape[0], depth, centre)
    step = 1 if coarse else max(1, int(round(slice_mm / spacing)))
    keep = [k for k in range(zs.start, zs.stop, step)
            if (stack[k] > FOREGROUND_THRESHOLD).any()]
    hr = stack[keep][:, rows.start:rows.start + h, cols.start:cols.start + w]
    return np.ascontiguousarray(hr, dtype=np.float32), keep, pixel_mm


def build_slice_set(scans: Sequence[DemoScan], modality: str, split: str, out: str | Path,
                    crop_mm: tuple[int, int, int], scale: int = 2, slice_mm: float = 4.0,
                    log: Callable[[str], None] = print) -> list[str]:
    """Write the ``split`` LMDB pair of ``scans`` under ``out``; return their subjects.

    Resumable: a finished set (its ``slices.json`` matches the scans' files and the options) is
    kept. Built under ``out/.<split>.tmp`` and moved into place when complete.
    """
    out = Path(out)
    stamp = {"format": _FORMAT, "split": split, "crop_mm": list(crop_mm), "scale": scale,
             "slice_mm": slice_mm, "scans": [{**asdict(s), "size": Path(s.path).stat().st_size}
                                             for s in scans]}
    done = out / f"{split}set.json"
    if done.is_file() and json.loads(done.read_text()) == stamp:
        log(f"{split} set {out}: up to date, nothing to do")
        return [s.subject for s in scans]
    tmp = out / f".{split}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    hr_items, lr_items, hr_shapes, lr_shapes = [], [], {}, {}
    for scan in scans:
        hr, indices, pixel_mm = scan_slices(scan.path, crop_mm, scale, slice_mm)
        for index, hr_slice in zip(indices, hr):
            hr_q = to_uint16(hr_slice)
            lr_q = to_uint16(np.clip(bicubic_downscale(hr_q / 65535.0, scale), 0.0, 1.0))
            key = slice_key(scan.subject, modality, index)
            hr_items.append((key, encode_png16(hr_q)))
            lr_items.append((key, encode_png16(lr_q)))
            hr_shapes[key], lr_shapes[key] = hr_q.shape, lr_q.shape
        log(f"{split} set: {scan.subject} ({scan.what}), {len(indices)} slices of "
            f"{hr.shape[1]}x{hr.shape[2]} at {pixel_mm:g} mm")
    order = np.argsort([k for k, _ in hr_items], kind="stable")
    h_max = max(s[0] for s in hr_shapes.values())
    w_max = max(s[1] for s in hr_shapes.values())
    for items, shapes, db in ((hr_items, hr_shapes, database_path(str(tmp), modality, split)),
                              (lr_items, lr_shapes, database_path(str(tmp), modality, split, scale))):
        writer = LmdbWriter(db, lmdb_map_size(len(items), h_max, w_max))
        writer.put_many(items[i] for i in order)
        writer.close()
        write_meta_info(db, (items[i][0] for i in order), shapes, DEFAULT_COMPRESS_LEVEL)
    out.mkdir(parents=True, exist_ok=True)
    for db in tmp.iterdir():
        target = out / db.name
        shutil.rmtree(target, ignore_errors=True)
        db.rename(target)
    tmp.rmdir()
    done.write_text(json.dumps(stamp, indent=1))
    return [s.subject for s in scans]
