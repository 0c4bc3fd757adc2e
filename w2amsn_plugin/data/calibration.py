"""Which data protocol reproduces the paper's Table III "Bicubic" column (``w2amsn calibrate``;
docs/reproducing.md, "Which reading of the protocol").

The paper states the split sizes and the 240x240x96 crop (section IV-A) but not the plane, the
intensity normalisation, the bit depth, the metric's border crop, whether PSNR/SSIM cover the
whole slice or the anatomy, whether they are computed on the grey value or on the Y channel of an
RGB copy, or which 96 slices are kept. Each moves absolute PSNR by up to several dB. Bicubic
interpolation involves no training, so its scores under each reading (:class:`Reading`) can be
computed on the user's own IXI copy and compared with the 9 published numbers.

For every test volume and reading, the HR stack is cut by the data preparation's own code
(:func:`w2amsn_plugin.data.volume_slices.normalised_stack`: normalise, slice the plane, crop;
then :func:`~w2amsn_plugin.data.png16.quantize`), the LR stack is MATLAB bicubic of the quantised
HR, the bicubic SR is MATLAB bicubic upsampling quantised to the same bit depth, and each slice is
scored with the plugin's metric definitions (:func:`w2amsn_plugin.metrics.psnr_ssim.ssim_maps`,
:func:`~w2amsn_plugin.metrics.psnr_ssim.psnr_db`, the foreground mask). One SSIM map and one error
map per slice serve the border and region readings (the SSIM map of a border-cropped slice is the
interior of the full map). Scores are means over the scored slices; volumes run in the worker
pool of data preparation (:mod:`.prep_pool`).

Ranking (:func:`rank`): PSNR and SSIM together. Each reading's distance to the paper is the mean
over the scales of ``|dPSNR| / 0.01 dB + |dSSIM| / 0.0001``, i.e. both differences in units of
the last digit Table III prints, so that a reading off by 0.10 dB and one off by 0.0010 SSIM are
equally far. Readings closer to the best one than :func:`tie_margin` are a tie: the paper's
rounding (half a digit of each number, 1 unit) plus twice the standard error of a test-set mean
between two different random 70-subject test splits (the paper's split is not published),
estimated from the per-volume scores.
"""
from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from typing import Callable, Iterable, NamedTuple, Sequence

import numpy as np

from ..metrics.foreground import DEFAULT_FG_THRESHOLD, foreground_mask
from ..metrics.psnr_ssim import psnr_db, ssim_maps
from ..protocol import ACQUISITION, PAPER
from .degradations import bicubic_downscale
from .ixi import load_canonical, open_volume, plane_geometry
from .png16 import quantize
from .volume_slices import normalised_stack

__all__ = ["VolumeJob", "TABLE_III_BICUBIC", "PAPER_TEST_SUBJECTS", "PLANE_CHOICES", "NORMALISATIONS",
           "BIT_CHOICES", "BORDERS", "REGIONS", "CHANNELS", "SLICE_CHOICES", "UNIT_PSNR_DB", "UNIT_SSIM",
           "Reading", "SHIPPED", "readings", "volume_sums", "score_volumes", "rank", "tie_margin", "identify",
           "format_report"]

#: Table III of the paper, column "Bicubic": PSNR (dB) / SSIM per modality and scale
TABLE_III_BICUBIC: dict[str, dict[int, tuple[float, float]]] = {
    "PD": {2: (35.04, 0.9664), 3: (31.20, 0.9230), 4: (29.13, 0.8799)},
    "T1": {2: (33.80, 0.9525), 3: (30.15, 0.8900), 4: (28.28, 0.8312)},
    "T2": {2: (33.44, 0.9589), 3: (29.80, 0.9093), 4: (27.86, 0.8611)},
}
#: the paper's test split (section IV-A: 500/70/6 subjects)
PAPER_TEST_SUBJECTS = PAPER.split.n_test
#: the readings compared (the first of each is the shipped options')
PLANE_CHOICES = (ACQUISITION, "axial")
#: (normalisation, percentile): per volume to its 99.5th percentile or maximum, or each slice to
#: its own minimum and maximum
NORMALISATIONS: tuple[tuple[str, float | None], ...] = (
    ("per volume", PAPER.percentile), ("per volume", 100.0), ("per slice", None))
