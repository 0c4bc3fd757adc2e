"""Combining the two through-plane estimates of one volume (SMORE, Zhao et al., IEEE TMI 2021,
sec. II-D).

- ``mean``: the voxel-wise mean (the default).
- ``fba``: Fourier burst accumulation (Delbracio and Sapiro, IEEE Trans. Comput. Imaging 2015,
  eq. 6), which SMORE uses: ``u = F⁻¹(Σ_i w_i F(v_i))`` with ``w_i = |F(v_i)|^p / Σ_j |F(v_j)|^p``,
  so at each frequency the estimate with the most energy (the least blurred) dominates. Each
  orientation's network sharpens the coarse axis along different in-plane columns, so their
  spectra differ away from the coarse axis' low frequencies.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["COMBINE_METHODS", "combine", "fourier_burst_accumulation"]

COMBINE_METHODS = ("mean", "fba")
#: Delbracio and Sapiro's exponent p (their experiments use p = 11)
FBA_POWER = 11.0


def fourier_burst_accumulation(volumes: Sequence[np.ndarray], power: float = FBA_POWER) -> np.ndarray:
    """FBA of equally shaped volumes (module docstring); float32."""
    spectra = [np.fft.rfftn(np.asarray(v, dtype=np.float32)) for v in volumes]
    mags = np.stack([np.abs(s) for s in spectra])
    # weights |F_i|^p / Σ|F_j|^p, computed relative to the largest magnitude (no overflow)
    rel = mags / np.maximum(mags.max(axis=0, keepdims=True), np.finfo(np.float32).tiny)
    weights = rel ** power
    weights /= weights.sum(axis=0, keepdims=True)
    fused = sum(w * s for w, s in zip(weights, spectra))
    return np.fft.irfftn(fused, s=volumes[0].shape).astype(np.float32)


def combine(volumes: Sequence[np.ndarray], method: str = "mean") -> np.ndarray:
    """The combination ``method`` (one of :data:`COMBINE_METHODS`) of ``volumes``; float32."""
    if method == "mean":
        return (sum(np.asarray(v, dtype=np.float32) for v in volumes) / len(volumes)).astype(np.float32)
    if method == "fba":
        return fourier_burst_accumulation(volumes)
    raise ValueError(f"combine must be one of {COMBINE_METHODS}, got {method!r}")
