"""On-the-fly MR appearance augmentation of HR training patches (docs/demo.md).

A model trained on one smooth, noise-free, 1 mm T1 template learns that template's look. Ordinary
scans are noisier, coarser, shaded by the coil's bias field and of other contrasts. This module
draws, per training patch, the appearance of such a scan *on the HR patch*; the LR input is then
made from the augmented HR patch with the same MATLAB bicubic as the databases
(:func:`w2amsn_plugin.data.degradations.bicubic_downscale`), so the task stays the paper's x2/x3/x4
bicubic SR (section IV-A) and the network sees HR/LR pairs that are consistent by construction.

Steps, in acquisition order (each drawn with its own probability):

1. resolution: the anatomy at ``f`` mm per pixel, ``f`` uniform in ``[1, max_zoom]``: a patch of
   ``f * size`` pixels is cropped and resampled to ``size`` (antialiased bicubic);
2. contrast: a random gamma, and with probability ``p_invert`` a T2-like inversion inside the
   head (dark background kept, dark CSF made bright, bright white matter dark);
3. a smooth multiplicative bias field (a random 4x4 grid of log-gains, bicubically upsampled);
4. a random intensity window (clip and rescale);
5. Rician noise (the magnitude of complex Gaussian noise) at a white-matter SNR drawn from
   ``snr`` (signal level ``signal_level`` of the [0, 1]-normalised volume).

Acquisition artefacts of ordinary scans beyond those (off unless their probability is set), drawn
after the resolution step and before the contrast:

- EPI-like readout (``p_epi``): blur along the phase-encoding axis (a Gaussian of sigma up to
  ``epi_blur`` pixels: T2* decay over the echo train) and a smooth geometric distortion along it
  (a displacement of up to ``epi_shift`` pixels varying over the image: off-resonance);
- Gibbs ringing (``p_gibbs``): the patch's k-space cut to a central fraction drawn from
  ``gibbs`` along one axis (a truncated acquisition matrix);
- motion ghosts (``p_ghost``): a copy of the image shifted by half the field of view along the
  phase-encoding axis, at an amplitude drawn from ``ghost`` (the N/2 ghost of EPI and of
  periodic motion).
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Mapping

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["MRAugment", "rician_noise", "bias_field", "t2_like", "resample", "epi_readout",
           "gibbs_ringing", "nyquist_ghost"]

#: a normalised value above this is inside the head for the T2-like inversion
_HEAD_LEVEL = 0.04


def rician_noise(img: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Magnitude of ``img`` plus complex Gaussian noise of standard deviation ``sigma`` per part."""
    real = img + rng.normal(0.0, sigma, img.shape)
    imag = rng.normal(0.0, sigma, img.shape)
    return np.sqrt(real * real + imag * imag).astype(img.dtype)


def bias_field(shape: tuple[int, ...], strength: float, rng: np.random.Generator,
               grid: int = 4) -> np.ndarray:
    """A smooth multiplicative field ``exp(g)`` of ``shape`` (2-D or 3-D): ``g`` is a ``grid``-point
    per axis random field, uniform in ``[-strength, strength]``, upsampled with (tri/bi)linear
    interpolation over the whole extent, so the field varies over the scale of the image."""
    coarse = torch.from_numpy(rng.uniform(-strength, strength, (grid,) * len(shape)))
    mode = "bilinear" if len(shape) == 2 else "trilinear"
    g = F.interpolate(coarse[None, None], size=tuple(shape), mode=mode, align_corners=True)[0, 0]
    return np.exp(g.numpy()).astype(np.float32)


def t2_like(img: np.ndarray, gamma: float = 1.0) -> np.ndarray:
    """Invert the T1 contrast inside the head: ``head(x) * (1 - x) ** gamma``, where ``head``
    ramps from 0 (background) to 1 over ``[0, 2 * _HEAD_LEVEL]`` so the background stays dark."""
    x = np.clip(img, 0.0, 1.0)
    head = np.clip(x / (2 * _HEAD_LEVEL), 0.0, 1.0)
    return (head * (1.0 - x) ** gamma).astype(img.dtype)


