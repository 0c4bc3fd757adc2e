"""A wall-time budget split into training and inference (``w2amsn self-sr --minutes M``, and the
default budget), from a timing probe of the run's own network, batch and precision on the run's
own device, before training starts.

The probe times a few optimiser steps as the trainer takes them (channels_last, bf16 autocast
where the run uses it, the device the run trains on) and estimates inference from the same step
time (a forward pass costs about a third of a training step per low-resolution pixel). Training
gets what is left of the budget after the time already spent, a fixed reserve for start-up and
scoring, and the inference estimate; it runs for those seconds
(:class:`~w2amsn_plugin.time_budget.TimedCosineLR`), however fast the machine turns out to
be. The iterations expected in them (with :data:`TRAINER_OVERHEAD` for what BasicSR's loop adds
to a bare step: sampling patches, logging, validation, checkpoints) space validation and
checkpoints.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Any

import torch

from .. import device_caps

__all__ = ["MIN_ITERATIONS", "RESERVE_S", "TRAINER_OVERHEAD", "TimePlan", "plan_minutes", "step_seconds"]

#: the training time is never less than this many probed steps' worth, whatever the budget
MIN_ITERATIONS = 10
#: seconds kept for start-up (the training process, its training pairs) and scoring
RESERVE_S = 30.0
#: BasicSR's loop time per iteration over the probe's step: 0.99-1.01 measured on a 2-core CPU
#: with two runs side by side and a steady load, up to 1.15 when the load changed after the probe
TRAINER_OVERHEAD = 1.1


def _lq_shape(options: dict[str, Any]) -> tuple[int, int, int, int]:
    """The shape of one training batch's low-resolution input."""
    train = options["datasets"]["train"]
    k, size, batch = options["scale"], train["gt_size"], train["batch_size_per_gpu"]
    cols = size if options["network_g"].get("upscale_axis") == "rows" else size // k
    return batch, 1, size // k, cols


def step_seconds(options: dict[str, Any], device: str = "cpu", steps: int = 8) -> float:
    """Seconds of one training step of ``options``' network and batch on ``device`` (the median
    of ``steps - 1`` after a warm-up), as :class:`~w2amsn_plugin.models.mr_sr_model.MRSRModel`
    trains: channels_last, and bf16 autocast by the run's rule (``train: bf16``)."""
    from basicsr.archs import build_network

    dev = torch.device(device)
    net = build_network(dict(options["network_g"])).to(dev, memory_format=torch.channels_last)
    opt = torch.optim.Adam(net.parameters())
    lq = torch.rand(_lq_shape(options), device=dev).contiguous(memory_format=torch.channels_last)
    bf16 = device_caps.resolve_bf16_option(options["train"].get("bf16", False), dev)
    times = []
    for _ in range(steps):
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        t0 = time.perf_counter()
        with torch.autocast(dev.type, torch.bfloat16, enabled=bf16):
            loss = net(lq).float().abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        times.append(time.perf_counter() - t0)
    return float(statistics.median(times[1:]))


@dataclass(frozen=True)
class TimePlan:
    """The training part of a wall-time budget."""

    #: wall time of the training loop
    seconds: float
    #: iterations expected in it at the probed step time
    iterations: int
    #: the probe's seconds per bare training step
    step: float


def plan_minutes(minutes: float, options: dict[str, Any], infer_pixels: int, device: str = "cpu",
                 spent: float = 0.0, step: float | None = None) -> TimePlan:
    """The training seconds (and iterations) that fit ``minutes`` of wall time, ``spent`` seconds
    of which are gone, with inference of ``infer_pixels`` low-resolution pixels still to come;
    ``step`` (seconds per bare step) is probed when not given. At least :data:`MIN_ITERATIONS`
    steps' worth, whatever the budget."""
    step = step_seconds(options, device) if step is None else step
    batch, _, rows, cols = _lq_shape(options)
    infer_s = step / 3 * infer_pixels / (batch * rows * cols)
    per_iteration = step * TRAINER_OVERHEAD
    seconds = max(minutes * 60 - spent - RESERVE_S - infer_s, MIN_ITERATIONS * per_iteration)
    return TimePlan(seconds, max(MIN_ITERATIONS, int(seconds / per_iteration)), step)
