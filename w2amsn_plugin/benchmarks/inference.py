"""Inference rows of ``w2amsn bench``: one network on LR slices through every path, in fp32 and
bf16, eager and compiled (issue 11, deliverable 1).

Paths (same weights, same input, ``batch`` slices per call):

- ``eager NCHW`` / ``eager channels_last``: plain PyTorch, ``net(x)`` under
  ``torch.inference_mode`` (and ``torch.autocast`` for bf16);
- ``super_resolve_volume``: :func:`w2amsn_plugin.infer.super_resolve_volume` on a stack of
  slices (our inference path: channels_last, bf16 autocast where asked);
- ``MRSRModel.test``: BasicSR's test path, ``feed_data`` + ``test`` on our ``MRSRModel`` with
  ``val: {channels_last: true, bf16: <precision>}``;
- ``SRModel.test (stock)``: BasicSR's own ``SRModel``, NCHW fp32 (it has no bf16);
- ``+ compile``: ``torch.compile`` of the channels_last network, plain and through
  ``super_resolve_volume`` (one compiled module serves both).

FLOPs per slice come from ``torch.utils.flop_counter`` (:func:`w2amsn_plugin.stats.count`, on the
meta device); MFU = FLOPs / seconds / the conv limit of the same precision. Where bf16 is
emulated, bf16 rows run on ``emulated_size`` slices and the time per full slice is extrapolated
by the FLOPs ratio (the row says so).
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
from .machine_limits import ConvLimit
from .results import Row
from .timing import synchronize, time_calls

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
    from ..stats import count

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
    from ..infer import super_resolve_volume

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


def _cases(paths: Sequence[str], precisions: Sequence[str], compile_: bool) -> list[_Case]:
    cases = []
    for precision in precisions:
        bf16 = precision == "bf16"
        cases += [_Case(p, bf16) for p in paths if not (p == STOCK and bf16)]
        if compile_:
            cases += [_Case(p, bf16, True) for p in (PLAIN_CL, OURS) if p in paths]
    return cases


def inference_rows(name: str, settings: InferSettings, limits: dict[str, ConvLimit],
                   paths: Sequence[str] = ALL_PATHS, precisions: Sequence[str] = ("fp32", "bf16"),
                   compile_: bool = False) -> list[Row]:
    """Rows for network preset ``name``: each path x precision (x compile) in ``settings``."""
    from .results import guarded

    s = settings
    device = s.device
    torch.manual_seed(0)
    base = build_network(preset(name, s.scale)).eval().requires_grad_(False)
    emulated = not device_caps.native_bf16(device)
    compiled: dict[bool, nn.Module] = {}
    rows: list[Row] = []
    for case in _cases(paths, precisions, compile_):
        small = case.bf16 and emulated
        side = s.emulated_size if small else s.lr_size
        label = f"{name} x{s.scale} {case.path} {case.precision}" + (" + compile" if case.compiled else "")
        fields = dict(model=name, path=case.path, precision=case.precision, compiled=case.compiled,
                      input=f"{s.batch}x1x{s.lr_size}x{s.lr_size}")
        if case.compiled and small:
            rows.append(Row("inference", label, unavailable="bf16 is emulated here (10x slower "
                            "than fp32); compile not timed", **fields))
            continue
        rows += guarded("inference", label, functools.partial(
            _measure, name, base, case, side, small, s, limits, compiled, label, fields), **fields)
    torch._dynamo.reset()  # compiled code of this network is not reused
    return rows


def _measure(name: str, base: nn.Module, case: _Case, side: int, small: bool, s: InferSettings,
             limits: dict[str, ConvLimit], compiled: dict[bool, nn.Module], label: str,
             fields: dict) -> Row:
    device = s.device
    x = torch.rand(s.batch, 1, side, side, generator=torch.Generator().manual_seed(1))
    x = x.to(device)
    probe = None
    note = []
    compile_seconds = None
    if case.path in (MRSR, STOCK):
        model_type = "MRSRModel" if case.path == MRSR else "SRModel"
        fn, probe = _basicsr_test(model_type, base, name, x, s.scale, device, case.bf16)
    else:
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
            xin = x.contiguous(memory_format=_CL) if case.path == PLAIN_CL else x
            fn = _plain(net, xin, device, case.bf16)
        if case.compiled:
            start = time.perf_counter()
            fn()
            synchronize(device)
            compile_seconds = time.perf_counter() - start
    timing = time_calls(fn, warmup=s.warmup, reps=s.reps, device=device)
    flops = slice_flops(name, s.scale, side, side)
    per_slice = timing.best / s.batch
    limit = limits.get(case.precision)
    mfu = flops / per_slice / (limit.gflops * 1e9) if limit is not None else None
    if small:
        per_slice *= slice_flops(name, s.scale, s.lr_size, s.lr_size) / flops
        note.append(f"bf16 emulated: timed on {side}x{side}, extrapolated by FLOPs")
    if compile_seconds is not None:
        note.append(f"first call (compile) {compile_seconds:.0f} s")
    unavailable = None
    if probe is not None:
        layout = "channels_last" if probe.channels_last else "NCHW"
        note.insert(0, f"ran {layout}, autocast {'on' if probe.autocast else 'off'}")
        if case.bf16 and not probe.autocast:
            unavailable = f"{case.path} ignored val.bf16 (ran fp32); option missing"
    return Row("inference", label, seconds=per_slice, throughput=1 / per_slice,
               unit="slices/s", mfu=mfu, note="; ".join(note), unavailable=unavailable,
               extra={"flops_per_slice": slice_flops(name, s.scale, s.lr_size, s.lr_size),
                      "timed_side": side, "seconds_per_call": list(timing.seconds),
                      "compile_seconds": compile_seconds}, **fields)
