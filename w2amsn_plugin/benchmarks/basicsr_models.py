"""BasicSR models for the benchmarks, built the way BasicSR's pipelines build them (an options
dict through ``basicsr.models.build_model``), and a probe that records what the network really
ran with (memory format, autocast), so a row can say whether a fast-path option was honoured."""
from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from typing import Any, Iterator

import torch
from torch import nn

from ..experiments import paper_train_section

__all__ = ["model_options", "build_sr_model", "quiet_basicsr", "ForwardProbe", "is_channels_last"]


def model_options(model_type: str, net_opt: dict[str, Any], scale: int, device: str, *,
                  is_train: bool, train: dict[str, Any] | None = None,
                  val: dict[str, Any] | None = None) -> dict[str, Any]:
    """The parsed options BasicSR's ``parse_options`` would hand to ``build_model`` (one process,
    no DDP) with the paper's ``train:`` section (:func:`w2amsn_plugin.experiments.paper_train_section`),
    no EMA so BasicSR's step does the same work as a plain loop."""
    num_gpu = 1 if torch.device(device).type == "cuda" else 0
    opt: dict[str, Any] = {
        "name": "bench", "model_type": model_type, "scale": scale, "num_gpu": num_gpu,
        "is_train": is_train, "dist": False, "rank": 0, "world_size": 1, "manual_seed": 0,
        "network_g": dict(net_opt, upscale=scale),
        "path": {"pretrain_network_g": None, "strict_load_g": True, "resume_state": None},
        "val": dict(val or {}),
    }
    if is_train:
        opt["train"] = {**paper_train_section(), **(train or {})}
    return opt


@contextlib.contextmanager
def quiet_basicsr() -> Iterator[None]:
    """Silence BasicSR's root logger (it prints the whole network on model creation)."""
    from basicsr.utils import get_root_logger

    logger = get_root_logger()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def build_sr_model(opt: dict[str, Any], weights: nn.Module | None = None):
    """``build_model(opt)`` quietly; with ``weights``, its network gets their state dict."""
    from basicsr.models import build_model

    with quiet_basicsr():
        model = build_model(opt)
    if weights is not None:
        model.get_bare_model(model.net_g).load_state_dict(weights.state_dict())
    return model


def is_channels_last(net: nn.Module) -> bool:
    """True when the network's multi-channel convolution weights are channels_last (1-channel
    tensors look the same in both layouts, so they are not evidence)."""
    for p in net.parameters():
        if p.dim() == 4 and p.shape[1] > 1 and p.shape[2] * p.shape[3] > 1:
            return p.is_contiguous(memory_format=torch.channels_last) and not p.is_contiguous()
    return False


@dataclass
class ForwardProbe:
    """Forward pre-hook on a network: after a call, ``autocast`` tells whether bf16/fp16
    autocast was on and ``channels_last`` whether the weights were channels_last."""

    autocast: bool | None = None
    channels_last: bool | None = None

    def attach(self, net: nn.Module) -> "ForwardProbe":
        def hook(module: nn.Module, args: tuple) -> None:
            x = args[0]
            self.autocast = torch.is_autocast_enabled(x.device.type)
            self.channels_last = is_channels_last(module)

        net.register_forward_pre_hook(hook)
        return self
