"""The network configurations used everywhere (options generator, ``w2amsn stats``, benchmarks):
the single source of truth for "as configured in our options".

Each value is a BasicSR ``network_g`` dict (``type`` + kwargs) without ``upscale``; add
``upscale`` per scale. Sizes match Table II of the paper (T2 x2, 1 channel) where the paper's
network is known: RCAN 15.44M exactly, EDSR 3.14M exactly (64 features, 40 blocks is the
EDSR configuration with that size), W²AMSN/W²AMSN-S see the README "Model size" section.
"""
from __future__ import annotations

import copy
from typing import Any

__all__ = ["PRESETS", "preset"]

PRESETS: dict[str, dict[str, Any]] = {
    "W2AMSN": {
        "type": "W2AMSN", "num_in_ch": 1, "num_out_ch": 1, "num_feat": 32, "num_block": 20,
        "widen": 4, "mid_feat": 32, "kernel_sizes": [3, 5], "weighted_fusion": True,
        "block_attention": "ncab", "global_attention": "ncab",
    },
    "W2AMSN-S": {
        "type": "W2AMSN", "num_in_ch": 1, "num_out_ch": 1, "num_feat": 32, "num_block": 8,
        "widen": 4, "mid_feat": 32, "kernel_sizes": [3, 5], "weighted_fusion": True,
        "block_attention": "ncab", "global_attention": "ncab",
    },
    "EDSR": {
        "type": "EDSRGray", "num_in_ch": 1, "num_out_ch": 1, "num_feat": 64, "num_block": 40,
        "res_scale": 1, "img_range": 255.0, "mean": [0.5],
    },
    "RCAN": {
        "type": "RCANGray", "num_in_ch": 1, "num_out_ch": 1, "num_feat": 64, "num_group": 10,
        "num_block": 20, "squeeze_factor": 16, "res_scale": 1, "img_range": 255.0, "mean": [0.5],
    },
}


def preset(name: str, upscale: int) -> dict[str, Any]:
    """A deep copy of ``PRESETS[name]`` with ``upscale`` set, ready for ``build_network``."""
    if name not in PRESETS:
        raise KeyError(f"unknown network preset {name!r}; known: {', '.join(PRESETS)}")
    opt = copy.deepcopy(PRESETS[name])
    opt["upscale"] = upscale
    return opt
