"""Which data protocol reproduces the paper's Table III "Bicubic" column (``w2amsn calibrate``;
docs/reproducing.md, "The data protocol").

The paper states the split sizes and the 240x240x96 crop (section IV-A) but not the plane, the
intensity normalisation, the bit depth, the metric's border crop or whether PSNR/SSIM cover the
whole slice or the anatomy. Each moves absolute PSNR by up to several dB. Bicubic interpolation
involves no training, so its scores under each reading of the protocol can be computed on the
user's own IXI copy in minutes and compared with the 9 published numbers: the reading that
reproduces them is the paper's protocol, as far as anyone outside the authors can know.

For every test volume (the test split ``make_ixi_lmdb`` draws with the same ``--seed`` and split
sizes, :func:`w2amsn_plugin.data.split.split_subjects`) and every :class:`Variant`, the HR stack
is made exactly as ``make_ixi_lmdb`` makes it (:mod:`.prepare`: normalise, slice the plane,
crop, quantise), the LR stack is MATLAB bicubic of the quantised HR
(:func:`~w2amsn_plugin.data.degradations.bicubic_downscale`), the bicubic SR is MATLAB bicubic
upsampling (:func:`w2amsn_plugin.data.degradations.bicubic_upsample`) quantised to the same bit
depth, and each slice is scored with the plugin's metric definitions
(:mod:`w2amsn_plugin.metrics`: PSNR on [0, 1], Gaussian SSIM, the foreground mask). One SSIM map and
one error map per slice serve all four border/region readings (the SSIM map of a border-cropped
slice is the interior of the full map). Scores are means over all scored slices.
"""
from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from typing import Iterable

import cv2
import numpy as np

from ..metrics.foreground import DEFAULT_FG_THRESHOLD, foreground_mask
from ..metrics.psnr_ssim import _C1, _C2, _MSE_FLOOR, _SSIM_RADIUS
from .degradations import bicubic_downscale
from .ixi import IXIDataError, crop_stack, load_canonical, open_volume, plane_geometry
from .normalization import normalize_intensity
from .planes import plane_stack
from .png16 import quantize

__all__ = ["TABLE_III_BICUBIC", "PLANE_CHOICES", "PERCENTILES", "BIT_CHOICES", "BORDERS",
           "REGIONS", "Variant", "SHIPPED", "variants", "volume_sums", "add_sums", "summarise"]

#: Table III of the paper, column "Bicubic": PSNR (dB) / SSIM per modality and scale
TABLE_III_BICUBIC: dict[str, dict[int, tuple[float, float]]] = {
    "PD": {2: (35.04, 0.9664), 3: (31.20, 0.9230), 4: (29.13, 0.8799)},
    "T1": {2: (33.80, 0.9525), 3: (30.15, 0.8900), 4: (28.28, 0.8312)},
    "T2": {2: (33.44, 0.9589), 3: (29.80, 0.9093), 4: (27.86, 0.8611)},
}
#: the readings compared (the first of each is what the shipped options use)
PLANE_CHOICES = ("acquisition", "axial")
PERCENTILES = (99.5, 100.0)
BIT_CHOICES = (16, 8)
BORDERS = ("scale", "none")
REGIONS = ("foreground", "whole")
_SSIM_R = _SSIM_RADIUS
#: the metrics' 11x11 Gaussian window (sigma 1.5) as its 1-D factor
_GAUSS_1D = cv2.getGaussianKernel(2 * _SSIM_RADIUS + 1, 1.5)


@dataclass(frozen=True)
class Variant:
    """One reading of the protocol: plane, normalisation percentile, bit depth, the metric's
    border crop (``scale`` pixels, as BasicSR's ``crop_border: s``, or ``none``) and region."""

    plane: str
    percentile: float
    bits: int
    border: str
    region: str

    @property
    def label(self) -> str:
        return (f"{self.plane} p{self.percentile:g} {self.bits}-bit "
                f"border {'s' if self.border == 'scale' else '0'} {self.region}")


#: the reading of the shipped options (experiments.py: make_ixi_lmdb defaults, psnr_fg with
#: crop_border = scale selects the best checkpoint)
SHIPPED = Variant("acquisition", 99.5, 16, "scale", "foreground")


def variants(planes: Iterable[str] = PLANE_CHOICES) -> list[Variant]:
    """Every combination of the readings, the shipped one first."""
    out = [Variant(p, q, b, c, r) for p in planes for q in PERCENTILES for b in BIT_CHOICES
           for c in BORDERS for r in REGIONS]
    return sorted(out, key=lambda v: v != SHIPPED)