BIT_CHOICES = (16, 8)
#: the metric's border crop: none, ``scale`` pixels (BasicSR's ``crop_border: s``), or EDSR's
#: ``scale + 6``
BORDERS = ("scale", "0", "scale+6")
REGIONS = ("whole", "foreground")
#: ``gray``: the slice itself; ``y_of_rgb``: the Y channel of the grey slice copied to RGB, as
#: BasicSR's ``test_y_channel`` (Y = 16/255 + 219/255 x, errors scaled by 219/255: about +1.3 dB)
CHANNELS = ("gray", "y_of_rgb")
#: which 96 slices: centred on the head's extent (prepare's default) or the volume's central ones
SLICE_CHOICES = ("head", "central")
#: the last digit Table III prints, the unit of the combined distance
UNIT_PSNR_DB = 0.01
UNIT_SSIM = 0.0001
_Y_SCALE, _Y_OFFSET = 219.0 / 255.0, 16.0 / 255.0


@dataclass(frozen=True)
class Reading:
    """One reading of the protocol (see the module docstring for each field's choices)."""

    plane: str
    normalisation: str
    percentile: float | None
    bits: int
    border: str
    region: str
    channel: str
    slices: str

    @property
    def label(self) -> str:
        norm = f"p{self.percentile:g}" if self.normalisation == "per volume" else "slice min-max"
        return (f"{self.plane} {norm} {self.bits}-bit border {self.border} {self.region} "
                f"{self.channel} {self.slices}")


#: the reading of the shipped options (make_ixi_lmdb's defaults; whole-slice PSNR with
#: crop_border = scale selects the best checkpoint and comes first in the tables)
SHIPPED = Reading(PAPER.plane, "per volume", PAPER.percentile, PAPER.bits, "scale", "whole", "gray",
                  PAPER.slice_selection)


def readings(planes: Iterable[str] = PLANE_CHOICES) -> list[Reading]:
    """Every combination of the choices, the shipped one first."""
    out = [Reading(p, n, q, b, c, r, ch, sl) for p in planes for n, q in NORMALISATIONS
           for b in BIT_CHOICES for c in BORDERS for r in REGIONS for ch in CHANNELS
           for sl in SLICE_CHOICES]
    return sorted(out, key=lambda v: v != SHIPPED)


def _border(border: str, scale: int) -> int:
    return {"0": 0, "scale": scale, "scale+6": scale + 6}[border]


def volume_sums(path: str | os.PathLike, scales: Iterable[int], planes: Iterable[str] = PLANE_CHOICES,
                crop: tuple[int, int, int] = PAPER.crop) -> dict[tuple[Reading, int], list[float]]:
    """Per (reading, scale): ``[sum PSNR, n PSNR, sum SSIM, n SSIM]`` over the slices of one volume
    (slices without foreground count only for the whole-slice readings).

    ``crop`` is (width, height, depth) as prepare's. Raises :class:`IXIDataError` naming the file
    for unreadable volumes; planes whose name gives the same slices as an earlier one (IXI T2/PD:
    acquired axially) are scored once, under the earlier name.
    """
    import torch

    from .degradations import bicubic_upsample

    scales = list(scales)
    img, shape = open_volume(path)
    axes: dict[str, int] = {}
    for plane in planes:
        axis = plane_geometry(path, img, shape, plane).ras_axis
        if axis not in axes.values():
            axes[plane] = axis
    data, _ = load_canonical(path)
    sums: dict[tuple[Reading, int], list[float]] = {}
    for (normalisation, percentile), (plane, axis), selection in (
            (n, a, s) for n in NORMALISATIONS for a in axes.items() for s in SLICE_CHOICES):
        stack, _, _, _ = normalised_stack(path, data, axis, crop, percentile or 100.0, selection)
        if normalisation == "per slice":
            lo = stack.min(axis=(1, 2), keepdims=True)
            span = stack.max(axis=(1, 2), keepdims=True) - lo
            stack = np.where(span > 0, (stack - lo) / np.where(span > 0, span, 1), 0)
        for bits in BIT_CHOICES:
            top = float(2**bits - 1)
            hr = quantize(stack, bits) / top
            masks = np.stack([foreground_mask(s, DEFAULT_FG_THRESHOLD) for s in hr]).astype(np.float64)
            for scale in scales:
                lr = quantize(np.clip(bicubic_downscale(hr, scale), 0, 1), bits) / top
                up = bicubic_upsample(torch.from_numpy(lr), scale).numpy()
                sr = quantize(np.clip(up, 0, 1), bits) / top
                for channel in CHANNELS:
                    a, b = (hr, sr) if channel == "gray" else (hr * _Y_SCALE + _Y_OFFSET,
                                                               sr * _Y_SCALE + _Y_OFFSET)
                    base = Reading(plane, normalisation, percentile, bits, "", "", channel, selection)
                    _score(sums, a, b, masks, scale, base)
    return sums


