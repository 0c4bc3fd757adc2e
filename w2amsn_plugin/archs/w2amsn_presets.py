"""W²AMSN's presets (the paper's network, section IV-B, and W²AMSN-S, Table II), the ablations of
the paper's section IV-D and their Table II sizes. Read by :mod:`w2amsn_plugin.archs.presets`
like every arch's ``PRESETS``.

:data:`ABLATIONS` maps each ablation to the W²AMSN kwargs it changes (on top of
``PRESETS['W2AMSN']``), with the table/figure and the data the paper ran it on;
:func:`ablation` gives the full ``network_g`` dict.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ABLATIONS", "EXPERIMENT_TAGS", "PRESETS", "SMALL", "TABLE_II", "TABLE_II_NOTES", "Ablation",
           "ablation"]

_W2AMSN: dict[str, Any] = {
    "type": "W2AMSN", "num_in_ch": 1, "num_out_ch": 1, "num_feat": 32, "num_block": 20,
    "widen": 4, "kernel_sizes": [3, 5], "weighted_fusion": True,
    "block_attention": "ncab", "global_attention": "ncab",
}

PRESETS: dict[str, dict[str, Any]] = {
    "W2AMSN": _W2AMSN,
    "W2AMSN-S": {**_W2AMSN, "num_block": 8},
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


#: Table II ("model size comparison on T2 for SR x2"): parameters, mult-adds
TABLE_II: dict[str, tuple[float, float]] = {"W2AMSN": (11.67e6, 167.91e9), "W2AMSN-S": (5.93e6, 85.33e9)}
#: the presets cut for CPU comparisons (``w2amsn baselines --small``): the README demo's network
SMALL: dict[str, dict[str, Any]] = {"W2AMSN": {"num_feat": 32, "num_block": 2, "widen": 2},
                                    "W2AMSN-S": {"num_feat": 32, "num_block": 1, "widen": 2}}
_UPSAMPLER = ("Both rows fall short by a nearly constant 2.2-2.3M parameters at LR resolution: an "
              "EDSR-style x2 upsampler on 8a = 256 features (upsample_feat: 256) brings both within "
              "1.1% (docs/model-size.md).")
#: a reading of each Table II figure ours differs from by more than 5% (``w2amsn stats``)
TABLE_II_NOTES: dict[str, str] = {"W2AMSN": _UPSAMPLER, "W2AMSN-S": _UPSAMPLER}
#: the size part of experiment names (``..._a32t20_IXI_...``)
EXPERIMENT_TAGS: dict[str, str] = {"W2AMSN": "a{num_feat}t{num_block}"}


def ablation(name: str, upscale: int | None = None) -> dict[str, Any]:
    """The ``network_g`` dict of ``ABLATIONS[name]`` (upscale: the paper's, unless given)."""
    if name not in ABLATIONS:
        raise KeyError(f"unknown ablation {name!r}; known: {', '.join(ABLATIONS)}")
    variant = ABLATIONS[name]
    return {**copy.deepcopy(_W2AMSN), "upscale": variant.scale if upscale is None else upscale,
            **copy.deepcopy(variant.overrides)}
