"""Whole-volume MR super-resolution with a trained model: the slice/tile engine behind
``w2amsn infer`` (:mod:`w2amsn_plugin.commands.infer`; docs/inference.md).

Every slice of one plane of a 3-D volume goes through the network in batches (tiled with overlap
when a batch would exceed the pixel budget). One code path serves the CPU and a GPU:

- the volume (or a slab of it) is moved to the device once; batches are cut from it there;
- :func:`super_resolve_array` normalises each batch on the device with the volume's intensity
  window (:func:`w2amsn_plugin.data.normalization.intensity_window`, as training did), and maps
  the network's output back to the input's units there too;
- results come back through pinned host buffers on a side stream (CUDA), so the copy of one batch
  overlaps the computation of the next; on the CPU they are written straight into the output;
- on CUDA the pixel budget per call comes from the free device memory (:func:`auto_max_pixels`);
  a batch that runs out of memory is split in halves and retried (on any device).

Intensities brighter than the normalisation percentile are clipped for the network, which never
saw values above 1 in training; what the clip removed is upsampled with MATLAB bicubic (the
interpolation of the paper's degradation) and added back, so bright structures keep their values
(at bicubic sharpness) and the output stays in the input's units. A model that is exactly bicubic
upsampling therefore reproduces bicubic upsampling of the input.

The x8 self-ensemble (W²AMSN+, paper Table III) runs the 8 dihedral transforms of each batch of the
plain pass's tile plan one after another (several per call where a batch is short, never more
windows per call than the plan's batch), so it costs 8 plain passes, not more.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
from torch import Tensor, nn
from tqdm import tqdm

from .. import device_caps
from ..archs.self_ensemble import NUM_TRANSFORMS, inverse_transform, transform
from ..data.degradations import bicubic_upsample
from ..data.normalization import DEFAULT_PERCENTILE
from .devices import check_device
from .planning import volume_window
from .errors import InferenceError
from .tiling import CPU_BATCH, TilePlan, auto_max_pixels, plan_tiles

__all__ = ["check_device", "volume_window", "super_resolve_volume", "super_resolve_array"]

_SLAB_BYTES = 1 << 30

def _default_plan(height: int, width: int, device: torch.device, scale: int,
                  batch: int | None, self_ensemble: bool) -> TilePlan:
    if batch is None and device.type == "cpu":
        batch = CPU_BATCH
    return plan_tiles(height, width, batch,
                      max_pixels=auto_max_pixels(device, scale, self_ensemble))


# --------------------------------------------------------------------------- the engine

@dataclass(frozen=True)
class _Window:
    """The intensity window a batch is normalised with on the device (None: already in [0, 1])."""

    lo: float
    hi: float

    def normalise(self, x: Tensor) -> Tensor:
        return (x.clamp(self.lo, self.hi) - self.lo) / (self.hi - self.lo)

    def restore(self, y: Tensor, x: Tensor, scale: int, bright: bool) -> Tensor:
        """``y`` (network output for the normalised ``x``) in ``x``'s units: plus the bicubic
        upsampling of what the clip removed where ``bright``, then ``* (hi - lo) + lo``."""
        span = np.float32(self.hi - self.lo)
        if bright:
            excess = (x[:, 0] - np.float32(self.hi)).clamp_min_(0) / span
            y[:, 0] += bicubic_upsample(excess, scale)
        return y.mul_(float(span)).add_(float(np.float32(self.lo)))


def _prepare(net: nn.Module, device: torch.device) -> nn.Module:
    """``net`` on ``device`` in channels_last, in eval mode. Walking every parameter costs ~1 ms
    (W2AMSN-S), a tenth of a GPU call: skipped when the first conv weight whose layout tells
    (more than one input channel and a kernel larger than 1x1) is already there in channels_last."""
    weight = next((p for p in net.parameters() if p.dim() == 4 and p.shape[1] > 1
                   and p.shape[2] * p.shape[3] > 1), None)
    there = weight is not None and weight.device.type == device.type and (
        device.index is None or weight.device.index == device.index)
    if not there or not weight.is_contiguous(memory_format=torch.channels_last):
        net.to(device=device, memory_format=torch.channels_last)
    return net.eval()


def _forward_fn(net: nn.Module, device: torch.device, bf16: bool, ensemble: bool,
                batch: int = 1) -> Callable[[Tensor], Tensor]:
    def forward(x: Tensor) -> Tensor:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            return net(x.contiguous(memory_format=torch.channels_last)).float()

    if not ensemble:
        return forward

    def ensemble_x8(x: Tensor) -> Tensor:
        """Mean over the 8 dihedral transforms (:mod:`w2amsn_plugin.archs.self_ensemble`) at the
        plain plan: no call holds more than ``batch`` windows, so a full batch runs the 8 one
        after another and a short one (the last, a small volume) several per call; transforms
        that transpose a non-square window (4..7) never share a call with the others."""
        n = x.shape[0]
        per_call = max(1, batch // n)
        square = x.shape[-1] == x.shape[-2]
        groups = [range(NUM_TRANSFORMS)] if square else [range(4), range(4, NUM_TRANSFORMS)]
        total = None
        for group in groups:
            for start in range(group.start, group.stop, per_call):
                ks = range(start, min(start + per_call, group.stop))
                out = forward(torch.cat([transform(x, k) for k in ks]))
                for i, k in enumerate(ks):
                    part = inverse_transform(out[i * n:(i + 1) * n], k)
                    total = part.clone() if total is None else total.add_(part)
        return total.div_(NUM_TRANSFORMS)

    return ensemble_x8


class _Sink:
    """Writes batch outputs into the host output ``sr`` (slices first). On the CPU straight
    away; on CUDA (or ``staged``) through two host buffers (pinned on CUDA) filled on a side
    stream, so the copy of one batch overlaps the computation of the next."""

    def __init__(self, sr: Tensor, scale: tuple[int, int], device: torch.device, staged: bool) -> None:
        self.sr, self.scale = sr, scale
        self.cuda = device.type == "cuda"
        self.staged = staged or self.cuda
        self.stream = torch.cuda.Stream(device) if self.cuda else None
        self.buffers: dict[tuple[int, ...], list[Tensor]] = {}
        self.pending: list[tuple] = []
        self.turn = 0

    def put(self, y: Tensor, chunk: list, tiled: bool) -> None:
        if not self.staged:
            self._write(y, chunk, tiled)
            return
        if len(self.pending) == 2:  # both buffers in flight: the oldest must land first
            self._land(self.pending.pop(0))
        buf = self._buffer(tuple(y.shape))
        event = None
        if self.cuda:
            self.stream.wait_stream(torch.cuda.current_stream(y.device))
            with torch.cuda.stream(self.stream):
                buf.copy_(y, non_blocking=True)
                event = torch.cuda.Event()
                event.record(self.stream)
            y.record_stream(self.stream)
        else:
            buf.copy_(y)
        self.pending.append((buf, event, chunk, tiled))

    def flush(self) -> None:
        while self.pending:
            self._land(self.pending.pop(0))

    def _buffer(self, shape: tuple[int, ...]) -> Tensor:
        pair = self.buffers.setdefault(shape, [])
        self.turn = (self.turn + 1) % 2
        while len(pair) <= self.turn:
            pair.append(torch.empty(shape, dtype=torch.float32, pin_memory=self.cuda))
        return pair[self.turn]

    def _land(self, item) -> None:
        buf, event, chunk, tiled = item
        if event is not None:
            event.synchronize()
        self._write(buf, chunk, tiled)

    def _write(self, y: Tensor, chunk: list, tiled: bool) -> None:
        (sy, sx), sr = self.scale, self.sr
        if not tiled:  # whole slices: one strided slab, no per-slice Python
            sr[chunk[0][0]:chunk[-1][0] + 1].copy_(y[:, 0])
            return
        for (k, (wy, wx, y0, y1, x0, x1)), yk in zip(chunk, y[:, 0]):
            sr[k, y0 * sy:y1 * sy, x0 * sx:x1 * sx].copy_(
                yk[(y0 - wy) * sy:(y1 - wy) * sy, (x0 - wx) * sx:(x1 - wx) * sx])


def _slabs(n: int, slice_bytes: int, device: torch.device) -> list[tuple[int, int]]:
    """Slice ranges moved to the device at once: the whole volume on the CPU (no copy)."""
    step = n if device.type == "cpu" else max(1, _SLAB_BYTES // max(1, slice_bytes))
    return [(s0, min(n, s0 + step)) for s0 in range(0, n, step)]


def _run_plan(volume: np.ndarray, net: nn.Module, scale: int | tuple[int, int], plane_axis: int,
              plan: TilePlan,
              ensemble: bool, bf16: bool, device: str | torch.device,
              progress: bool | tqdm = False, window: _Window | None = None,
              staged: bool = False) -> np.ndarray:
    """Super-resolve every slice along ``plane_axis`` of a float32 3-D ``volume`` (normalised
    per batch with ``window`` when given). ``staged`` takes the CUDA copy-back path on the CPU.
    ``scale``: one factor for both in-plane axes, or ``(rows, cols)`` (a one-axis network, e.g.
    ``(4, 1)``; only without ``window``)."""
    device = torch.device(device)
    net = _prepare(net, device)
    forward = _forward_fn(net, device, bf16, ensemble, plan.batch)
    sy, sx = (scale, scale) if isinstance(scale, int) else scale
    in_plane = iter((sy, sx))
    shape = [n if ax == plane_axis else n * next(in_plane) for ax, n in enumerate(volume.shape)]
    out = np.empty(shape, dtype=np.float32)
    lr = np.moveaxis(volume, plane_axis, 0)
    n, height, width = lr.shape
    bright = (lr > np.float32(window.hi)).any(axis=(1, 2)) if window is not None else None
    sink = _Sink(torch.from_numpy(np.moveaxis(out, plane_axis, 0)), (sy, sx), device, staged)
    (win_h, win_w), boxes = plan.windows(height, width)
    tiled = plan.tile is not None
    expected = (win_h * sy, win_w * sx)

    def run(chunk: list, x: Tensor) -> None:
        xin = window.normalise(x) if window is not None else x
        try:
            y = forward(xin)
        except torch.OutOfMemoryError:
            if len(chunk) == 1:
                raise
            if device.type == "cuda":
                torch.cuda.empty_cache()
            half = len(chunk) // 2
            run(chunk[:half], x[:half])
            run(chunk[half:], x[half:])
            return
        if tuple(y.shape) != (len(chunk), 1, *expected):
            raise InferenceError(f"network returned shape {tuple(y.shape)} for input "
                                 f"{tuple(x.shape)}; expected {(len(chunk), 1, *expected)} "
                                 f"(a 1-channel x{sy}x{sx} model)")
        if window is not None:
            y = window.restore(y, x, scale, bool(bright[[k for k, _ in chunk]].any()))
        sink.put(y, chunk, tiled)

    bar = progress if isinstance(progress, tqdm) else tqdm(
        total=n, unit="slice", disable=not progress, desc="super-resolving", leave=False)
    with torch.inference_mode():
        for s0, s1 in _slabs(n, height * width * 4, device):
            slab = torch.from_numpy(np.ascontiguousarray(lr[s0:s1]) if device.type != "cpu"
                                    else lr[s0:s1]).to(device)
            jobs = [(k, box) for k in range(s0, s1) for box in boxes]
            for start in range(0, len(jobs), plan.batch):
                chunk = jobs[start:start + plan.batch]
                if not tiled:
                    x = slab[chunk[0][0] - s0:chunk[-1][0] + 1 - s0].unsqueeze(1)
                else:
                    x = torch.stack([slab[k - s0, wy:wy + win_h, wx:wx + win_w]
                                     for k, (wy, wx, *_) in chunk]).unsqueeze(1)
                run(chunk, x)
                bar.update(len(chunk) / len(boxes))
        sink.flush()
    if bar is not progress:
        bar.close()
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


def _in_plane(shape: Sequence[int], plane_axis: int) -> tuple[int, int]:
    height, width = (shape[ax] for ax in range(3) if ax != plane_axis)
    return height, width


def super_resolve_volume(volume: np.ndarray, net: torch.nn.Module, scale: int | tuple[int, int], *,
                         plane_axis: int = 2, batch: int | None = None,
                         self_ensemble: bool = False, bf16: bool | None = None,
                         device: str = "cpu", progress: bool | tqdm = False,
                         plan: TilePlan | None = None) -> np.ndarray:
    """Super-resolve every slice of a normalised 3-D volume (values in [0, 1], as in training).

    The slices are the 2-D planes normal to ``plane_axis``; they go through ``net`` in batches
    of ``plan`` (default: ``batch`` slices at most, 8 on the CPU and only the memory budget on
    CUDA, :func:`auto_max_pixels` LR pixels per call, tiled with overlap beyond that), in
    channels_last, with the x8 self-ensemble of the paper's W²AMSN+ (Table III) when
    ``self_ensemble``. ``bf16=None`` uses bf16 autocast where ``device`` computes it natively
    (:func:`w2amsn_plugin.device_caps.native_bf16`). ``net`` is moved to ``device`` in place.
    ``progress`` is a flag or a ``tqdm`` bar to advance by one per slice.
    Returns float32 with both in-plane axes ``scale`` times longer; no clamping. ``scale`` may
    be ``(rows, cols)`` for a network that upsamples the axes differently (``w2amsn self-sr``'s
    one-axis W²AMSN: ``(s, 1)``; rows are the first in-plane axis).
    """
    volume = _check_volume(volume, plane_axis)
    dev = check_device(device)
    plan = plan or _default_plan(*_in_plane(volume.shape, plane_axis), dev,
                                 scale if isinstance(scale, int) else max(scale), batch, self_ensemble)
    return _run_plan(volume, net, scale, plane_axis, plan, self_ensemble,
                     device_caps.resolve_bf16(bf16, dev), dev, progress)


def super_resolve_array(volume: np.ndarray, net: torch.nn.Module, scale: int, *,
                        plane_axis: int = 2, percentile: float = DEFAULT_PERCENTILE,
                        plan: TilePlan | None = None, self_ensemble: bool = False,
                        bf16: bool | None = None, device: str = "cpu",
                        progress: bool | tqdm = False,
                        window: tuple[float, float] | None = None) -> np.ndarray:
    """Super-resolve a 3-D volume in its own intensity units (what ``w2amsn infer`` runs).

    Normalises each batch on the device with the volume's window (``window``, or
    :func:`volume_window` at ``percentile``), runs the network on the clipped batch, adds back
    the MATLAB-bicubic upsampled part above the clip (module docstring) and maps back to the
    input's units. ``plan`` defaults as in :func:`super_resolve_volume`. Returns float32.
    """
    volume = _check_volume(volume, plane_axis)
    lo, hi = window if window is not None else volume_window(volume, percentile)
    dev = check_device(device)
    plan = plan or _default_plan(*_in_plane(volume.shape, plane_axis), dev, scale, None,
                                 self_ensemble)
    return _run_plan(volume, net, scale, plane_axis, plan, self_ensemble,
                     device_caps.resolve_bf16(bf16, dev), dev, progress, window=_Window(lo, hi))
