"""Whole-volume MR super-resolution with a trained model: the slice/tile engine behind
``w2amsn infer`` (:mod:`w2amsn_plugin.commands.infer`).

``w2amsn infer --input lr.nii.gz --output sr.nii.gz --weights net_g_latest.pth`` reads a NIfTI
or Analyze volume, normalises it per volume as training did (docs/data.md), super-resolves
every slice of one anatomical plane in batches (tiled with overlap when a batch would exceed the
memory cap), undoes the normalisation and writes a NIfTI whose grid is ``scale`` times finer in
that plane over the same field of view (:mod:`w2amsn_plugin.inference.geometry`).

Intensities brighter than the normalisation percentile are clipped for the network, which never
saw values above 1 in training; what the clip removed is upsampled with MATLAB bicubic (the
interpolation of the paper's degradation) and added back, so bright structures keep their values
(at bicubic sharpness) and the output stays in the input's units. A model that is exactly bicubic
upsampling therefore reproduces bicubic upsampling of the input.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from basicsr.utils.matlab_functions import calculate_weights_indices
from torch import Tensor, nn
from tqdm import tqdm

from .. import device_caps
from ..archs.self_ensemble import self_ensemble as ensemble_x8
from ..data.normalization import DEFAULT_PERCENTILE, normalize_intensity
from .loading import InferenceError

__all__ = ["DEFAULT_MAX_PIXELS", "DEFAULT_TILE_OVERLAP", "TilePlan", "plan_tiles", "bicubic_upsample",
           "super_resolve_volume", "super_resolve_array"]

#: LR pixels per forward call (batch x window area): one 256x256 LR slice. W2AMSN (a=32, t=20)
#: peaks at about 5.7 KB per LR pixel in fp32 (4.3 KB in bf16; measured, x2), ~0.4 GiB per call;
#: `w2amsn bench` measured the same speed as 4x more per call and half the peak memory (a 256x256x150
#: volume at x4: 0.82 GiB above the output array for W2AMSN fp32, 1.69 GiB with 1 << 18).
DEFAULT_MAX_PIXELS = 1 << 16
#: LR pixels of context on each side of a tile (its output is cropped away)
DEFAULT_TILE_OVERLAP = 32

# --------------------------------------------------------------------------- bicubic

@functools.lru_cache(maxsize=16)
def _bicubic_matrix(n_in: int, scale: int) -> Tensor:
    """``(n_in * scale, n_in)`` matrix of MATLAB's bicubic ``imresize`` (BasicSR's weights),
    with its symmetric boundary padding folded back onto the signal."""
    weights, indices, sym_start, _ = calculate_weights_indices(
        n_in, n_in * scale, scale, "cubic", 4, True)
    pos = torch.remainder(indices.long() - sym_start, 2 * n_in)  # mirror, period 2 * n_in
    pos = torch.where(pos >= n_in, 2 * n_in - 1 - pos, pos)
    mat = torch.zeros(n_in * scale, n_in, dtype=torch.float64)
    return mat.scatter_add_(1, pos, weights.double()).float()


def bicubic_upsample(x: Tensor, scale: int) -> Tensor:
    """MATLAB-compatible bicubic upsampling of the last two dims of ``x`` by an integer ``scale``
    (equal to ``basicsr.utils.matlab_functions.imresize``, as two matrix products)."""
    rows = _bicubic_matrix(x.shape[-2], scale).to(x.device, x.dtype)
    cols = _bicubic_matrix(x.shape[-1], scale).to(x.device, x.dtype)
    return rows @ x @ cols.T


# --------------------------------------------------------------------------- tiling

@dataclass(frozen=True)
class TilePlan:
    """How slices go through the network: ``batch`` windows per forward call, each a whole
    slice (``tile`` None) or a ``tile`` x ``tile`` LR tile with ``overlap`` pixels of context."""

    batch: int
    tile: int | None = None
    overlap: int = DEFAULT_TILE_OVERLAP

    def windows(self, height: int, width: int
                ) -> tuple[tuple[int, int], list[tuple[int, int, int, int, int, int]]]:
        """Window size and ``(win_y, win_x, y0, y1, x0, x1)`` per tile of an ``height x width``
        slice: the tile ``[y0, y1) x [x0, x1)`` is cut from the output of the window at
        ``(win_y, win_x)``. Windows all have one size (they batch) and reach ``overlap`` pixels
        past their tile, or to the slice border, where zero padding is the same as untiled."""
        if self.tile is None:
            return (height, width), [(0, 0, 0, height, 0, width)]
        win_h = min(self.tile + 2 * self.overlap, height)
        win_w = min(self.tile + 2 * self.overlap, width)
        boxes = []
        for y0 in range(0, height, self.tile):
            win_y = min(max(y0 - self.overlap, 0), height - win_h)
            for x0 in range(0, width, self.tile):
                win_x = min(max(x0 - self.overlap, 0), width - win_w)
                boxes.append((win_y, win_x, y0, min(y0 + self.tile, height),
                              x0, min(x0 + self.tile, width)))
        return (win_h, win_w), boxes


def plan_tiles(height: int, width: int, batch: int = 8, *, max_pixels: int = DEFAULT_MAX_PIXELS,
               tile: int | None = None, overlap: int = DEFAULT_TILE_OVERLAP,
               self_ensemble: bool = False) -> TilePlan:
    """Plan for ``height x width`` LR slices: whole slices, ``batch`` at most and no more than
    ``max_pixels`` LR pixels per forward call; tiles (of side ``tile``, or the largest whose
    window fits ``max_pixels``) when one slice alone would exceed it. The self-ensemble runs up
    to 8 transformed copies per call, so it gets an eighth of ``max_pixels``."""
    if batch < 1 or max_pixels < 1 or overlap < 0 or (tile is not None and tile < 1):
        raise InferenceError("batch, max_pixels and tile must be positive, overlap >= 0")
    if self_ensemble:
        max_pixels = max(1, max_pixels // 8)
    if tile is None and height * width > max_pixels:
        tile = math.isqrt(max_pixels) - 2 * overlap
        if tile < 8:
            raise InferenceError(f"max_pixels {max_pixels} leaves tiles of {tile} px with "
                                 f"overlap {overlap}; raise it or lower the overlap")
    if tile is not None and tile >= max(height, width):
        tile = None
    plan = TilePlan(batch=1, tile=tile, overlap=overlap)
    win_h, win_w = plan.windows(height, width)[0]
    return TilePlan(batch=max(1, min(batch, max_pixels // (win_h * win_w))), tile=tile,
                    overlap=overlap)


# --------------------------------------------------------------------------- the engine

def _prepare(net: nn.Module, device: str) -> nn.Module:
    if torch.device(device).type == "cuda" and not torch.cuda.is_available():
        raise InferenceError(f"device {device!r}: CUDA is not available in this torch build/machine")
    return net.to(device=device, memory_format=torch.channels_last).eval()


def _forward_fn(net: nn.Module, device: str, bf16: bool, ensemble: bool
                ) -> Callable[[Tensor], Tensor]:
    dev_type = torch.device(device).type

    def forward(x: Tensor) -> Tensor:
        with torch.autocast(dev_type, dtype=torch.bfloat16, enabled=bf16):
            return net(x).float()

    return functools.partial(ensemble_x8, forward) if ensemble else forward


def _run_plan(volume: np.ndarray, net: nn.Module, scale: int, plane_axis: int, plan: TilePlan,
              ensemble: bool, bf16: bool, device: str, progress: bool) -> np.ndarray:
    """Super-resolve every slice along ``plane_axis`` of a float32 3-D ``volume``."""
    net = _prepare(net, device)
    forward = _forward_fn(net, device, bf16, ensemble)
    shape = list(volume.shape)
    for ax in range(3):
        if ax != plane_axis:
            shape[ax] *= scale
    out = np.empty(shape, dtype=np.float32)
    lr = torch.from_numpy(np.moveaxis(volume, plane_axis, 0))
    sr = torch.from_numpy(np.moveaxis(out, plane_axis, 0))
    n, height, width = lr.shape
    (win_h, win_w), boxes = plan.windows(height, width)
    jobs = [(k, box) for k in range(n) for box in boxes]
    expected = (win_h * scale, win_w * scale)
    with torch.inference_mode(), tqdm(total=n, unit="slice", disable=not progress,
                                      desc="super-resolving", leave=False) as bar:
        for start in range(0, len(jobs), plan.batch):
            chunk = jobs[start:start + plan.batch]
            if plan.tile is None:  # whole slices: one strided slab, no per-slice Python
                x = lr[chunk[0][0]:chunk[-1][0] + 1].unsqueeze(1)
            else:
                x = torch.stack([lr[k, wy:wy + win_h, wx:wx + win_w]
                                 for k, (wy, wx, *_) in chunk]).unsqueeze(1)
            y = forward(x.to(device=device, memory_format=torch.channels_last))
            if tuple(y.shape) != (len(chunk), 1, *expected):
                raise InferenceError(f"network returned shape {tuple(y.shape)} for input "
                                     f"{tuple(x.shape)}; expected {(len(chunk), 1, *expected)} "
                                     f"(a 1-channel x{scale} model)")
            y = y[:, 0].cpu()
            if plan.tile is None:
                sr[chunk[0][0]:chunk[-1][0] + 1].copy_(y)
            else:
                for (k, (wy, wx, y0, y1, x0, x1)), yk in zip(chunk, y):
                    sr[k, y0 * scale:y1 * scale, x0 * scale:x1 * scale].copy_(
                        yk[(y0 - wy) * scale:(y1 - wy) * scale, (x0 - wx) * scale:(x1 - wx) * scale])
            bar.update(len(chunk) / len(boxes))
    return out


def _check_volume(volume: np.ndarray, plane_axis: int) -> np.ndarray:
    volume = np.asarray(volume)
    if volume.ndim != 3:
        raise InferenceError(f"expected a 3-D volume, got shape {volume.shape}")
    if plane_axis not in (0, 1, 2):
        raise InferenceError(f"plane_axis must be 0, 1 or 2, got {plane_axis}")
    volume = volume.astype(np.float32, copy=False)
    if not np.isfinite(volume).all():
        raise InferenceError(f"volume has {np.count_nonzero(~np.isfinite(volume))} NaN/inf voxels")
    return volume


def super_resolve_volume(volume: np.ndarray, net: torch.nn.Module, scale: int, *,
                         plane_axis: int = 2, batch: int = 8, self_ensemble: bool = False,
                         bf16: bool | None = None, device: str = "cpu",
                         progress: bool = False) -> np.ndarray:
    """Super-resolve every slice of a normalised 3-D volume (values in [0, 1], as in training).

    The slices are the 2-D planes normal to ``plane_axis``; they go through ``net`` ``batch`` at
    a time (at most :data:`DEFAULT_MAX_PIXELS` LR pixels per call, tiled with overlap beyond
    that), in channels_last, with the x8 self-ensemble of the paper's W²AMSN+ (Table III) when
    ``self_ensemble``. ``bf16=None`` uses bf16 autocast where ``device`` computes it natively
    (:func:`w2amsn_plugin.device_caps.native_bf16`). ``net`` is moved to ``device`` in place.
    Returns float32 with both in-plane axes ``scale`` times longer; no clamping.
    """
    volume = _check_volume(volume, plane_axis)
    height, width = (volume.shape[ax] for ax in range(3) if ax != plane_axis)
    plan = plan_tiles(height, width, batch, self_ensemble=self_ensemble)
    return _run_plan(volume, net, scale, plane_axis, plan, self_ensemble,
                     device_caps.resolve_bf16(bf16, device), device, progress)


def super_resolve_array(volume: np.ndarray, net: torch.nn.Module, scale: int, *,
                        plane_axis: int = 2, percentile: float = DEFAULT_PERCENTILE,
                        plan: TilePlan | None = None, self_ensemble: bool = False,
                        bf16: bool | None = None, device: str = "cpu",
                        progress: bool = False) -> np.ndarray:
    """Super-resolve a 3-D volume in its own intensity units (what ``w2amsn infer`` runs).

    Normalises with :func:`~w2amsn_plugin.data.normalization.normalize_intensity` at
    ``percentile``, runs the network on the clipped volume, adds back the MATLAB-bicubic
    upsampled part above the clip (module docstring), and maps back to the input's units.
    ``plan`` defaults to :func:`plan_tiles` with batch 8. Returns float32.
    """
    volume = _check_volume(volume, plane_axis)
    try:
        norm, lo, hi = normalize_intensity(volume, percentile)
    except ValueError as err:
        raise InferenceError(str(err)) from err
    height, width = (volume.shape[ax] for ax in range(3) if ax != plane_axis)
    plan = plan or plan_tiles(height, width, self_ensemble=self_ensemble)
    out = _run_plan(norm, net, scale, plane_axis, plan, self_ensemble,
                    device_caps.resolve_bf16(bf16, device), device, progress)
    excess = np.moveaxis(np.maximum(volume - np.float32(hi), 0) / np.float32(hi - lo),
                         plane_axis, 0)
    sr = torch.from_numpy(np.moveaxis(out, plane_axis, 0))
    bright = np.flatnonzero(excess.any(axis=(1, 2)))
    for start in range(0, len(bright), plan.batch):
        ks = torch.from_numpy(bright[start:start + plan.batch])
        sr[ks] += bicubic_upsample(torch.from_numpy(excess[bright[start:start + plan.batch]]),
                                   scale)
    out *= np.float32(hi - lo)  # in place: denormalize_intensity(out, lo, hi) without a copy
    out += np.float32(lo)
    return out


