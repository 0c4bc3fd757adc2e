"""CSN for 1-channel MR: Zhao, Zhang, Zhang, Zou, "Channel Splitting Network for Single MR Image
Super-Resolution", IEEE Transactions on Image Processing 28(11), 2019 (arXiv:1810.06453).

As the paper describes it: shallow features (conv3x3), a chain of channel splitting blocks (CSB)
and a global residual, then a sub-pixel upscaler. Each CSB splits its features along the channels
into two halves that travel two branches with different information transmission: a residual
branch (residual units, feature reuse) and a dense branch (each unit sees the concatenation of
every earlier dense state of the block, exploration of new features). The branches are joined by
merge-and-run mappings (Zhao et al., IJCAI 2018): before every unit the two branch inputs are
averaged and the average is added to the output of both units. The two halves are concatenated,
fused by a 1x1 conv, and the block adds its input (local residual).

The paper's exact block/unit counts were not available to us (docs/baselines.md): the preset uses
64 features, 16 CSBs of 4 merge-and-run units, conv3x3-ReLU-conv3x3 units on 32 channels.
"""
from __future__ import annotations

from typing import Any

import torch
from basicsr.utils.registry import ARCH_REGISTRY
from torch import Tensor, nn

from .rdn_arch import SubPixelUpsampler

__all__ = ["SMALL", "CSB", "CSN", "EXPERIMENT_TAGS", "PRESETS"]


def _unit(in_ch: int, out_ch: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, 3, padding=1), nn.ReLU(inplace=True),
                         nn.Conv2d(out_ch, out_ch, 3, padding=1))


class CSB(nn.Module):
    """Channel splitting block (module doc): residual and dense branch joined by merge-and-run."""

    def __init__(self, num_feat: int, num_unit: int) -> None:
        super().__init__()
        if num_feat % 2:
            raise ValueError(f"CSN: num_feat must be even to split the channels, got {num_feat}")
        half = num_feat // 2
        self.residual = nn.ModuleList(_unit(half, half) for _ in range(num_unit))
        self.dense = nn.ModuleList(_unit(half * (k + 1), half) for k in range(num_unit))
        self.fuse = nn.Conv2d(num_feat, num_feat, 1)

    def forward(self, x: Tensor) -> Tensor:
        r, d = x.chunk(2, dim=1)
        states = [d]
        for res_unit, dense_unit in zip(self.residual, self.dense):
            merged = (r + d) / 2  # merge-and-run: the average of both branch inputs...
            r = res_unit(r) + merged  # ...runs into both branches
            d = dense_unit(torch.cat(states, 1)) + merged
            states.append(d)
        return x + self.fuse(torch.cat([r, d], 1))


@ARCH_REGISTRY.register()
class CSN(nn.Module):
    """CSN (module doc).

    Args:
        num_in_ch (int): Input channels. Default: 1.
        num_out_ch (int): Output channels. Default: 1.
        num_feat (int): Features between blocks (split in two halves). Default: 64.
        num_block (int): Channel splitting blocks. Default: 16.
        num_unit (int): Merge-and-run units per block. Default: 4.
        upscale (int): 2, 3 or 4. Default: 2.
    """

    def __init__(self, num_in_ch: int = 1, num_out_ch: int = 1, num_feat: int = 64, num_block: int = 16,
                 num_unit: int = 4, upscale: int = 2) -> None:
        super().__init__()
        self.conv_first = nn.Conv2d(num_in_ch, num_feat, 3, padding=1)
        self.body = nn.Sequential(*(CSB(num_feat, num_unit) for _ in range(num_block)))
        self.conv_body = nn.Conv2d(num_feat, num_feat, 3, padding=1)
        self.upsample = SubPixelUpsampler(num_feat, upscale)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        feat = self.conv_first(x)
        return self.conv_last(self.upsample(feat + self.conv_body(self.body(feat))))


PRESETS: dict[str, dict[str, Any]] = {
    "CSN": {"type": "CSN", "num_in_ch": 1, "num_out_ch": 1, "num_feat": 64, "num_block": 16, "num_unit": 4},
}
EXPERIMENT_TAGS: dict[str, str] = {"CSN": "b{num_block}u{num_unit}f{num_feat}"}
#: the preset cut for CPU comparisons (``w2amsn baselines --small``; docs/baselines.md)
SMALL: dict[str, dict[str, Any]] = {"CSN": {"num_feat": 32, "num_block": 4, "num_unit": 2}}
