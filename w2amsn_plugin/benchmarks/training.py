"""Training-step rows of ``w2amsn bench``: one step of a batch of LR patches (paper: 32x32 LR,
L1 loss, Adam) through BasicSR's ``optimize_parameters`` on our ``MRSRModel``, against a plain
PyTorch loop on the same network and weights.

The plain loop is what a careful user writes by hand: ``zero_grad(set_to_none=True)``, forward
(under ``torch.autocast`` for bf16), ``F.l1_loss``, ``backward``, ``Adam.step``, nothing read
back to the host. It is timed in NCHW and channels_last (fp32) and channels_last with bf16
autocast. BasicSR's path gets ``val.channels_last: true`` (MRSRModel converts the network, which
training shares) and ``train.bf16`` (autocast in ``optimize_parameters``); a probe on the network
records whether channels_last and autocast were in effect, so a row says when an option was not
honoured. Where bf16 is
emulated, bf16 rows run ``emulated_batch`` patches and the time is scaled to the full batch.
The cases of one network are timed round-robin (:func:`.timing.time_interleaved`). With
``compile_modes`` (the bench sets them on CUDA), BasicSR's step is also timed with
``train: compile: <mode>`` (``torch.compile`` of the forward and backward; ``reduce-overhead`` adds
CUDA graphs), so the mode can be chosen by measurement.
"""
from __future__ import annotations

import copy
import functools
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .. import device_caps
from ..archs.presets import preset
from .basicsr_models import ForwardProbe, build_sr_model, model_options
from .results import Row, error_row
from .timing import Timing, time_interleaved

__all__ = ["BASICSR", "PLAIN_NCHW", "PLAIN_CL", "TrainSettings", "compiled_path", "step_flops",
           "training_rows"]

BASICSR = "BasicSR optimize_parameters (MRSRModel)"
PLAIN_NCHW = "plain loop NCHW"
PLAIN_CL = "plain loop channels_last"
_CL = torch.channels_last
_CASES = ((BASICSR, False), (PLAIN_NCHW, False), (PLAIN_CL, False), (BASICSR, True), (PLAIN_CL, True))


@dataclass(frozen=True)
class TrainSettings:
    """Batch, patch size and repetitions of the training rows."""

    batch: int = 16
    patch: int = 32
    scale: int = 2
    warmup: int = 1
    reps: int = 2
    emulated_batch: int = 2
    device: str = "cpu"
    compile_modes: tuple[str, ...] = ()


@functools.lru_cache(maxsize=None)
def step_flops(name: str, scale: int, batch: int, patch: int) -> int:
    """FLOPs of one training step's forward and backward (``torch.utils.flop_counter`` on the
    meta device: nothing is computed); the optimizer's elementwise work is not counted."""
    from basicsr.utils.registry import ARCH_REGISTRY
    from torch.utils.flop_counter import FlopCounterMode

    opt = preset(name, scale)
    with torch.device("meta"):
        net = ARCH_REGISTRY.get(opt.pop("type"))(**opt)
        lq = torch.empty(batch, 1, patch, patch)
        gt = torch.empty(batch, 1, patch * scale, patch * scale)
    with FlopCounterMode(display=False) as counter:
        F.l1_loss(net(lq), gt).backward()
    return counter.get_total_flops()


def _batch(n: int, s: TrainSettings) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(2)
    lq = torch.rand(n, 1, s.patch, s.patch, generator=gen)
    gt = torch.rand(n, 1, s.patch * s.scale, s.patch * s.scale, generator=gen)
    return lq.to(s.device), gt.to(s.device)


def _basicsr_step(model, lq: torch.Tensor, gt: torch.Tensor) -> Callable[[], None]:
    it = iter(range(1, 1 << 30))

    def step() -> None:
        model.feed_data({"lq": lq, "gt": gt})
        model.optimize_parameters(next(it))
    return step


def _plain_step(net: nn.Module, lq: torch.Tensor, gt: torch.Tensor, bf16: bool, device: str
                ) -> Callable[[], None]:
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-4, betas=(0.9, 0.999))
    dev_type = torch.device(device).type

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(dev_type, dtype=torch.bfloat16, enabled=bf16):
            loss = F.l1_loss(net(lq), gt)
        loss.backward()
        optimizer.step()
    return step


