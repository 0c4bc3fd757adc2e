"""The network configurations used everywhere (options generator, ``w2amsn stats``, benchmarks):
the single source of truth for "as configured in our options".

:data:`PRESETS` maps a model name to a BasicSR ``network_g`` dict (``type`` + kwargs) without
``upscale``; :func:`preset` adds it. Sizes at x2 on a 120x120 LR input against the paper's
Table II: RCAN 15.44M / 220.34G (both exact), EDSR 3.14M (exact; 64 features x 40 blocks is the
EDSR configuration of that size), W²AMSN and W²AMSN-S: see docs/model-size.md.

:data:`ABLATIONS` maps each ablation of the paper's section IV-D to the W²AMSN kwargs it changes
(on top of ``PRESETS['W2AMSN']``), with the table/figure and the data the paper ran it on;
:func:`ablation` gives the full ``network_g`` dict.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ABLATIONS", "PRESETS", "Ablation", "ablation", "preset"]

_W2AMSN: dict[str, Any] = {
    "type": "W2AMSN", "num_in_ch": 1, "num_out_ch": 1, "num_feat": 32, "num_block": 20,
    "widen": 4, "kernel_sizes": [3, 5], "weighted_fusion": True,
    "block_attention": "ncab", "global_attention": "ncab",
}

PRESETS: dict[str, dict[str, Any]] = {
    "W2AMSN": _W2AMSN,
    "W2AMSN-S": {**_W2AMSN, "num_block": 8},
    "EDSR": {
        "type": "EDSRGray", "num_in_ch": 1, "num_out_ch": 1, "num_feat": 64, "num_block": 40,
        "res_scale": 1, "img_range": 255.0, "mean": [0.5],
    },
    "RCAN": {
        "type": "RCANGray", "num_in_ch": 1, "num_out_ch": 1, "num_feat": 64, "num_group": 10,
        "num_block": 20, "squeeze_factor": 16, "res_scale": 1, "img_range": 255.0, "mean": [0.5],
    },
}


@dataclass(frozen=True)
class Ablation:
    """One ablation variant of W²AMSN: the paper's table/figure, the modality and scale the
    paper trained it on, and the kwargs that differ from ``PRESETS['W2AMSN']``."""

    source: str
    modality: str
    scale: int
    overrides: dict[str, Any] = field(default_factory=dict)


ABLATIONS: dict[str, Ablation] = {
    # Table I: multi-scale (MS) and channel widening (CW); the full model is MS+CW.
    "tab1-baseline": Ablation("Table I", "PD", 2, {"kernel_sizes": [3], "widen": 1}),
    "tab1-cw": Ablation("Table I", "PD", 2, {"kernel_sizes": [3]}),
    "tab1-ms": Ablation("Table I", "PD", 2, {"widen": 1}),
    # Table IV: input-middle-output channels a - widen*a - a; 32-128-32 is the full model.
    "tab4-32-32-32": Ablation("Table IV", "PD", 2, {"widen": 1}),
    "tab4-64-64-64": Ablation("Table IV", "PD", 2, {"num_feat": 64, "widen": 1}),
    "tab4-32-64-32": Ablation("Table IV", "PD", 2, {"widen": 2}),
    "tab4-64-128-64": Ablation("Table IV", "PD", 2, {"num_feat": 64, "widen": 2}),
    "tab4-64-256-64": Ablation("Table IV", "PD", 2, {"num_feat": 64, "widen": 4}),
    # Fig. 6 / Fig. 5(b): kernel pairs without weighted fusion; K3K5-W is the full model.
    "fig6-k3k3": Ablation("Fig. 6(a)", "T1", 2, {"kernel_sizes": [3, 3], "weighted_fusion": False}),
    "fig6-k5k5": Ablation("Fig. 6(b)", "T1", 2, {"kernel_sizes": [5, 5], "weighted_fusion": False}),
    "fig6-k3k5": Ablation("Fig. 6(c)", "T1", 2, {"weighted_fusion": False}),
    # Table V: the attention layer at both positions; NCAB is the full model, the baseline
    # (no attention, 31.34 dB in both tables) is tab6-a.
    "tab5-cab": Ablation("Table V", "T2", 4, {"block_attention": "cab", "global_attention": "cab"}),
    # Table VI: block / network attention; D (both) is the full model.
    "tab6-a": Ablation("Table VI", "T2", 4, {"block_attention": "none", "global_attention": "none"}),
    "tab6-b": Ablation("Table VI", "T2", 4, {"global_attention": "none"}),
    "tab6-c": Ablation("Table VI", "T2", 4, {"block_attention": "none"}),
    # Fig. 5(c): depth t on T2 x2; t = 20 is the full model, t = 8 is W²AMSN-S.
    "depth-t5": Ablation("Fig. 5(c)", "T2", 2, {"num_block": 5}),
    "depth-t10": Ablation("Fig. 5(c)", "T2", 2, {"num_block": 10}),
    "depth-t15": Ablation("Fig. 5(c)", "T2", 2, {"num_block": 15}),
}


def preset(name: str, upscale: int) -> dict[str, Any]:
    """A deep copy of ``PRESETS[name]`` with ``upscale`` set, ready for ``build_network``."""
    if name not in PRESETS:
        raise KeyError(f"unknown network preset {name!r}; known: {', '.join(PRESETS)}")
    return {**copy.deepcopy(PRESETS[name]), "upscale": upscale}


def ablation(name: str, upscale: int | None = None) -> dict[str, Any]:
    """The ``network_g`` dict of ``ABLATIONS[name]`` (upscale: the paper's, unless given)."""
    if name not in ABLATIONS:
        raise KeyError(f"unknown ablation {name!r}; known: {', '.join(ABLATIONS)}")
    variant = ABLATIONS[name]
    return {**preset("W2AMSN", variant.scale if upscale is None else upscale),
            **copy.deepcopy(variant.overrides)}