def _score(sums: dict, hr: np.ndarray, sr: np.ndarray, masks: np.ndarray, scale: int,
           base: Reading) -> None:
    """Add one stack's slice scores for the border/region readings of ``base``."""
    r = 5  # the SSIM map is the valid part of an 11x11 window
    err = (sr - hr) ** 2
    ssim = ssim_maps(sr, hr)
    h, w = hr.shape[1:]
    for border in BORDERS:
        b = _border(border, scale)
        e, m = err[:, b:h - b, b:w - b], masks[:, b:h - b, b:w - b]
        s_map = ssim[:, b:ssim.shape[1] - b, b:ssim.shape[2] - b]
        m_ssim = masks[:, r + b:h - r - b, r + b:w - r - b]
        n_fg, n_fg_ssim = m.sum(axis=(1, 2)), m_ssim.sum(axis=(1, 2))
        has, has_ssim = n_fg > 0, n_fg_ssim > 0
        fg_sse = np.einsum("ijk,ijk->i", e, m)
        fg_ssim = np.einsum("ijk,ijk->i", s_map, m_ssim)
        scores = {"whole": (psnr_db(e.mean(axis=(1, 2))), s_map.mean(axis=(1, 2))),
                  "foreground": (psnr_db(fg_sse[has] / n_fg[has]), fg_ssim[has_ssim] / n_fg_ssim[has_ssim])}
        for region, (psnr, ssim_values) in scores.items():
            key = (Reading(base.plane, base.normalisation, base.percentile, base.bits, border, region,
                           base.channel, base.slices), scale)
            acc = sums.setdefault(key, [0.0, 0, 0.0, 0])
            acc[0] += float(psnr.sum())
            acc[1] += int(psnr.size)
            acc[2] += float(ssim_values.sum())
            acc[3] += int(ssim_values.size)


class VolumeJob(NamedTuple):
    """One volume for a calibrate worker; named by its path in messages (a dead worker's line)."""

    path: str
    scales: list[int]
    crop: tuple[int, int, int]

    def __str__(self) -> str:
        return self.path


def _volume_task(job: VolumeJob) -> dict:
    return volume_sums(job.path, job.scales, PLANE_CHOICES, job.crop)


def score_volumes(paths: Sequence[str | os.PathLike], scales: Sequence[int],
                  crop: tuple[int, int, int] = PAPER.crop, workers: int = 1,
                  progress: Callable[[int], object] | None = None) -> list[dict]:
    """:func:`volume_sums` of every volume (in any order), in prepare's worker pool
    (:mod:`.prep_pool`); ``progress(1)`` after each volume."""
    from .prep_pool import imap, make_pool

    tasks = [VolumeJob(str(p), list(scales), tuple(crop)) for p in paths]
    pool = make_pool(workers, len(tasks))
    parts = []
    try:
        for part in imap(pool, _volume_task, tasks):
            parts.append(part)
            if progress is not None:
                progress(1)
    finally:
        if pool is not None:
            pool.close()
    return parts


def _means(parts: Sequence[dict], key: tuple[Reading, int]) -> tuple[float, float]:
    acc = np.sum([p[key] for p in parts if key in p], axis=0) if parts else np.zeros(4)
    return (acc[0] / acc[1] if acc[1] else math.nan, acc[2] / acc[3] if acc[3] else math.nan)


def tie_margin(parts: Sequence[dict], reading: Reading, scales: Sequence[int]) -> float:
    """Distance units within which two readings cannot be told apart: 1 for the paper's rounding
    (half a printed digit of PSNR and of SSIM), plus twice the standard error of the difference
    between the test-set mean of our volumes and that of another random split of
    :data:`PAPER_TEST_SUBJECTS` subjects, from the spread of ``reading``'s per-volume means
    (nothing added for a single volume)."""
    n = len(parts)
    if n < 2:
        return 1.0
    total = 0.0
    for s in scales:
        per_volume = np.array([_means([p], (reading, s)) for p in parts])
        sd = np.nanstd(per_volume, axis=0, ddof=1)
        se = sd * math.sqrt(1.0 / n + 1.0 / PAPER_TEST_SUBJECTS)
        total += se[0] / UNIT_PSNR_DB + se[1] / UNIT_SSIM
    return 1.0 + 2.0 * total / len(scales)