def compiled_path(mode: str) -> str:
    """The path label of BasicSR's step with ``train: compile: <mode>``."""
    return f"{BASICSR}, compile {mode}"


def training_rows(name: str, settings: TrainSettings) -> list[Row]:
    """Rows for network preset ``name``: BasicSR's step and the plain loop, fp32 and bf16 (and
    BasicSR's step per ``compile_modes``), timed round-robin. ``extra`` holds ``flops_per_call``
    (forward + backward of the timed batch) and ``best_call_seconds`` (the bench derives MFU
    from them)."""
    s = settings
    cases = _CASES + tuple((compiled_path(m), bf16) for m in s.compile_modes for bf16 in (False, True))
    small = not device_caps.native_bf16(s.device)
    prepared: dict[tuple[str, bool], tuple[Callable[[], None], ForwardProbe | None, int]] = {}
    done: dict[tuple[str, bool], Row] = {}
    for case in cases:
        try:
            prepared[case] = _prepare(name, *case, small and case[1], s)
        except Exception as err:  # one error row; the other cases go on
            done[case] = error_row("training", _label(name, s, *case), err, **_fields(name, s, *case))
    timings, failed = time_interleaved({c: p[0] for c, p in prepared.items()},
                                       warmup=s.warmup, reps=s.reps, device=s.device)
    for case, err in failed.items():
        done[case] = error_row("training", _label(name, s, *case), err, **_fields(name, s, *case))
    for case, timing in timings.items():
        _, probe, n = prepared[case]
        done[case] = _timed_row(name, s, case, probe, n, timing)
    return [done[c] for c in cases]


def _label(name: str, s: TrainSettings, path: str, bf16: bool) -> str:
    return f"{name} x{s.scale} {path} {'bf16 autocast' if bf16 else 'fp32'}"


def _fields(name: str, s: TrainSettings, path: str, bf16: bool) -> dict:
    return dict(model=name, path=path, precision="bf16" if bf16 else "fp32",
                input=f"step of {s.batch}x1x{s.patch}x{s.patch}")


def _prepare(name: str, path: str, bf16: bool, small: bool, s: TrainSettings
             ) -> tuple[Callable[[], None], ForwardProbe | None, int]:
    """The step function, the probe on BasicSR's network (None for the plain loop) and the
    number of patches it trains on."""
    n = s.emulated_batch if small else s.batch
    lq, gt = _batch(n, s)
    torch.manual_seed(0)
    mode = path[len(compiled_path("")):] if path.startswith(compiled_path("")) else False
    model = build_sr_model(model_options("MRSRModel", preset(name, s.scale), s.scale, s.device,
                                         is_train=True, train={"bf16": bf16, "compile": mode},
                                         val={"channels_last": True}))
    if path.startswith(BASICSR):
        probe = ForwardProbe().attach(model.get_bare_model(model.net_g))
        return _basicsr_step(model, lq, gt), probe, n
    net = copy.deepcopy(model.get_bare_model(model.net_g)).train()
    net = net.to(memory_format=_CL if path == PLAIN_CL else torch.contiguous_format)
    if path == PLAIN_CL:
        lq = lq.contiguous(memory_format=_CL)
    return _plain_step(net, lq, gt, bf16, s.device), None, n


def _timed_row(name: str, s: TrainSettings, case: tuple[str, bool], probe: ForwardProbe | None,
               n: int, timing: Timing) -> Row:
    path, bf16 = case
    seconds = timing.best * s.batch / n
    note, unavailable = [], None
    if n != s.batch:
        note.append(f"bf16 emulated: timed with batch {n}, scaled to {s.batch}")
    if probe is not None:
        note.insert(0, f"ran {'channels_last' if probe.channels_last else 'NCHW'}, "
                       f"autocast {'on' if probe.autocast else 'off'}")
        if bf16 and not probe.autocast:
            unavailable = "MRSRModel ignored train.bf16 (ran fp32); option missing"
    return Row("training", _label(name, s, path, bf16), seconds=seconds,
               throughput=s.batch / seconds, unit="patches/s", note="; ".join(note),
               unavailable=unavailable,
               extra={"flops_per_call": step_flops(name, s.scale, n, s.patch),
                      "best_call_seconds": timing.best, "seconds_per_call": list(timing.seconds),
                      "timed_batch": n}, **_fields(name, s, path, bf16))
