"""Measuring self-sr against ground truth: an isotropic volume made thick along one axis, then
super-resolved back and compared with the truth, next to cubic B-spline interpolation; and for
the in-plane mode, a volume made coarse in its slice plane (block means or k-space truncation),
super-resolved back next to MATLAB-bicubic upsampling.

The thick volumes are made here with code independent of the training degradation
(:mod:`.slice_profile`): a Gaussian profile by :func:`scipy.ndimage.gaussian_filter1d` and linear
sampling at the slice centres, a rectangular one by exact averaging of the truth over each slab
(integrals of the piecewise-constant voxel signal), so a bug shared by both cannot flatter the
result. Scores: foreground PSNR over the volume (:func:`.scores.volume_psnr_fg`) and the mean
foreground SSIM of the through-plane slices (normal to the first in-plane axis), both on the
truth's intensity window.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import ndimage

from ..data.normalization import intensity_window
from ..inference.geometry import upscaled_affine
from ..metrics.psnr_ssim import calculate_ssim_fg
from .scores import volume_psnr_fg
from .training_pairs import resample_axis

if TYPE_CHECKING:
    from .pipeline import SelfSRSettings

__all__ = ["ThickScan", "make_thick", "cubic_baseline", "score_volume", "evaluate_made_thick",
           "IN_PLANE_MADE_BY", "make_coarse_in_plane",
           "evaluate_made_coarse_in_plane"]

#: the sidecar's numbers a quality result carries along
_SIDECAR_KEYS = ("slice_profile", "slice_profile_estimate", "held_out", "self_consistency_psnr_fg",
                 "iterations", "bf16", "probe_step_seconds",
                 "train_seconds", "total_seconds", "cpu_seconds", "threads", "load_average", "network")


@dataclass(frozen=True)
class ThickScan:
    """A thick-slice scan made from ``truth`` (cropped along ``axis`` to a whole number of
    slabs) and that cropped truth."""

    data: np.ndarray
    affine: np.ndarray
    truth: np.ndarray
    truth_affine: np.ndarray


def _slab_count(n: int, factor: float) -> int:
    """The largest number of slabs of ``factor`` voxels that fit ``n`` with ``slabs * factor``
    an integer."""
    for m in range(int(n / factor), 0, -1):
        if abs(m * factor - round(m * factor)) < 1e-6:
            return m
    raise ValueError(f"no whole number of slabs of {factor} in {n} voxels")


def make_thick(truth: np.ndarray, affine: np.ndarray, axis: int, factor: float, profile: str,
               thickness: float | None = None) -> ThickScan:
    """Slices ``factor`` voxels apart along ``axis``, each the truth seen through a ``profile``
    (``'gaussian'``: FWHM ``thickness`` voxels; ``'rect'``: the mean over a slab of
    ``thickness`` voxels centred on the slice), thickness defaulting to the spacing."""
    thickness = factor if thickness is None else thickness
    m = _slab_count(truth.shape[axis], factor)
    n = int(round(m * factor))
    truth = np.take(np.asarray(truth, dtype=np.float32), np.arange(n), axis=axis)
    centres = (np.arange(m) + 0.5) * factor - 0.5
    if profile == "gaussian":
        sigma = thickness / (2 * math.sqrt(2 * math.log(2)))
        blurred = ndimage.gaussian_filter1d(truth.astype(np.float64), sigma, axis=axis, mode="nearest")
        moved = np.moveaxis(blurred, axis, 0)
        lo = np.clip(np.floor(centres).astype(int), 0, n - 1)
        hi = np.clip(lo + 1, 0, n - 1)
        t = (centres - lo).reshape(-1, *([1] * (moved.ndim - 1)))
        thick = np.moveaxis(moved[lo] * (1 - t) + moved[hi] * t, 0, axis)
    elif profile == "rect":
        moved = np.moveaxis(truth.astype(np.float64), axis, 0)
        cum = np.concatenate([np.zeros((1,) + moved.shape[1:]), np.cumsum(moved, axis=0)])
        starts = np.clip(centres + 0.5 - thickness / 2, 0, n)
        ends = np.clip(centres + 0.5 + thickness / 2, 0, n)

        def integral(x: np.ndarray) -> np.ndarray:  # the integral of the voxel signal up to edge x
            i = np.clip(np.floor(x).astype(int), 0, n - 1)
            frac = (x - i).reshape(-1, *([1] * (moved.ndim - 1)))
            return cum[i] + frac * moved[i]

        width = (ends - starts).reshape(-1, *([1] * (moved.ndim - 1)))
        thick = np.moveaxis((integral(ends) - integral(starts)) / width, 0, axis)
    else:
        raise ValueError(f"profile must be 'gaussian' or 'rect', got {profile!r}")
    scales = [1.0, 1.0, 1.0]
    scales[axis] = m / n
    return ThickScan(thick.astype(np.float32), upscaled_affine(affine, scales), truth,
                     np.asarray(affine, dtype=np.float64))


def cubic_baseline(thick: np.ndarray, axis: int, length: int) -> np.ndarray:
    """Cubic B-spline interpolation of ``thick`` along ``axis`` to ``length`` voxels (same
    field of view, the output grid of self-sr)."""
    return resample_axis(thick, axis, length)


def score_volume(estimate: np.ndarray, truth: np.ndarray, axis: int) -> dict[str, float]:
    """Foreground PSNR (dB) and SSIM of ``estimate`` against ``truth`` on the truth's window;
    ``axis`` is the coarse axis (SSIM on the slices normal to the first other axis)."""
    lo, hi = intensity_window(truth)
    est = (np.asarray(estimate, dtype=np.float32) - lo) / (hi - lo)
    ref = (np.asarray(truth, dtype=np.float32) - lo) / (hi - lo)
    psnr = volume_psnr_fg(est, ref, axis=axis)
    across = next(ax for ax in range(3) if ax != axis)
    ssims = []
    for i in range(ref.shape[across]):
        gt = np.clip(np.take(ref, i, axis=across), 0, 1).astype(np.float64)
        if (gt > 0.05).mean() < 0.05:
            continue
        ssims.append(calculate_ssim_fg(np.clip(np.take(est, i, axis=across), 0, 1).astype(np.float64), gt))
    return {"psnr_fg": float(psnr), "ssim_fg": float(np.nanmean(ssims)) if ssims else float("nan")}


def evaluate_made_thick(truth_path: Path, factor: float, profile: str, settings: SelfSRSettings,
                        work: Path, axis: int = 2, thickness: float | None = None
                        ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Make the isotropic volume at ``truth_path`` thick along ``axis`` (:func:`make_thick`, slices
    ``thickness`` voxels thick, default ``factor``: thinner leaves a gap between slices),
    run self-sr on it with ``settings`` (workdir under ``work``), and score self-sr (mean and
    FBA combinations), one orientation alone and cubic interpolation against the truth. Returns
    the scores with the run's sidecar numbers, and the middle slice (normal to the first other
    axis) of the thick input, cubic, self-sr and truth for a figure."""
    import nibabel as nib

    from .combine import combine
    from .pipeline import run_self_sr

    img = nib.load(truth_path)
    thick = make_thick(img.get_fdata(dtype=np.float32), img.affine, axis, factor, profile, thickness)
    work.mkdir(parents=True, exist_ok=True)
    scan = work / "thick.nii.gz"
    nib.save(nib.Nifti1Image(thick.data, thick.affine), scan)
    estimates: list[np.ndarray] = []
    sr, record = run_self_sr(scan, work / "sr.nii.gz", replace(settings, workdir=work / "run"),
                             progress=False, estimates=estimates)
    n = thick.truth.shape[axis]
    lo, hi = record["intensity_window"]

    def to_volume(fine: np.ndarray) -> np.ndarray:  # network grid, coarse axis last -> truth grid
        return np.moveaxis(resample_axis(fine, 2, n), 2, axis) * np.float32(hi - lo) + np.float32(lo)

    cubic = cubic_baseline(thick.data, axis, n)
    scores = {"cubic": score_volume(cubic, thick.truth, axis),
              "self_sr": score_volume(sr, thick.truth, axis),
              "self_sr_fba": score_volume(to_volume(combine(estimates, "fba")), thick.truth, axis),
              "one_orientation": score_volume(to_volume(estimates[0]), thick.truth, axis)}
    result = {"volume": Path(truth_path).name, "factor": factor, "profile": profile,
              "thickness": factor if thickness is None else thickness,
              "assumed_profile": settings.profile, "assumed_thickness_mm": settings.slice_thickness,
              **scores, **{k: record[k] for k in _SIDECAR_KEYS}}
    across = next(ax for ax in range(3) if ax != axis)
    mid = thick.truth.shape[across] // 2
    views = {name: np.take(vol, mid, axis=across) for name, vol in
             (("input", thick.data), ("cubic", cubic), ("self_sr", sr), ("truth", thick.truth))}
    return result, views