def rank(parts: Sequence[dict], modality: str, scales: Sequence[int]) -> list[dict]:
    """One row per reading: its fields, mean PSNR/SSIM per scale, the distances to Table III
    (``distance_psnr_db``, ``distance_ssim``: mean absolute difference over the scales;
    ``distance``: the combined distance in printed digits, module docstring), how far behind the
    closest reading it is and whether that is within the tie margin; closest first."""
    paper = TABLE_III_BICUBIC[modality]
    seen = dict.fromkeys(r for p in parts for r, _ in p)
    rows = []
    for reading in seen:
        row = {"reading": reading.label, **asdict(reading), "scores": {}}
        d_psnr, d_ssim = [], []
        for s in scales:
            psnr, ssim = _means(parts, (reading, s))
            row["scores"][s] = {"psnr": psnr, "ssim": ssim}
            d_psnr.append(abs(psnr - paper[s][0]))
            d_ssim.append(abs(ssim - paper[s][1]))
        row["distance_psnr_db"] = float(np.mean(d_psnr))
        row["distance_ssim"] = float(np.mean(d_ssim))
        row["distance"] = row["distance_psnr_db"] / UNIT_PSNR_DB + row["distance_ssim"] / UNIT_SSIM
        row["shipped"] = reading == SHIPPED
        rows.append(row)
    rows.sort(key=lambda r: (r["distance"], r["reading"]))
    best = next(r for r in seen if r.label == rows[0]["reading"])
    margin = tie_margin(parts, best, scales)
    for row in rows:
        row["behind"] = row["distance"] - rows[0]["distance"]
        row["margin"] = margin
        row["tie"] = row["behind"] <= margin
    return rows


_FIELDS = ("plane", "normalisation", "percentile", "bits", "border", "region", "channel", "slices")


def identify(rows: Sequence[dict]) -> dict[str, list]:
    """Per reading field, the values among the readings tied with the closest one: one value is
    what the data settle, several are what they cannot tell apart."""
    tied = [r for r in rows if r["tie"]]
    return {f: list(dict.fromkeys(r[f] for r in tied)) for f in _FIELDS}


def format_report(rows: Sequence[dict], modality: str, scales: Sequence[int], n_volumes: int,
                  seconds: float, show: int = 12) -> str:
    """The table (the paper's row, the closest readings, the shipped one) and what the data can and
    cannot identify."""
    paper = TABLE_III_BICUBIC[modality]
    planes = sorted({r["plane"] for r in rows})
    lines = [f"Bicubic on {n_volumes} IXI {modality} test volume(s) ({seconds:.0f} s): {len(rows)} "
             f"readings ({len(planes)} plane(s)" + ("; the acquisition plane is the axial one" if
                                                      len(planes) == 1 else "") + ")",
             "distance = mean over scales of |dPSNR|/0.01 dB + |dSSIM|/0.0001 (Table III's last "
             f"digits); readings within {rows[0]['margin']:.1f} of the closest are a tie "
             "(the paper's rounding + 2 standard errors of a 70-subject test split); * = shipped", "",
             "| reading | " + " | ".join(f"x{s} PSNR/SSIM" for s in scales)
             + " | dPSNR dB / dSSIM | distance | tie |",
             "|" + "---|" * (len(scales) + 4),
             "| **paper, Table III** | " + " | ".join(f"{paper[s][0]:.2f}/{paper[s][1]:.4f}"
                                                     for s in scales) + " | | | |"]
    shown = [r for i, r in enumerate(rows) if i < show or r["shipped"]]
    for r in shown:
        cells = " | ".join(f"{r['scores'][s]['psnr']:.2f}/{r['scores'][s]['ssim']:.4f}" for s in scales)
        lines.append(f"| {r['reading']}{' *' if r['shipped'] else ''} | {cells} | "
                     f"{r['distance_psnr_db']:.2f} / {r['distance_ssim']:.4f} | {r['distance']:.1f} | "
                     f"{'tie' if r['tie'] else '+' + format(r['behind'], '.1f')} |")
    if len(shown) < len(rows):
        lines.append(f"| ({len(rows) - len(shown)} more in --json) | | | | |")
    ties = [r for r in rows if r["tie"]]
    lines += ["", f"closest: {rows[0]['reading']} (distance {rows[0]['distance']:.1f}); "
              + (f"{len(ties) - 1} other reading(s) within the margin {rows[0]['margin']:.1f}: a tie"
                 if len(ties) > 1 else "no other reading within the margin")]
    for field, values in identify(rows).items():
        if len(values) == 1:
            lines.append(f"  settled:     {field} = {values[0]}")
        else:
            lines.append(f"  not settled: {field} (tied: {', '.join(map(str, values))})")
    return "\n".join(lines)
