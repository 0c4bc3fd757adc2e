"""RDN for 1-channel MR: Zhang, Tian, Kong, Zhong, Fu, "Residual Dense Network for Image
Super-Resolution", CVPR 2018.

Section 3 and 5.1 of the paper: shallow features F_{-1} = conv3x3(I_LR), F_0 = conv3x3(F_{-1});
D residual dense blocks (RDB, section 3.2), each of C densely connected conv3x3+ReLU layers of
growth rate G (layer c sees the block input and the c-1 earlier outputs), local feature fusion
(a 1x1 conv back to G0) and local residual learning; global feature fusion (1x1 then 3x3 conv
over the D block outputs) and global residual learning (+ F_{-1}); an ESPCN sub-pixel upscaler
(conv3x3 G0 -> G0 r^2 and pixel shuffle; x4 as two x2 steps) and a conv3x3 to the image.
The paper's configuration D = 16, C = 8, G = G0 = 64 is the preset (22.12M parameters at x2 for
one channel, Table II's figure).
"""
from __future__ import annotations

from typing import Any

import torch
from basicsr.utils.registry import ARCH_REGISTRY
from torch import Tensor, nn

__all__ = ["SMALL", "EXPERIMENT_TAGS", "PRESETS", "RDB", "RDN", "SubPixelUpsampler", "TABLE_II"]


class RDB(nn.Module):
    """Residual dense block (RDN section 3.2): C dense layers, 1x1 local fusion, local residual."""

    def __init__(self, num_feat: int, growth: int, num_layer: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            nn.Sequential(nn.Conv2d(num_feat + i * growth, growth, 3, padding=1), nn.ReLU(inplace=True))
            for i in range(num_layer))
        self.fuse = nn.Conv2d(num_feat + num_layer * growth, num_feat, 1)

    def forward(self, x: Tensor) -> Tensor:
        features = [x]
        for layer in self.layers:
            features.append(layer(torch.cat(features, 1)))
        return x + self.fuse(torch.cat(features, 1))


class SubPixelUpsampler(nn.Sequential):
    """ESPCN's sub-pixel convolution (conv3x3 to r^2 times the channels, pixel shuffle): one step
    for x2/x3, two x2 steps for x4 (as RDN section 3.1 and its released models)."""

    def __init__(self, num_feat: int, upscale: int) -> None:
        if upscale == 4:
            steps = [2, 2]
        elif upscale in (2, 3):
            steps = [upscale]
        else:
            raise ValueError(f"scale {upscale} is not supported. Supported scales: 2, 3, 4")
        layers: list[nn.Module] = []
        for r in steps:
            layers += [nn.Conv2d(num_feat, num_feat * r * r, 3, padding=1), nn.PixelShuffle(r)]
        super().__init__(*layers)


@ARCH_REGISTRY.register()
class RDN(nn.Module):
    """RDN (module doc).

    Args:
        num_in_ch (int): Input channels. Default: 1.
        num_out_ch (int): Output channels. Default: 1.
        num_feat (int): G0, the feature width between blocks. Default: 64.
        num_block (int): D, residual dense blocks. Default: 16.
        num_layer (int): C, conv layers per block. Default: 8.
        growth (int): G, the growth rate. Default: 64.
        upscale (int): 2, 3 or 4. Default: 2.
    """

    def __init__(self, num_in_ch: int = 1, num_out_ch: int = 1, num_feat: int = 64, num_block: int = 16,
                 num_layer: int = 8, growth: int = 64, upscale: int = 2) -> None:
        super().__init__()
        self.sfe1 = nn.Conv2d(num_in_ch, num_feat, 3, padding=1)
        self.sfe2 = nn.Conv2d(num_feat, num_feat, 3, padding=1)
        self.blocks = nn.ModuleList(RDB(num_feat, growth, num_layer) for _ in range(num_block))
        self.gff = nn.Sequential(nn.Conv2d(num_block * num_feat, num_feat, 1),
                                 nn.Conv2d(num_feat, num_feat, 3, padding=1))
        self.upsample = SubPixelUpsampler(num_feat, upscale)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        f_1 = self.sfe1(x)
        feat = self.sfe2(f_1)
        outs = []
        for block in self.blocks:
            feat = block(feat)
            outs.append(feat)
        return self.conv_last(self.upsample(self.gff(torch.cat(outs, 1)) + f_1))


PRESETS: dict[str, dict[str, Any]] = {
    "RDN": {"type": "RDN", "num_in_ch": 1, "num_out_ch": 1, "num_feat": 64, "num_block": 16,
            "num_layer": 8, "growth": 64},
}
#: Table II ("model size comparison on T2 for SR x2"): parameters, mult-adds
TABLE_II: dict[str, tuple[float, float]] = {"RDN": (22.12e6, 318.43e9)}
EXPERIMENT_TAGS: dict[str, str] = {"RDN": "D{num_block}C{num_layer}G{growth}"}
#: the preset cut for CPU comparisons (``w2amsn baselines --small``; docs/baselines.md)
SMALL: dict[str, dict[str, Any]] = {"RDN": {"num_feat": 32, "num_block": 4, "num_layer": 4, "growth": 32}}
