"""CSFM for 1-channel MR: Hu, Li, Huang, Gao, "Channel-wise and Spatial Feature Modulation
Network for Single Image Super-Resolution", IEEE TCSVT 30(11), 2019 (arXiv:1809.11130).

As the paper describes it: an initial conv3x3, a chain of feature-modulation memory (FMM)
modules, a conv3x3 with a global residual, and a sub-pixel upscaler. An FMM is a chain of
channel-wise and spatial attention residual (CSAR) blocks with a residual over the chain, then a
gated fusion (GF) node: a 1x1 conv over the concatenation of the chain's output (short-term
memory) and the outputs of every earlier FMM and of the initial conv (long-term memory, dense
connections), back to C channels. A CSAR block is conv3x3-ReLU-conv3x3 giving U; channel
attention (global average pooling, 1x1 conv to C/r, ReLU, 1x1 conv to C, sigmoid) and spatial
attention (1x1 conv to gamma*C, ReLU, 1x1 conv to the mask, sigmoid) each modulate U; the two
modulated maps are concatenated, fused by a 1x1 conv and added to the block input.

Choices (docs/baselines.md): r = 16, gamma = 2, a one-channel spatial mask, and M = 16 FMMs of
B = 16 CSARs with C = 64: the configuration whose size comes nearest Table II's 24.87M (the CSFM
paper's own table was not available to us to confirm it).
"""
from __future__ import annotations

from typing import Any

import torch
from basicsr.utils.registry import ARCH_REGISTRY
from torch import Tensor, nn

from .rdn_arch import SubPixelUpsampler

__all__ = ["SMALL", "TABLE_II_NOTES", "CSAR", "CSFM", "EXPERIMENT_TAGS", "FMM", "PRESETS", "TABLE_II"]


class CSAR(nn.Module):
    """Channel-wise and spatial attention residual block (module doc)."""

    def __init__(self, num_feat: int, reduction: int, sa_expand: int, sa_out: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(num_feat, num_feat, 3, padding=1), nn.ReLU(inplace=True),
                                  nn.Conv2d(num_feat, num_feat, 3, padding=1))
        self.channel = nn.Sequential(nn.AdaptiveAvgPool2d(1),
                                     nn.Conv2d(num_feat, num_feat // reduction, 1), nn.ReLU(inplace=True),
                                     nn.Conv2d(num_feat // reduction, num_feat, 1), nn.Sigmoid())
        self.spatial = nn.Sequential(nn.Conv2d(num_feat, num_feat * sa_expand, 1), nn.ReLU(inplace=True),
                                     nn.Conv2d(num_feat * sa_expand, sa_out, 1), nn.Sigmoid())
        self.fuse = nn.Conv2d(2 * num_feat, num_feat, 1)

    def forward(self, x: Tensor) -> Tensor:
        u = self.body(x)
        return x + self.fuse(torch.cat([u * self.channel(u), u * self.spatial(u)], 1))


class FMM(nn.Module):
    """Feature-modulation memory module: CSAR chain, then the gated fusion over ``num_memory``
    earlier states plus the chain's output (module doc)."""

    def __init__(self, num_feat: int, num_csar: int, num_memory: int, **csar: int) -> None:
        super().__init__()
        self.chain = nn.Sequential(*(CSAR(num_feat, **csar) for _ in range(num_csar)))
        self.gate = nn.Conv2d((num_memory + 1) * num_feat, num_feat, 1)

    def forward(self, x: Tensor, memory: list[Tensor]) -> Tensor:
        return self.gate(torch.cat([x + self.chain(x)] + memory, 1))


@ARCH_REGISTRY.register()
class CSFM(nn.Module):
    """CSFM (module doc).

    Args:
        num_in_ch (int): Input channels. Default: 1.
        num_out_ch (int): Output channels. Default: 1.
        num_feat (int): C, feature width. Default: 64.
        num_block (int): M, FMM modules. Default: 16.
        num_csar (int): B, CSAR blocks per FMM. Default: 16.
        reduction (int): r of the channel attention. Default: 16.
        sa_expand (int): gamma, the spatial attention's expansion. Default: 2.
        sa_out (int): channels of the spatial attention mask (1: one mask for all). Default: 1.
        upscale (int): 2, 3 or 4. Default: 2.
    """

    def __init__(self, num_in_ch: int = 1, num_out_ch: int = 1, num_feat: int = 64, num_block: int = 16,
                 num_csar: int = 16, reduction: int = 16, sa_expand: int = 2, sa_out: int = 1,
                 upscale: int = 2) -> None:
        super().__init__()
        csar = {"reduction": reduction, "sa_expand": sa_expand, "sa_out": sa_out}
        self.conv_first = nn.Conv2d(num_in_ch, num_feat, 3, padding=1)
        self.fmms = nn.ModuleList(FMM(num_feat, num_csar, m + 1, **csar) for m in range(num_block))
        self.conv_body = nn.Conv2d(num_feat, num_feat, 3, padding=1)
        self.upsample = SubPixelUpsampler(num_feat, upscale)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        f0 = self.conv_first(x)
        memory = [f0]
        for fmm in self.fmms:
            memory.append(fmm(memory[-1], memory))
        return self.conv_last(self.upsample(f0 + self.conv_body(memory[-1])))


PRESETS: dict[str, dict[str, Any]] = {
    "CSFM": {"type": "CSFM", "num_in_ch": 1, "num_out_ch": 1, "num_feat": 64, "num_block": 16,
             "num_csar": 16, "reduction": 16, "sa_expand": 2, "sa_out": 1},
}
#: Table II ("model size comparison on T2 for SR x2"): parameters, mult-adds
TABLE_II: dict[str, tuple[float, float]] = {"CSFM": (24.87e6, 397.64e9)}
EXPERIMENT_TAGS: dict[str, str] = {"CSFM": "M{num_block}B{num_csar}f{num_feat}"}
#: a reading of each Table II figure ours differs from by more than 5% (``w2amsn stats``)
TABLE_II_NOTES: dict[str, str] = {"CSFM": (
    "Parameters within 3% with M = 16 FMMs of B = 16 CSARs (module doc). Table II's MACs are "
    "15,989 per parameter against 14,400 (the 120x120 LR pixels) for its RDN, RCAN and W2AMSN "
    "rows; every CSFM layer runs at LR resolution, so no configuration reaches that ratio, and no "
    "reading of the 397.64G was found.")}
#: the preset cut for CPU comparisons (``w2amsn baselines --small``; docs/baselines.md)
SMALL: dict[str, dict[str, Any]] = {"CSFM": {"num_feat": 32, "num_block": 2, "num_csar": 4, "reduction": 8}}
