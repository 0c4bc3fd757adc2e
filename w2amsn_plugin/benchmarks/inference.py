"""Inference rows of ``w2amsn bench``: one network on LR slices through every path, in fp32 and
bf16, eager and compiled.

Paths (same weights, same input, ``batch`` slices per call):

- ``eager NCHW`` / ``eager channels_last``: plain PyTorch, ``net(x)`` under
  ``torch.inference_mode`` (and ``torch.autocast`` for bf16);
- ``super_resolve_volume``: :func:`w2amsn_plugin.inference.super_resolve_volume` on a stack of
  slices (our inference path: channels_last, bf16 autocast where asked);
- ``MRSRModel.test``: BasicSR's test path, ``feed_data`` + ``test`` on our ``MRSRModel`` with
  ``val: {channels_last: true, bf16: <precision>}``;
- ``SRModel.test (stock)``: BasicSR's own ``SRModel``, NCHW fp32 (it has no bf16);
- ``+ compile``: ``torch.compile`` of the channels_last network, plain and through
  ``super_resolve_volume`` (one compiled module serves both).

The cases of one network are timed round-robin (:func:`.timing.time_interleaved`). FLOPs per
slice come from ``torch.utils.flop_counter`` (:func:`w2amsn_plugin.stats.count`, on the meta
device); the bench divides them by the time and the conv limit of the same precision (MFU).
Where bf16 is emulated, bf16 rows run on ``emulated_size`` slices and the time per full slice is
extrapolated by the FLOPs ratio (the row says so).
"""
from __future__ import annotations

import copy
import functools
import time
import warnings
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
from basicsr.archs import build_network
from torch import nn

from .. import device_caps
from ..archs.presets import preset
from .basicsr_models import ForwardProbe, build_sr_model, model_options
from .results import Row, error_row
from .timing import Timing, synchronize, time_interleaved

__all__ = ["PLAIN_NCHW", "PLAIN_CL", "OURS", "MRSR", "STOCK", "PLAIN_PATHS", "ALL_PATHS",
           "InferSettings", "slice_flops", "inference_rows"]

PLAIN_NCHW = "eager NCHW"
PLAIN_CL = "eager channels_last"
OURS = "super_resolve_volume"
MRSR = "MRSRModel.test"
STOCK = "SRModel.test (stock)"
PLAIN_PATHS = (PLAIN_NCHW, PLAIN_CL)
ALL_PATHS = (PLAIN_NCHW, PLAIN_CL, OURS, MRSR, STOCK)
_CL = torch.channels_last


@dataclass(frozen=True)
class InferSettings:
    """Input and repetition counts of the inference rows."""

    lr_size: int = 120
    scale: int = 2
    batch: int = 1
    warmup: int = 1
    reps: int = 2
    emulated_size: int = 32
    device: str = "cpu"


@functools.lru_cache(maxsize=None)
def slice_flops(name: str, scale: int, height: int, width: int) -> int:
    """FLOPs (2 x multiply-adds) of preset ``name`` at ``scale`` on one ``height x width`` slice."""
    from ..archs.complexity import count

    return 2 * count(preset(name, scale), (height, width))["macs"]


def _autocast(device: str, bf16: bool):
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=bf16)


def _plain(net: nn.Module, x: torch.Tensor, device: str, bf16: bool) -> Callable[[], object]:
    def call() -> torch.Tensor:
        with torch.inference_mode(), _autocast(device, bf16):
            return net(x)
    return call


def _ours(net: nn.Module, x: torch.Tensor, scale: int, device: str, bf16: bool
          ) -> Callable[[], object]:
    from ..inference import super_resolve_volume

    volume = x[:, 0].cpu().numpy()  # (batch, h, w): slices normal to axis 0

    def call() -> np.ndarray:
        with warnings.catch_warnings():  # "bf16 is emulated" is said once in the row instead
            warnings.simplefilter("ignore", RuntimeWarning)
            return super_resolve_volume(volume, net, scale, plane_axis=0, batch=len(volume),
                                        bf16=bf16, device=device)
    return call


def _basicsr_test(model_type: str, net: nn.Module, name: str, x: torch.Tensor, scale: int,
                  device: str, bf16: bool) -> tuple[Callable[[], object], ForwardProbe]:
    val = {"bf16": bf16, "channels_last": True} if model_type == "MRSRModel" else {}
    model = build_sr_model(model_options(model_type, preset(name, scale), scale, device,
                                         is_train=False, val=val), weights=net)
    probe = ForwardProbe().attach(model.get_bare_model(model.net_g))

    def call() -> None:
        model.feed_data({"lq": x})
        model.test()
        del model.output
    return call, probe


@dataclass(frozen=True)
class _Case:
    path: str
    bf16: bool
    compiled: bool = False

    @property
    def precision(self) -> str:
        return "bf16" if self.bf16 else "fp32"


@dataclass
class _Prepared:
    """A case ready to time: its call, and what the row needs to say about it."""

    fn: Callable[[], object]
    side: int
    small: bool
    probe: ForwardProbe | None = None
    compile_seconds: float | None = None


def _cases(paths: Sequence[str], precisions: Sequence[str], compile_: bool) -> list[_Case]:
    cases = []
    for precision in precisions:
        bf16 = precision == "bf16"
        cases += [_Case(p, bf16) for p in paths if not (p == STOCK and bf16)]
        if compile_:
            cases += [_Case(p, bf16, True) for p in (PLAIN_CL, OURS) if p in paths]
    return cases


