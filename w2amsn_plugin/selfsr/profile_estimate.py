"""How thick the acquired slices are, estimated from the scan itself (``--profile auto``): the
FWHM of the Gaussian slice profile under which the scan's slice axis and its in-plane axes have
matching power spectra.

Self-supervision rests on one assumption (SMORE: Zhao et al., IEEE TMI 2021, sec. II-B): the
anatomy looks alike along every axis, so the in-plane slices degraded with the true slice profile
resemble the through-plane ones. ESPRESO (Han, Remedios, Carass, Schär, Prince, "MR slice profile
estimation by learning to match internal patch distributions", IPMI 2021), which ECLARE
(Remedios et al., 2025) builds on, turns the assumption around and learns the profile that makes
the two alike, adversarially. Here the match is of second-order statistics, in closed form. For
each candidate FWHM and each in-plane axis:

- along the slice axis: the Welch spectrum of the scan blurred along the in-plane axis with the
  candidate (at the in-plane pixels);
- along the in-plane axis: the Welch spectrum of the scan blurred with the candidate and sampled
  at the slice spacing (:meth:`SliceProfile.matrix`, the training degradation, aliasing included).

In both, the anatomy has passed the true profile once (along the slices) and the candidate once,
so for isotropic anatomy the two agree when the candidate is the true profile, whatever the
anatomy's spectrum (blurring only the in-plane rows would compare them with in-plane content that
the slice profile has already smoothed, and read every profile too thin). Acquisition noise
passed neither; with its variance (:func:`_noise_sigma`) each side gets the other side's noise
spectrum added, which balances them. The estimate is the candidate with the smallest RMS
difference of the two log spectra, both in-plane axes pooled.

Within the band the coarse axis keeps, profiles of equal second moment have nearly equal spectra,
so what this measures is an effective width: a rectangular profile of width T reads as a Gaussian
of FWHM about 0.6-0.85 T on the validation brains, and a Gaussian of about that FWHM trains
nearly as well as the rectangle (docs/self-sr.md, "Estimating the slice profile"). Anatomy is
not quite isotropic, which moves the estimate by about ±0.2 of the spacing from one volume to
another; :func:`auto_profile` therefore keeps the spacing unless the estimate is clearly thinner.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from .slice_profile import SliceProfile, apply_along

__all__ = ["AUTO_SNAP", "FWHM_GRID", "MAX_MISFIT_DB", "ProfileEstimate", "auto_profile",
           "estimate_slice_fwhm"]

#: candidate FWHMs, as fractions of the slice spacing
FWHM_GRID = tuple(round(0.3 + 0.05 * i, 2) for i in range(27))  # 0.30 .. 1.60
#: ``--profile auto`` trains with FWHM = the spacing when the estimate reaches this fraction of
#: it (Gaussian slices as thick as their spacing read 1.0-1.2 on the validation brains), with
#: the estimate below it (a slice gap, or a profile with steeper edges: 0.5-0.85 there)
AUTO_SNAP = 0.8
#: above this RMS misfit of the log spectra, no width explains the slice axis (validation
#: volumes: 0.2-0.55 dB; a 40 x 48 x 12 crop: 2.6-3.3 dB): ``auto`` keeps the spacing
MAX_MISFIT_DB = 1.5
#: samples per Welch segment along each axis, at the slice spacing
SEGMENT = 8
#: a segment counts when every sample in it exceeds this (normalised) intensity: anatomy only
_FOREGROUND = 0.1
#: the spectra along each in-plane axis pool at most this many lines of the other in-plane axis
#: (evenly spaced; every slice), which bounds the time on large matrices
_LINES = 64


@dataclass(frozen=True)
class ProfileEstimate:
    """The Gaussian FWHM (mm) that best explains the acquired axis, ``fraction`` of the slice
    spacing; ``misfit_db``: the RMS difference of the log spectra at that FWHM."""

    fwhm_mm: float
    fraction: float
    misfit_db: float

    @property
    def fits(self) -> bool:
        """The best width explains the slice axis (misfit within :data:`MAX_MISFIT_DB`)."""
        return self.misfit_db <= MAX_MISFIT_DB

    @property
    def at_grid_edge(self) -> bool:
        """The best candidate is the thinnest or the thickest of :data:`FWHM_GRID`: the true
        width may lie beyond it."""
        return self.fraction in (FWHM_GRID[0], FWHM_GRID[-1])

    def to_json(self) -> dict[str, Any]:
        return {"kind": "gaussian", "fwhm_mm": self.fwhm_mm, "fraction_of_spacing": self.fraction,
                "misfit_db": self.misfit_db, "fits": self.fits,
                "at_grid_edge": self.at_grid_edge}


def _welch(volume: np.ndarray, axis: int) -> np.ndarray | None:
    """Mean periodogram (bins 1 .. SEGMENT/2) of Hann-windowed, mean-removed segments of
    :data:`SEGMENT` samples along ``axis`` lying wholly in the foreground; None when there is none."""
    lines = np.moveaxis(volume, axis, -1).reshape(-1, volume.shape[axis])
    window = np.hanning(SEGMENT)
    total, count = np.zeros(SEGMENT // 2 + 1), 0
    for start in range(0, lines.shape[1] - SEGMENT + 1, SEGMENT // 2):
        seg = lines[:, start:start + SEGMENT]
        seg = seg[seg.min(axis=1) > _FOREGROUND].astype(np.float64)
        if len(seg):
            seg = (seg - seg.mean(axis=1, keepdims=True)) * window
            total += (np.abs(np.fft.rfft(seg, axis=1)) ** 2).sum(axis=0)
            count += len(seg)
    return total[1:] / count if count else None


def _noise_sigma(scan: np.ndarray) -> float:
    """White-noise SD of the slices: the median absolute finest diagonal Haar coefficient over
    the foreground / 0.6745 (Donoho and Johnstone, Biometrika 1994)."""
    a = scan[:scan.shape[0] // 2 * 2, :scan.shape[1] // 2 * 2]
    diagonal = (a[0::2, 0::2] - a[1::2, 0::2] - a[0::2, 1::2] + a[1::2, 1::2]) / 2
    inside = (a[0::2, 0::2] + a[1::2, 0::2] + a[0::2, 1::2] + a[1::2, 1::2]) / 4 > _FOREGROUND
    return float(np.median(np.abs(diagonal[inside])) / 0.6745) if inside.any() else 0.0


def _noise_spectrum(covariance: np.ndarray) -> np.ndarray:
    """What :func:`_welch` expects (bins 1 .. SEGMENT/2) of a segment with this covariance."""
    window = np.hanning(SEGMENT)[:, None] * (np.eye(SEGMENT) - 1.0 / SEGMENT)
    shaped = window @ covariance @ window.T
    dft = np.fft.rfft(np.eye(SEGMENT), axis=0)
    return np.real(np.einsum("ka,ab,kb->k", dft, shaped, dft.conj()))[1:]


def estimate_slice_fwhm(scan: np.ndarray, spacing: Sequence[float]) -> ProfileEstimate | None:
    """The slice profile's effective Gaussian FWHM (module docstring) of ``scan``: normalised to
    about [0, 1], its coarse axis last, voxel sizes ``spacing`` (mm, the slice spacing last).
    None when the scan is too small or has too little anatomy to tell (fewer than
    :data:`SEGMENT` slices, or fewer than :data:`SEGMENT` slice spacings across both in-plane
    axes, or no foreground run that long)."""
    scan = np.asarray(scan, dtype=np.float32)
    slice_mm = float(spacing[2])
    if scan.shape[2] < SEGMENT:
        return None
    sigma2 = _noise_sigma(scan) ** 2
    # the in-plane axes long enough for a segment at the slice spacing, each with its lines
    axes = {}
    for axis in (0, 1):
        pixel_mm, n = float(spacing[axis]), scan.shape[axis]
        if int(n * pixel_mm // slice_mm) >= SEGMENT:
            other = scan.shape[1 - axis]
            keep = np.unique(np.linspace(0, other - 1, min(other, _LINES)).round().astype(int))
            axes[axis] = np.ascontiguousarray(np.take(scan, keep, axis=1 - axis))
    misfits = []
    for fraction in FWHM_GRID:
        profile = SliceProfile("gaussian", fraction * slice_mm)
        observed, simulated = [], []
        for axis, lines in axes.items():
            pixel_mm, n = float(spacing[axis]), scan.shape[axis]
            samples = int(n * pixel_mm // slice_mm)
            # the two spectra of the module docstring
            coarse = profile.matrix((np.arange(samples) + 0.5) * slice_mm / pixel_mm - 0.5, n, pixel_mm)
            fine = profile.matrix(np.arange(n, dtype=np.float64), n, pixel_mm)
            across = _welch(apply_along(lines, fine, axis), 2)
            along = _welch(apply_along(lines, coarse, axis), axis)
            if across is None or along is None:
                return None  # too little anatomy along this axis for this candidate
            # their noise: white across the slices (its variance scaled by the blur), correlated
            # along the sampled axis (rows of the sampling matrix, away from the borders)
            mid = (samples - SEGMENT) // 2
            rows = coarse[mid:mid + SEGMENT].astype(np.float64)
            kept = float(np.sum(fine[n // 2].astype(np.float64) ** 2))
            observed.append(across + sigma2 * _noise_spectrum(rows @ rows.T))
            simulated.append(along + sigma2 * _noise_spectrum(np.eye(SEGMENT) * kept))
        if not observed:
            return None
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.mean(observed, axis=0) / np.mean(simulated, axis=0)
        if not np.all(np.isfinite(ratio) & (ratio > 0)):
            return None  # flat (noise-free, featureless) data: nothing to compare
        misfits.append(float(np.sqrt(np.mean((10 * np.log10(ratio)) ** 2))))
    best = int(np.argmin(misfits))
    fraction = FWHM_GRID[best]
    return ProfileEstimate(round(fraction * slice_mm, 4), fraction, round(misfits[best], 3))


def auto_profile(estimate: ProfileEstimate | None, slice_mm: float) -> SliceProfile:
    """The profile ``--profile auto`` trains with: a Gaussian of FWHM = the slice spacing, or of
    the estimated FWHM when that is below :data:`AUTO_SNAP` of the spacing and fits (the spacing
    when nothing could be estimated, or no width fits)."""
    if estimate is None or not estimate.fits or estimate.fraction >= AUTO_SNAP:
        return SliceProfile("gaussian", float(slice_mm))
    return SliceProfile("gaussian", estimate.fwhm_mm)