#: how :func:`make_coarse_in_plane` makes slices coarse: name -> what the results call it
IN_PLANE_MADE_BY = {"block": "{s}x{s} block mean", "fourier": "k-space truncation to 1/{s}"}


def _fourier_coarse(truth: np.ndarray, scale: int) -> np.ndarray:
    """Each slice (normal to the last axis) at ``scale`` times the pixel size by k-space
    truncation: its Fourier transform cut to the central ``1/scale`` of each in-plane axis. The
    image is first shifted by ``(scale - 1) / 2`` pixels (a phase ramp) so that each coarse pixel
    is centred on its ``scale x scale`` block, as with block means and MATLAB-bicubic. The real
    part is kept (the band-limited image of the real-valued truth, Gibbs lobes below zero
    included); the in-plane mode's ``kspace`` training degradation keeps the magnitude, as a
    scanner's magnitude image does, which differs only where those lobes go negative."""
    x, y = truth.shape[:2]
    shift = (scale - 1) / 2
    ramp = np.exp(2j * np.pi * shift * (np.fft.fftfreq(x)[:, None] + np.fft.fftfreq(y)[None, :]))
    spectrum = np.fft.fftshift(np.fft.fft2(truth, axes=(0, 1)) * ramp[..., None], axes=(0, 1))
    cx, cy = x // scale, y // scale
    x0, y0 = x // 2 - cx // 2, y // 2 - cy // 2
    kept = np.fft.ifftshift(spectrum[x0:x0 + cx, y0:y0 + cy], axes=(0, 1))
    return np.real(np.fft.ifft2(kept, axes=(0, 1))) / scale ** 2