def resample(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Antialiased bicubic resampling of an ``H x W`` image to ``size`` (h, w)."""
    t = torch.from_numpy(np.ascontiguousarray(img, dtype=np.float32))[None, None]
    out = F.interpolate(t, size=size, mode="bicubic", align_corners=False, antialias=True)
    return out[0, 0].numpy()


def epi_readout(img: np.ndarray, sigma: float, shift: float, axis: int,
                rng: np.random.Generator) -> np.ndarray:
    """Blur ``img`` along ``axis`` (Gaussian, ``sigma`` pixels) and displace it along that axis by
    a smooth field of amplitude up to ``shift`` pixels (linear interpolation)."""
    from scipy.ndimage import gaussian_filter1d, map_coordinates

    out = gaussian_filter1d(img, sigma, axis=axis, mode="nearest") if sigma > 0 else img
    if shift > 0:
        field = bias_field(img.shape, 1.0, rng)  # smooth, in [e^-1, e]
        disp = shift * np.log(field)  # smooth, in [-shift, shift]
        coords = list(np.meshgrid(*(np.arange(n, dtype=np.float32) for n in img.shape), indexing="ij"))
        coords[axis] = coords[axis] + disp
        out = map_coordinates(out, coords, order=1, mode="nearest")
    return out.astype(img.dtype)


def gibbs_ringing(img: np.ndarray, keep: float, axis: int) -> np.ndarray:
    """Keep the central ``keep`` fraction of ``img``'s k-space along ``axis`` (the rest zeroed) and
    return the magnitude: ringing at every edge across that axis."""
    n = img.shape[axis]
    spectrum = np.fft.fftshift(np.fft.fft(img, axis=axis), axes=axis)
    half = max(1, int(round(n * keep / 2)))
    mask = np.zeros(n, bool)
    mask[max(0, n // 2 - half):n // 2 + half] = True
    spectrum *= mask.reshape([-1 if a == axis else 1 for a in range(img.ndim)])
    return np.abs(np.fft.ifft(np.fft.ifftshift(spectrum, axes=axis), axis=axis)).astype(img.dtype)


def nyquist_ghost(img: np.ndarray, amplitude: float, axis: int) -> np.ndarray:
    """``img`` plus ``amplitude`` times itself shifted by half the field of view along ``axis``."""
    return (img + amplitude * np.roll(img, img.shape[axis] // 2, axis=axis)).astype(img.dtype)


@dataclass(frozen=True)
class MRAugment:
    """Probabilities and ranges of each step (see the module docstring); the dataset key
    ``mr_augment: {...}`` of :class:`~w2amsn_plugin.data.ixi_paired_dataset.IXIPairedDataset`
    takes these names."""

    p_zoom: float = 0.5
    max_zoom: float = 3.0
    p_gamma: float = 0.5
    gamma: tuple[float, float] = (0.6, 1.7)
    p_invert: float = 0.3
    p_bias: float = 0.5
    bias: float = 0.3
    p_window: float = 0.3
    window_lo: float = 0.05
    window_hi: float = 0.75
    p_noise: float = 0.7
    snr: tuple[float, float] = (12.0, 60.0)
    signal_level: float = 0.75
    p_epi: float = 0.0
    epi_blur: float = 1.5
    epi_shift: float = 2.0
    p_gibbs: float = 0.0
    gibbs: tuple[float, float] = (0.5, 0.85)
    p_ghost: float = 0.0
    ghost: tuple[float, float] = (0.02, 0.1)

    @classmethod
    def from_options(cls, opt: Mapping[str, Any]) -> MRAugment:
        """From a dataset's ``mr_augment`` dict; an unknown key raises ValueError naming it."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(opt) - names)
        if unknown:
            raise ValueError(f"mr_augment: unknown key(s) {', '.join(unknown)} "
                             f"(known: {', '.join(sorted(names))})")
        kw = {k: (tuple(float(x) for x in v) if isinstance(v, (list, tuple)) else float(v))
              for k, v in opt.items()}
        aug = cls(**kw)
        for name in ("p_zoom", "p_gamma", "p_invert", "p_bias", "p_window", "p_noise", "p_epi",
                     "p_gibbs", "p_ghost"):
            if not 0.0 <= getattr(aug, name) <= 1.0:
                raise ValueError(f"mr_augment: {name} must be in [0, 1], got {getattr(aug, name)}")
        if aug.max_zoom < 1.0:
            raise ValueError(f"mr_augment: max_zoom must be >= 1, got {aug.max_zoom}")
        if min(aug.snr) <= 0 or aug.snr[0] > aug.snr[1] or aug.gamma[0] > aug.gamma[1] or min(aug.gamma) <= 0:
            raise ValueError(f"mr_augment: snr and gamma must be increasing positive pairs, "
                             f"got snr={aug.snr}, gamma={aug.gamma}")
        return aug

    def crop_size(self, size: int, rng: np.random.Generator) -> int:
        """Side of the HR crop to take for a ``size`` patch: ``size * f`` (resolution step)."""
        if self.max_zoom > 1.0 and rng.random() < self.p_zoom:
            return int(round(size * rng.uniform(1.0, self.max_zoom)))
        return size

    def __call__(self, patch: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
        """Augment one ``h x w`` float32 patch in [0, 1] (``h = w`` from :meth:`crop_size`) and
        return a ``size x size`` float32 patch in [0, 1]."""
        img = patch if patch.shape == (size, size) else resample(patch, (size, size))
        img = np.clip(img, 0.0, 1.0).astype(np.float32)
        # the phase-encoding axis of this patch's artefacts (drawn only when they are on)
        axis = int(rng.integers(2)) if self.p_epi or self.p_gibbs or self.p_ghost else 0
        if rng.random() < self.p_epi:
            img = epi_readout(img, rng.uniform(0.0, self.epi_blur), rng.uniform(0.0, self.epi_shift),
                              axis, rng)
        if rng.random() < self.p_gibbs:
            img = gibbs_ringing(img, rng.uniform(*self.gibbs), axis)
        if rng.random() < self.p_ghost:
            img = nyquist_ghost(img, rng.uniform(*self.ghost), axis)
        img = np.clip(img, 0.0, 1.0).astype(np.float32)
        if rng.random() < self.p_gamma:
            img = img ** np.float32(np.exp(rng.uniform(*np.log(self.gamma))))
        if rng.random() < self.p_invert:
            img = t2_like(img, float(np.exp(rng.uniform(*np.log(self.gamma)))))
        if rng.random() < self.p_bias:
            img = img * bias_field(img.shape, self.bias, rng)
        if rng.random() < self.p_window:
            lo = rng.uniform(0.0, self.window_lo)
            hi = rng.uniform(self.window_hi, 1.0)
            img = (np.clip(img, lo, hi) - lo) / (hi - lo)
        if rng.random() < self.p_noise:
            snr = float(np.exp(rng.uniform(*np.log(self.snr))))
            img = rician_noise(img, self.signal_level / snr, rng)
        return np.clip(img, 0.0, 1.0).astype(np.float32)
