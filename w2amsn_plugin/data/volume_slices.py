"""One volume into the paper's slices (section IV-A; docs/data.md): read, reorient, normalise,
cut the plane's stack to the crop, quantise, and encode the HR slices and the LR slices of each
degradation and scale as 16-bit (or 8-bit) PNG. :mod:`.prepare` runs it for every volume, in worker
processes (:mod:`.prep_pool`)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterable

import numpy as np

from .degradations import degrade
from .ixi import (IXIDataError, crop_stack,
                  load_canonical, open_volume, plane_geometry)
from ..protocol import PAPER, lr_kind
from .normalization import normalize_intensity
from .planes import plane_stack
from .png16 import DEFAULT_COMPRESS_LEVEL, encode_png16, quantize

__all__ = ["VolumeResult", "normalised_stack", "process_volume"]


@dataclass
class VolumeResult:
    """Encoded slices of one volume (``values[kind][slice]``) and how they were made: the RAS axis
    the slices were taken along and the index along it of slice 0, the normalisation window, the
    file's axis codes (e.g. ``PSR``), the volume's shape after reorientation to RAS (before
    cropping), the slices' pixel size in mm (rows, cols) and whether the plane was zero-padded."""

    plane_axis_ras: int
    slice_start: int
    lo: float
    hi: float
    source_axcodes: str
    ras_shape: tuple[int, ...]
    pixel_mm: tuple[float, float]
    padded: bool
    values: dict[str, list[bytes]]


def normalised_stack(path: str | os.PathLike, data_ras: np.ndarray, ras_axis: int,
                     crop: tuple[int, int, int], percentile: float, slices: str = "head"
                     ) -> tuple[np.ndarray, int, float, float]:
    """The HR stack of a canonical RAS+ volume before quantisation: normalised (``percentile``),
    sliced normal to ``ras_axis``, cut to ``crop`` (width, height, depth) with the ``slices``
    selection. Returns ``(stack, start, lo, hi)``; ``path`` names the file in errors."""
    try:
        norm, lo, hi = normalize_intensity(data_ras, percentile)
    except ValueError as err:
        raise IXIDataError(f"{path}: {err}") from None
    width, height, depth = crop
    stack, start = crop_stack(plane_stack(norm, ras_axis), height, width, depth, slices)
    return stack, start, lo, hi


def process_volume(path: str | os.PathLike, crop: tuple[int, int, int], percentile: float,
                   lr_specs: Iterable[tuple[str, int]], encode_hr: bool = True,
                   compress_level: int = DEFAULT_COMPRESS_LEVEL, plane: str = PAPER.plane,
                   slices: str = PAPER.slice_selection, bits: int = PAPER.bits) -> VolumeResult:
    """Read one volume and encode its HR slices of ``plane`` (``crop`` = width, height, depth)
    and its LR slices for each ``(degradation, s)``.

    Raises :class:`IXIDataError` (one line naming the file) for unreadable or invalid volumes.
    """
    img, shape = open_volume(path)
    geo = plane_geometry(path, img, shape, plane)
    data, codes = load_canonical(path)
    hr, start, lo, hi = normalised_stack(path, data, geo.ras_axis, crop, percentile, slices)
    hr_q = quantize(hr, bits)
    values: dict[str, list[bytes]] = {}
    if encode_hr:
        values["HR"] = [encode_png16(s, compress_level) for s in hr_q]
    hr_f = hr_q.astype(np.float64) / float(2**bits - 1)
    for degradation, scale in lr_specs:
        lr_q = quantize(np.clip(degrade(hr_f, scale, degradation), 0.0, 1.0), bits)
        values[lr_kind(degradation, scale)] = [encode_png16(s, compress_level) for s in lr_q]
    return VolumeResult(plane_axis_ras=geo.ras_axis, slice_start=start, lo=lo, hi=hi,
                        source_axcodes="".join(codes), ras_shape=tuple(int(n) for n in data.shape),
                        pixel_mm=geo.pixel_mm,
                        padded=geo.shape[0] < crop[1] or geo.shape[1] < crop[0], values=values)