def volume_sums(path: str | os.PathLike, scales: Iterable[int], planes: Iterable[str],
                crop: tuple[int, int, int] = (240, 240, 96), slices: str = "head"
                ) -> dict[tuple[Variant, int], list[float]]:
    """Per (variant, scale): ``[sum PSNR, n PSNR, sum SSIM, n SSIM]`` over the slices of one
    volume (slices without foreground count only for the whole-slice readings).

    ``crop`` is (width, height, depth) as ``make_ixi_lmdb``'s. Raises :class:`IXIDataError`
    naming the file for unreadable volumes; planes whose name gives the same slices as an
    earlier one are scored once, under the earlier name.
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
    width, height, depth = crop
    sums: dict[tuple[Variant, int], list[float]] = {}
    for percentile in PERCENTILES:
        try:
            norm, _, _ = normalize_intensity(data, percentile)
        except ValueError as err:
            raise IXIDataError(f"{path}: {err}") from None
        for plane, axis in axes.items():
            stack, _ = crop_stack(plane_stack(norm, axis), height, width, depth, slices)
            for bits in BIT_CHOICES:
                top = float(2**bits - 1)
                hr = quantize(stack, bits) / top
                masks = np.stack([foreground_mask(s, DEFAULT_FG_THRESHOLD)
                                  for s in hr]).astype(np.float64)
                for scale in scales:
                    lr = quantize(np.clip(bicubic_downscale(hr, scale), 0, 1), bits) / top
                    up = bicubic_upsample(torch.from_numpy(lr), scale).numpy()
                    sr = quantize(np.clip(up, 0, 1), bits) / top
                    _score(sums, hr, sr, masks, scale, Variant(plane, percentile, bits, "", ""))
    return sums


def _score(sums: dict, hr: np.ndarray, sr: np.ndarray, masks: np.ndarray, scale: int,
           base: Variant) -> None:
    """Add one stack's slice scores for the four border/region readings of ``base``, the whole
    ``(n, H, W)`` stack at once (one separable Gaussian filter for every slice's SSIM)."""
    r = _SSIM_R
    n = hr.shape[0]
    err = (sr - hr) ** 2
    stats = np.concatenate([sr, hr, sr * sr, hr * hr, sr * hr])  # (5n, H, W)
    # every slice stacked into one tall image: the separable Gaussian mixes neighbouring slices
    # only within r rows of their edges, which the valid part below drops
    filtered = cv2.sepFilter2D(stats.reshape(-1, stats.shape[2]), -1, _GAUSS_1D, _GAUSS_1D)
    filtered = filtered.reshape(stats.shape)
    valid = filtered[:, r:-r, r:-r]  # the SSIM map's valid part, as the metrics take it
    mu_x, mu_y, xx, yy, xy = valid.reshape(5, n, *valid.shape[1:])
    # SSIM = (2 mu_x mu_y + C1)(2 cov + C2) / ((mu_x² + mu_y² + C1)(var_x + var_y + C2)), in place
    mu_xy = mu_x * mu_y
    xy -= mu_xy
    xy *= 2
    xy += _C2
    mu_xy *= 2
    mu_xy += _C1
    xy *= mu_xy                   # numerator
    mu_x *= mu_x
    mu_y *= mu_y
    xx -= mu_x
    xx += yy
    xx -= mu_y
    xx += _C2                     # var_x + var_y + C2
    mu_x += mu_y
    mu_x += _C1
    xx *= mu_x                    # denominator
    ssim = np.divide(xy, xx, out=xy)
    h, w = hr.shape[1:]
    for border in BORDERS:
        b = scale if border == "scale" else 0
        e = err[:, b:h - b, b:w - b]
        m = masks[:, b:h - b, b:w - b]
        s_map = ssim[:, b:ssim.shape[1] - b, b:ssim.shape[2] - b]
        m_ssim = masks[:, r + b:h - r - b, r + b:w - r - b]
        n_fg, n_fg_ssim = m.sum(axis=(1, 2)), m_ssim.sum(axis=(1, 2))
        has, has_ssim = n_fg > 0, n_fg_ssim > 0
        fg_sse = np.einsum("ijk,ijk->i", e, m)
        fg_ssim = np.einsum("ijk,ijk->i", s_map, m_ssim)
        scores = {
            "whole": (_psnr(e.mean(axis=(1, 2))), s_map.mean(axis=(1, 2))),
            "foreground": (_psnr(fg_sse[has] / n_fg[has]), fg_ssim[has_ssim] / n_fg_ssim[has_ssim]),
        }
        for region, (psnr, ssim_values) in scores.items():
            key = (Variant(base.plane, base.percentile, base.bits, border, region), scale)
            acc = sums.setdefault(key, [0.0, 0, 0.0, 0])
            acc[0] += float(psnr.sum())
            acc[1] += int(psnr.size)
            acc[2] += float(ssim_values.sum())
            acc[3] += int(ssim_values.size)


def _psnr(mse: np.ndarray) -> np.ndarray:
    """PSNR in dB of [0, 1] data, the MSE floored as the plugin's metrics floor it."""
    return 10.0 * np.log10(1.0 / np.maximum(mse, _MSE_FLOOR))


def add_sums(total: dict, part: dict) -> None:
    """Accumulate :func:`volume_sums` results."""
    for key, values in part.items():
        acc = total.setdefault(key, [0.0, 0, 0.0, 0])
        for i, v in enumerate(values):
            acc[i] += v


def summarise(total: dict, modality: str, scales: list[int]) -> list[dict]:
    """One row per variant: mean PSNR/SSIM per scale, the paper's, and the distance (mean
    absolute PSNR difference over the scales, dB; SSIM likewise), closest first."""
    paper = TABLE_III_BICUBIC[modality]
    rows = []
    for variant in dict.fromkeys(v for v, _ in total):
        row = {"variant": variant.label, **asdict(variant), "scores": {}}
        d_psnr, d_ssim = [], []
        for s in scales:
            acc = total[(variant, s)]
            psnr = acc[0] / acc[1] if acc[1] else math.nan
            ssim = acc[2] / acc[3] if acc[3] else math.nan
            row["scores"][s] = {"psnr": psnr, "ssim": ssim, "slices": acc[1]}
            d_psnr.append(abs(psnr - paper[s][0]))
            d_ssim.append(abs(ssim - paper[s][1]))
        row["distance_psnr_db"] = float(np.mean(d_psnr))
        row["distance_ssim"] = float(np.mean(d_ssim))
        row["shipped"] = variant == SHIPPED
        rows.append(row)
    return sorted(rows, key=lambda r: (r["distance_psnr_db"], r["distance_ssim"]))
