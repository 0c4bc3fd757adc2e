"""Training-step rows of ``w2amsn bench``: one step of a batch of LR patches (paper: 32x32 LR,
L1 loss, Adam) through BasicSR's ``optimize_parameters`` on our ``MRSRModel``, against a plain
PyTorch loop on the same network and weights (issue 11, deliverable 1).

The plain loop is what a careful user writes by hand: ``zero_grad(set_to_none=True)``, forward
(under ``torch.autocast`` for bf16), ``F.l1_loss``, ``backward``, ``Adam.step``, nothing read
back to the host. It is timed in NCHW and channels_last (fp32) and channels_last with bf16
autocast. BasicSR's path gets ``val.channels_last: true`` (MRSRModel converts the network, which
training shares) and ``train.bf16`` (autocast in ``optimize_parameters``); a probe on the network
records whether channels_last and autocast were in effect, so a row says when an option was not
honoured. Where bf16 is
emulated, bf16 rows run ``emulated_batch`` patches and the time is scaled to the full batch.
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
from .machine_limits import ConvLimit
from .results import Row, guarded
from .timing import time_calls

__all__ = ["BASICSR", "PLAIN_NCHW", "PLAIN_CL", "TrainSettings", "step_flops", "training_rows"]

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


def training_rows(name: str, settings: TrainSettings, limits: dict[str, ConvLimit]) -> list[Row]:
    """Rows for network preset ``name``: BasicSR's step and the plain loop, fp32 and bf16; MFU
    is the step's forward + backward FLOPs over the conv limit of the same precision."""
    s = settings
    emulated = not device_caps.native_bf16(s.device)
    rows: list[Row] = []
    for path, bf16 in _CASES:
        precision = "bf16 autocast" if bf16 else "fp32"
        label = f"{name} x{s.scale} {path} {precision}"
        fields = dict(model=name, path=path, precision="bf16" if bf16 else "fp32",
                      input=f"step of {s.batch}x1x{s.patch}x{s.patch}")
        rows += guarded("training", label, functools.partial(
            _measure, name, path, bf16, bf16 and emulated, s, limits, label, fields), **fields)
    return rows


def _measure(name: str, path: str, bf16: bool, small: bool, s: TrainSettings,
             limits: dict[str, ConvLimit], label: str, fields: dict) -> Row:
    n = s.emulated_batch if small else s.batch
    lq, gt = _batch(n, s)
    torch.manual_seed(0)
    model = build_sr_model(model_options("MRSRModel", preset(name, s.scale), s.scale, s.device,
                                         is_train=True, train={"bf16": bf16},
                                         val={"channels_last": True}))
    probe = None
    if path == BASICSR:
        probe = ForwardProbe().attach(model.get_bare_model(model.net_g))
        step = _basicsr_step(model, lq, gt)
    else:
        net = copy.deepcopy(model.get_bare_model(model.net_g)).train()
        del model
        if path == PLAIN_CL:
            net, lq = net.to(memory_format=_CL), lq.contiguous(memory_format=_CL)
        step = _plain_step(net, lq, gt, bf16, s.device)
    timing = time_calls(step, warmup=s.warmup, reps=s.reps, device=s.device)
    seconds = timing.best * s.batch / n
    limit = limits.get("bf16" if bf16 else "fp32")
    flops = step_flops(name, s.scale, n, s.patch)
    mfu = flops / timing.best / (limit.gflops * 1e9) if limit is not None else None
    note, unavailable = [], None
    if small:
        note.append(f"bf16 emulated: timed with batch {n}, scaled to {s.batch}")
    if probe is not None:
        note.insert(0, f"ran {'channels_last' if probe.channels_last else 'NCHW'}, "
                       f"autocast {'on' if probe.autocast else 'off'}")
        if bf16 and not probe.autocast:
            unavailable = "MRSRModel ignored train.bf16 (ran fp32); option missing"
    return Row("training", label, seconds=seconds, throughput=s.batch / seconds,
               unit="patches/s", mfu=mfu, note="; ".join(note), unavailable=unavailable,
               extra={"seconds_per_step_timed": list(timing.seconds), "timed_batch": n},
               **fields)
