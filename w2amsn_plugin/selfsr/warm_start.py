"""Warm start (``--init CKPT``): the W²AMSN configuration a checkpoint was trained with, read from
its weights, so any W²AMSN checkpoint (the demo's, a paper run's, an earlier self-sr run's) can
seed a self-sr run. BasicSR then loads every tensor whose shape fits (``strict_load_g: false``);
the tail (a two-axis ``upsample`` of another factor) starts fresh where it does not fit.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch

from .errors import SelfSRError

__all__ = ["checkpoint_network"]


def _state(path: Path) -> dict[str, torch.Tensor]:
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for a damaged or foreign file
        raise SelfSRError(f"{path}: not a readable PyTorch checkpoint ({type(err).__name__})") from err
    if isinstance(ckpt, dict):
        for key in ("params_ema", "params"):
            if isinstance(ckpt.get(key), dict):
                ckpt = ckpt[key]
                break
    if not isinstance(ckpt, dict) or not all(isinstance(v, torch.Tensor) for v in ckpt.values()):
        raise SelfSRError(f"{path}: holds no network weights (no 'params' state dict)")
    return {k.removeprefix("module."): v for k, v in ckpt.items()}


def _attention(state: dict[str, torch.Tensor], prefix: str) -> str:
    if f"{prefix}.upper.weight" in state:
        return "ncab"
    if any(k.startswith(f"{prefix}.attention.") for k in state):
        return "cab"
    return "none"


def checkpoint_network(path: str | Path) -> dict[str, Any]:
    """The ``network_g`` dict (without ``upscale``/``upscale_axis``) of the W²AMSN checkpoint at
    ``path``; one-line :class:`SelfSRError` when it is not a W²AMSN checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise SelfSRError(f"{path}: --init checkpoint not found")
    state = _state(path)
    if "sfe.0.weight" not in state or "body.0.widen.0.weight" not in state:
        raise SelfSRError(f"{path}: not a W2AMSN checkpoint (no sfe/body weights)")
    blocks = {int(m.group(1)) for k in state if (m := re.match(r"body\.(\d+)\.", k))}
    num_feat = int(state["sfe.0.weight"].shape[0])
    kernels = [int(state[f"body.0.widen.{j}.weight"].shape[-1])
               for j in range(len(state)) if f"body.0.widen.{j}.weight" in state]
    net: dict[str, Any] = {
        "type": "W2AMSN", "num_in_ch": int(state["sfe.0.weight"].shape[1]),
        "num_out_ch": int(state["conv_last.weight"].shape[0]), "num_feat": num_feat,
        "num_block": max(blocks) + 1,
        "widen": int(state["body.0.widen.0.weight"].shape[0]) // num_feat,
        "mid_feat": int(state["body.0.mix.0.weight"].shape[0]), "kernel_sizes": kernels,
        "weighted_fusion": "body.0.lambdas" in state,
        "block_attention": _attention(state, "body.0.attention.0"),
        "global_attention": _attention(state, "global_attention"),
    }
    if "upsample_in.weight" in state:
        net["upsample_feat"] = int(state["upsample_in.weight"].shape[0])
    if net["num_in_ch"] != 1 or net["num_out_ch"] != 1:
        raise SelfSRError(f"{path}: a {net['num_in_ch']}-channel network; self-sr needs a 1-channel one")
    return net