def inference_rows(name: str, settings: InferSettings, paths: Sequence[str] = ALL_PATHS,
                   precisions: Sequence[str] = ("fp32", "bf16"), compile_: bool = False
                   ) -> list[Row]:
    """Rows for network preset ``name``: each path x precision (x compile) in ``settings``,
    timed round-robin. ``extra`` holds ``flops_per_call`` and ``best_call_seconds`` (the bench
    derives MFU from them and the conv limit)."""
    s = settings
    torch.manual_seed(0)
    base = build_network(preset(name, s.scale)).eval().requires_grad_(False)
    emulated = not device_caps.native_bf16(s.device)
    compiled: dict[bool, nn.Module] = {}
    prepared: dict[_Case, _Prepared] = {}
    done: dict[_Case, Row] = {}
    for case in _cases(paths, precisions, compile_):
        small = case.bf16 and emulated
        if case.compiled and small:
            done[case] = _row(name, s, case, unavailable="bf16 is emulated here (~10x slower "
                              "than fp32); compiled bf16 not timed")
            continue
        try:
            prepared[case] = _prepare(name, base, case, small, s, compiled)
        except Exception as err:  # one error row; the other cases go on
            done[case] = _row(name, s, case, error=err)
    timings, failed = time_interleaved({c: p.fn for c, p in prepared.items()},
                                       warmup=s.warmup, reps=s.reps, device=s.device)
    for case, err in failed.items():
        done[case] = _row(name, s, case, error=err)
    for case, timing in timings.items():
        done[case] = _timed_row(name, s, case, prepared[case], timing)
    torch._dynamo.reset()  # compiled code of this network is not reused
    return [done[c] for c in _cases(paths, precisions, compile_)]


def _prepare(name: str, base: nn.Module, case: _Case, small: bool, s: InferSettings,
             compiled: dict[bool, nn.Module]) -> _Prepared:
    device = s.device
    side = s.emulated_size if small else s.lr_size
    x = torch.rand(s.batch, 1, side, side, generator=torch.Generator().manual_seed(1)).to(device)
    if case.path in (MRSR, STOCK):
        model_type = "MRSRModel" if case.path == MRSR else "SRModel"
        fn, probe = _basicsr_test(model_type, base, name, x, s.scale, device, case.bf16)
        return _Prepared(fn, side, small, probe=probe)
    if case.compiled:
        if case.bf16 not in compiled:
            net = copy.deepcopy(base).to(device=device, memory_format=_CL)
            compiled[case.bf16] = torch.compile(net)
        net = compiled[case.bf16]
    else:
        net = copy.deepcopy(base).to(device)
        if case.path != PLAIN_NCHW:
            net = net.to(memory_format=_CL)
    if case.path == OURS:
        fn = _ours(net, x, s.scale, device, case.bf16)
    else:
        fn = _plain(net, x.contiguous(memory_format=_CL) if case.path == PLAIN_CL else x,
                    device, case.bf16)
    compile_seconds = None
    if case.compiled:  # the first call compiles; time it on its own
        start = time.perf_counter()
        fn()
        synchronize(device)
        compile_seconds = time.perf_counter() - start
    return _Prepared(fn, side, small, compile_seconds=compile_seconds)


def _label(name: str, s: InferSettings, case: _Case) -> str:
    return f"{name} x{s.scale} {case.path} {case.precision}" + (" + compile" if case.compiled else "")


def _row(name: str, s: InferSettings, case: _Case, **fields) -> Row:
    err = fields.pop("error", None)
    common = dict(model=name, path=case.path, precision=case.precision, compiled=case.compiled,
                  input=f"{s.batch}x1x{s.lr_size}x{s.lr_size}")
    if err is not None:
        return error_row("inference", _label(name, s, case), err, **common)
    return Row("inference", _label(name, s, case), **common, **fields)


def _timed_row(name: str, s: InferSettings, case: _Case, prep: _Prepared, timing: Timing) -> Row:
    flops_call = s.batch * slice_flops(name, s.scale, prep.side, prep.side)
    per_slice = timing.best / s.batch
    note = []
    if prep.small:
        per_slice *= slice_flops(name, s.scale, s.lr_size, s.lr_size) / (flops_call / s.batch)
        note.append(f"bf16 emulated: timed on {prep.side}x{prep.side}, extrapolated by FLOPs")
    if prep.compile_seconds is not None:
        note.append(f"first call (compile) {prep.compile_seconds:.0f} s")
    unavailable = None
    if prep.probe is not None:
        layout = "channels_last" if prep.probe.channels_last else "NCHW"
        note.insert(0, f"ran {layout}, autocast {'on' if prep.probe.autocast else 'off'}")
        if case.bf16 and not prep.probe.autocast:
            unavailable = f"{case.path} ignored val.bf16 (ran fp32); option missing"
    return _row(name, s, case, seconds=per_slice, throughput=1 / per_slice, unit="slices/s",
                note="; ".join(note), unavailable=unavailable,
                extra={"flops_per_slice": slice_flops(name, s.scale, s.lr_size, s.lr_size),
                       "flops_per_call": flops_call, "best_call_seconds": timing.best,
                       "timed_side": prep.side, "seconds_per_call": list(timing.seconds),
                       "compile_seconds": prep.compile_seconds})
