"""The demo's test set: the unseen test volume and copies of it that look like ordinary scans
(issue 15; docs/demo.md "The test set").

Colin27 is an average of 27 scans: smooth, nearly noise-free, 1 mm T1. A single clinical or
research scan is noisier, coarser, shaded by the coil's bias field, and often of another contrast.
Each *variant* below is applied to the HR volume (normalised to [0, 1] as in data preparation)
*before* the LR is made, so the task stays x2 MATLAB-bicubic SR of the degraded-looking HR:

=============  =============================================================================
``clean``      the volume as shipped
``snr40``      Rician noise, white-matter SNR 40 (a good 3 T single scan)
``snr20``      Rician noise, white-matter SNR 20 (a fast or 1.5 T scan)
``bias``       a smooth multiplicative bias field, gains exp(+-0.3) over the head
``grid2mm``    the volume on a 2 mm grid (antialiased MATLAB-bicubic /2 along every axis)
``t2like``     T2-like contrast: T1 contrast inverted inside the head (bright CSF, dark WM)
=============  =============================================================================

The white-matter signal level is the 75th percentile of the head's voxels (above the foreground
threshold) of the normalised volume. Each variant is renormalised as data preparation would
(:func:`~w2amsn_plugin.data.normalization.normalize_intensity`), its slices cut like the
databases' (axial, centre crop of :data:`~w2amsn_plugin.experiments.DEMO_CROP` scaled by the
voxel size, the slab centred on the head), every ``slice_mm``-th mm kept, quantised to 16 bit;
the LR slice is the MATLAB-bicubic x``scale`` of the quantised HR slice. Written as one pair of
BasicSR LMDBs (``IXI_<MOD>_test_HR.lmdb``, ``IXI_<MOD>_test_LR_bicubic_X<s>.lmdb``), one subject
per variant (``<subject>-<variant>``), so each variant is its own row of the per-volume results.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Callable

import numpy as np

from .augment import bias_field, t2_like
from .augment import rician_noise as _rician
from .degradations import bicubic_downscale, bicubic_matrix
from .ixi import FOREGROUND_THRESHOLD, load_canonical, slice_key
from .lmdb_io import LmdbWriter, lmdb_map_size, write_meta_info
from ..protocol import database_path
from .normalization import normalize_intensity
from .png16 import DEFAULT_COMPRESS_LEVEL, encode_png16, to_uint16

__all__ = ["VARIANTS", "variant_volume", "build_test_set"]

#: variant name -> what it is (the table's row label)
VARIANTS: dict[str, str] = {
    "clean": "as shipped",
    "snr40": "Rician noise, WM SNR 40",
    "snr20": "Rician noise, WM SNR 20",
    "bias": "bias field, gains exp(+-0.3)",
    "grid2mm": "2 mm grid",
    "t2like": "T2-like contrast",
}
_FORMAT = 1


def _wm_level(vol: np.ndarray) -> float:
    head = vol[vol > FOREGROUND_THRESHOLD]
    return float(np.percentile(head, 75)) if head.size else 1.0


def _halve(vol: np.ndarray) -> np.ndarray:
    """MATLAB-bicubic /2 along all three axes (each axis cut to an even length first)."""
    vol = vol[: vol.shape[0] // 2 * 2, : vol.shape[1] // 2 * 2, : vol.shape[2] // 2 * 2]
    out = bicubic_downscale(vol, 2)  # y and z
    out = np.tensordot(bicubic_matrix(out.shape[0], 2), out, axes=(1, 0))  # x
    return np.ascontiguousarray(out, dtype=np.float32)


def variant_volume(vol: np.ndarray, variant: str, seed: int = 0) -> tuple[np.ndarray, float]:
    """``variant`` of a normalised RAS volume; returns ``(volume, voxel size factor)``."""
    rng = np.random.default_rng(seed)
    ops: dict[str, Callable[[], np.ndarray]] = {
        "clean": lambda: vol,
        "snr40": lambda: _rician(vol, _wm_level(vol) / 40.0, rng),
        "snr20": lambda: _rician(vol, _wm_level(vol) / 20.0, rng),
        "bias": lambda: vol * bias_field(vol.shape, 0.3, rng),
        "grid2mm": lambda: _halve(vol),
        "t2like": lambda: t2_like(vol),
    }
    if variant not in ops:
        raise ValueError(f"unknown test variant {variant!r} (choose from {', '.join(VARIANTS)})")
    return ops[variant]().astype(np.float32), (2.0 if variant == "grid2mm" else 1.0)


def _window(n: int, size: int, centre: int) -> tuple[int, int]:
    """``[start, start + size)`` around ``centre`` clamped to ``[0, n)`` (padded when n < size)."""
    start = min(max(centre - size // 2, 0), max(n - size, 0)) if n >= size else -((size - n) // 2)
    return start, start + size


def _crop(vol: np.ndarray, crop: tuple[int, int, int]) -> np.ndarray:
    """Axial stack ``(z, y, x)`` (anterior at the top) cropped/zero-padded to ``crop`` (x, y, z):
    x and y centred, z centred on the head."""
    head = np.flatnonzero((vol > FOREGROUND_THRESHOLD).any(axis=(0, 1)))
    zc = (int(head[0]) + int(head[-1]) + 1) // 2 if head.size else vol.shape[2] // 2
    out = np.zeros((crop[2], crop[1], crop[0]), np.float32)
    stack = np.transpose(vol, (2, 1, 0))[:, ::-1, :]
    src, dst = [], []
    for n, size, centre in zip(stack.shape, out.shape,
                               (zc, stack.shape[1] // 2, stack.shape[2] // 2)):
        a, b = _window(n, size, centre)
        src.append(slice(max(a, 0), min(b, n)))
        dst.append(slice(max(-a, 0), max(-a, 0) + min(b, n) - max(a, 0)))
    out[tuple(dst)] = stack[tuple(src)]
    return out


def _stamp(source: Path, crop: tuple[int, int, int], scale: int, slice_mm: int) -> dict:
    st = source.stat()
    return {"format": _FORMAT, "source": str(source), "size": st.st_size, "mtime_ns": st.st_mtime_ns,
            "crop": list(crop), "scale": scale, "slice_mm": slice_mm, "variants": list(VARIANTS)}


def build_test_set(source: str | Path, subject: str, modality: str, out: str | Path,
                   crop: tuple[int, int, int], scale: int = 2, slice_mm: int = 4,
                   log: Callable[[str], None] = print) -> list[str]:
    """Write the test LMDBs of every variant of ``source`` under ``out``; return the subjects.

    Resumable: a finished set (its ``testset.json`` matches the source file and options) is kept.
    Built under ``out/.testset.tmp`` and moved into place when complete.
    """
    source, out = Path(source).resolve(), Path(out)
    subjects = [f"{subject}-{v}" for v in VARIANTS]
    stamp = _stamp(source, crop, scale, slice_mm)
    done = out / "testset.json"
    if done.is_file() and json.loads(done.read_text()) == {**stamp, "subjects": subjects}:
        log(f"test set {out}: up to date, nothing to do")
        return subjects
    tmp = out / ".testset.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    data, _ = load_canonical(source)
    base, _, _ = normalize_intensity(data)
    hr_items, lr_items, hr_shapes, lr_shapes = [], [], {}, {}
    for variant, name in zip(VARIANTS, subjects):
        vol, mm = variant_volume(base, variant)
        vol, _, _ = normalize_intensity(vol)
        vcrop = tuple(int(round(c / mm)) // scale * scale if i < 2 else int(round(c / mm))
                      for i, c in enumerate(crop))
        stack = _crop(vol, vcrop)  # type: ignore[arg-type]
        step = max(1, int(round(slice_mm / mm)))
        for index in range(0, stack.shape[0], step):
            hr_q = to_uint16(stack[index])
            if not (stack[index] > FOREGROUND_THRESHOLD).any():
                continue
            lr_q = to_uint16(np.clip(bicubic_downscale(hr_q / 65535.0, scale), 0.0, 1.0))
            key = slice_key(name, modality, index)
            hr_items.append((key, encode_png16(hr_q)))
            lr_items.append((key, encode_png16(lr_q)))
            hr_shapes[key], lr_shapes[key] = hr_q.shape, lr_q.shape
        log(f"test set: {name} ({VARIANTS[variant]}), {mm:g} mm, HR {vcrop[1]}x{vcrop[0]}")
    order = np.argsort([k for k, _ in hr_items], kind="stable")
    for items, shapes, db in ((hr_items, hr_shapes, database_path(str(tmp), modality, "test")),
                              (lr_items, lr_shapes, database_path(str(tmp), modality, "test", scale))):
        writer = LmdbWriter(db, lmdb_map_size(len(items), crop[1], crop[0]))
        writer.put_many(items[i] for i in order)
        writer.close()
        write_meta_info(db, (items[i][0] for i in order), shapes, DEFAULT_COMPRESS_LEVEL)
    out.mkdir(parents=True, exist_ok=True)
    for db in tmp.iterdir():
        target = out / db.name
        shutil.rmtree(target, ignore_errors=True)
        db.rename(target)
    tmp.rmdir()
    done.write_text(json.dumps({**stamp, "subjects": subjects}, indent=1))
    return subjects