def make_coarse_in_plane(truth: np.ndarray, affine: np.ndarray, scale: int, slice_mm: float = 3.0,
                         made_by: str = "block") -> ThickScan:
    """Slices normal to the last axis made ``scale`` times coarser, by code apart from the
    in-plane mode's training degradations (:mod:`.in_plane`): by the mean of each ``scale x scale`` block
    (``made_by="block"``) or by k-space truncation (``"fourier"``, :func:`_fourier_coarse`); the
    header declares ``slice_mm`` slices so that they are the scan's slice plane. The truth is
    cropped to whole blocks."""
    if made_by not in IN_PLANE_MADE_BY:
        raise ValueError(f"made_by must be one of {sorted(IN_PLANE_MADE_BY)}, got {made_by!r}")
    x, y = (truth.shape[0] // scale) * scale, (truth.shape[1] // scale) * scale
    truth = np.asarray(truth, dtype=np.float32)[:x, :y]
    if made_by == "block":
        coarse = truth.reshape(x // scale, scale, y // scale, scale, -1).mean(axis=(1, 3))
    else:
        coarse = _fourier_coarse(truth, scale)
    lr_affine = upscaled_affine(affine, [1.0 / scale, 1.0 / scale, 1.0])
    lr_affine[:3, 2] *= slice_mm / np.linalg.norm(lr_affine[:3, 2])
    return ThickScan(coarse.astype(np.float32), lr_affine, truth, np.asarray(affine, dtype=np.float64))


def evaluate_made_coarse_in_plane(truth_path: Path, scale: int, settings: SelfSRSettings, work: Path,
                                  made_by: str = "block") -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """:func:`make_coarse_in_plane` (``made_by``), then ``self-sr --mode in-plane --scale`` with ``settings``
    and MATLAB-bicubic upsampling of each slice, both scored against the truth
    (:func:`score_volume`, slice axis last). Returns the scores with the run's sidecar numbers,
    and the middle slice of the input, bicubic, self-sr and truth."""
    import nibabel as nib
    import torch

    from ..data.degradations import bicubic_upsample
    from .pipeline import run_self_sr

    img = nib.load(truth_path)
    coarse = make_coarse_in_plane(img.get_fdata(dtype=np.float32), img.affine, scale, made_by=made_by)
    work.mkdir(parents=True, exist_ok=True)
    scan = work / "coarse.nii.gz"
    nib.save(nib.Nifti1Image(coarse.data, coarse.affine), scan)
    sr, record = run_self_sr(scan, work / "sr.nii.gz",
                             replace(settings, mode="in-plane", scale=scale, workdir=work / "run"),
                             progress=False)
    slices = torch.from_numpy(np.ascontiguousarray(coarse.data.transpose(2, 0, 1)))
    bicubic = bicubic_upsample(slices, scale).numpy().transpose(1, 2, 0)
    scores = {"bicubic": score_volume(bicubic, coarse.truth, 2), "self_sr": score_volume(sr, coarse.truth, 2)}
    result = {"volume": Path(truth_path).name, "mode": "in-plane", "scale": scale,
              "made_by": IN_PLANE_MADE_BY[made_by].format(s=scale), "degradation": record["degradation"],
              **scores,
              **{k: record[k] for k in _SIDECAR_KEYS}}
    mid = coarse.truth.shape[2] // 2
    views = {"input": coarse.data[:, :, mid], "bicubic": bicubic[:, :, mid], "self_sr": sr[:, :, mid],
             "truth": coarse.truth[:, :, mid]}
    return result, views
