"""The two LR degradations of the paper's IXI data (section IV-A; docs/data.md).

- ``bicubic``: MATLAB-compatible ``imresize(img, 1/s, 'bicubic')`` with antialiasing, exactly
  BasicSR's :func:`basicsr.utils.matlab_functions.imresize`. That function is separable: each
  axis is one weights matrix (the cubic kernel widened by ``s``, with symmetric border
  reflection). :func:`bicubic_matrix` builds that matrix from BasicSR's own
  ``calculate_weights_indices``, so a whole stack is resized with two matrix products instead of a
  Python loop per output row; ``tests/data/test_data_prep.py`` checks equality with BasicSR's
  ``imresize`` on real slices.
  :func:`bicubic_upsample` is the inverse direction (MATLAB ``imresize(img, s, 'bicubic')``) on
  torch tensors, for the bicubic reference and for what inference restores above the clip.
- ``truncation``: k-space truncation, the MR acquisition model: the slice's 2-D Fourier
  transform is cut to its central ``H/s x W/s`` frequencies and transformed back at the low
  resolution (divided by ``s**2`` to keep intensities), and the magnitude is kept.
"""
from __future__ import annotations

import functools

from typing import TYPE_CHECKING

import numpy as np

from ..protocol import DEGRADATIONS

if TYPE_CHECKING:
    from torch import Tensor

__all__ = ["DEGRADATIONS", "bicubic_matrix", "bicubic_downscale", "bicubic_upsample", "kspace_truncate",
           "degrade"]



@functools.lru_cache(maxsize=32)
def bicubic_matrix(in_length: int, scale: int) -> np.ndarray:
    """``(in_length // scale, in_length)`` float64 matrix of MATLAB's antialiased bicubic /scale.

    Row ``i`` holds the weights BasicSR's ``imresize`` applies to output pixel ``i``, with its
    symmetric border padding folded back onto the input indices.
    """
    from basicsr.utils.matlab_functions import calculate_weights_indices

    if in_length % scale:
        raise ValueError(f"length {in_length} is not a multiple of the scale {scale}")
    out_length = in_length // scale
    weights, indices, sym_len_s, _ = calculate_weights_indices(
        in_length, out_length, 1 / scale, "cubic", 4, True)
    weights = weights.double().numpy()
    first = indices[:, 0].long().numpy()  # imresize reads padded[first[i] : first[i] + width]
    padded = np.arange(weights.shape[1])[None, :] + first[:, None] - sym_len_s
    source = np.where(padded < 0, -padded - 1, padded)  # reflect at the start...
    source = np.where(source >= in_length, 2 * in_length - 1 - source, source)  # ...and the end
    matrix = np.zeros((out_length, in_length))
    np.add.at(matrix, (np.repeat(np.arange(out_length), weights.shape[1]), source.ravel()),
              weights.ravel())
    matrix.setflags(write=False)
    return matrix


@functools.lru_cache(maxsize=32)
def _sparse_bicubic_matrix(in_length: int, scale: int):
    import scipy.sparse

    return scipy.sparse.csr_matrix(bicubic_matrix(in_length, scale))


def _apply_along(stack: np.ndarray, axis: int, matrix) -> np.ndarray:
    """``matrix @`` every 1-D line of ``stack`` along ``axis`` (a banded sparse product)."""
    moved = np.moveaxis(stack, axis, 0)
    flat = matrix @ moved.reshape(moved.shape[0], -1)
    return np.moveaxis(flat.reshape((matrix.shape[0],) + moved.shape[1:]), 0, axis)


def bicubic_downscale(stack: np.ndarray, scale: int) -> np.ndarray:
    """MATLAB bicubic /``scale`` of ``(..., H, W)`` images (H, W multiples of ``scale``); float64.

    Same result as ``rows @ stack @ cols.T`` with :func:`bicubic_matrix`, computed as sparse
    products (each row of the matrix has at most ``4 * scale + 2`` non-zero weights).
    """
    stack = np.asarray(stack, dtype=np.float64)
    out = _apply_along(stack, -2, _sparse_bicubic_matrix(stack.shape[-2], scale))
    out = _apply_along(out, -1, _sparse_bicubic_matrix(stack.shape[-1], scale))
    return np.ascontiguousarray(out)


def kspace_truncate(stack: np.ndarray, scale: int, block_centred: bool = False) -> np.ndarray:
    """k-space truncation /``scale`` of ``(..., H, W)`` images: keep the central ``H/s x W/s``
    frequencies, inverse-transform at the low resolution, divide by ``s**2``, take the magnitude.
    Low-resolution pixel ``j`` sits on high-resolution pixel ``s j`` (the IXI pairs' alignment),
    or with ``block_centred`` on the centre of its ``s x s`` block, ``s j + (s - 1) / 2`` (the
    image is shifted by a phase ramp first; MATLAB-bicubic's alignment)."""
    h, w = stack.shape[-2:]
    if h % scale or w % scale:
        raise ValueError(f"size {h}x{w} is not a multiple of the scale {scale}")
    lh, lw = h // scale, w // scale
    spectrum = np.fft.fft2(np.asarray(stack, dtype=np.float64))
    if block_centred:
        c = (scale - 1) / 2
        spectrum *= np.exp(2j * np.pi * c * (np.fft.fftfreq(h)[:, None] + np.fft.fftfreq(w)[None, :]))
    spectrum = np.fft.fftshift(spectrum, axes=(-2, -1))
    top, left = h // 2 - lh // 2, w // 2 - lw // 2
    centre = spectrum[..., top:top + lh, left:left + lw]
    low = np.fft.ifft2(np.fft.ifftshift(centre, axes=(-2, -1)))
    return np.abs(low) / scale**2


def degrade(stack: np.ndarray, scale: int, kind: str) -> np.ndarray:
    """Apply degradation ``kind`` (one of :data:`DEGRADATIONS`) at ``scale``; float64 output."""
    if kind == "bicubic":
        return bicubic_downscale(stack, scale)
    if kind == "truncation":
        return kspace_truncate(stack, scale)
    raise ValueError(f"unknown degradation {kind!r}; choose one of {DEGRADATIONS}")


@functools.lru_cache(maxsize=16)
def _upsample_matrix(n_in: int, scale: int) -> Tensor:
    """``(n_in * scale, n_in)`` matrix of MATLAB's bicubic ``imresize`` (BasicSR's weights),
    with its symmetric boundary padding folded back onto the signal."""
    import torch
    from basicsr.utils.matlab_functions import calculate_weights_indices

    weights, indices, sym_start, _ = calculate_weights_indices(
        n_in, n_in * scale, scale, "cubic", 4, True)
    pos = torch.remainder(indices.long() - sym_start, 2 * n_in)  # mirror, period 2 * n_in
    pos = torch.where(pos >= n_in, 2 * n_in - 1 - pos, pos)
    mat = torch.zeros(n_in * scale, n_in, dtype=torch.float64)
    return mat.scatter_add_(1, pos, weights.double()).float()


def bicubic_upsample(x: Tensor, scale: int) -> Tensor:
    """MATLAB-compatible bicubic upsampling of the last two dims of ``x`` by an integer ``scale``
    (equal to ``basicsr.utils.matlab_functions.imresize``, as two matrix products)."""
    rows = _upsample_matrix(x.shape[-2], scale).to(x.device, x.dtype)
    cols = _upsample_matrix(x.shape[-1], scale).to(x.device, x.dtype)
    return rows @ x @ cols.T
