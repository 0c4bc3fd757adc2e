"""VDSR for 1-channel MR: Kim, Lee, Lee, "Accurate Image Super-Resolution Using Very Deep
Convolutional Networks", CVPR 2016.

d = 20 convolution layers of 64 3x3 filters (section 3.1): the first takes the image, the last
gives the residual, ReLU after every layer but the last, zero padding so every feature map keeps
the input size; the output is the bicubic-upsampled input plus that residual (global residual
learning, section 3.2). The upsampling is the MATLAB-compatible bicubic of the data
(:func:`w2amsn_plugin.archs.bicubic.upsample`), as the paper's MATLAB ``imresize``.
Training choices the paper ties to its SGD recipe (lr 0.1 with adjustable gradient clipping) are
replaced by the W²AMSN paper's Adam/L1 schedule (docs/baselines.md).
"""
from __future__ import annotations

from typing import Any

from basicsr.utils.registry import ARCH_REGISTRY
from torch import Tensor, nn

from .bicubic import upsample

__all__ = ["SMALL", "TABLE_II_NOTES", "EXPERIMENT_TAGS", "PRESETS", "TABLE_II", "VDSR"]


@ARCH_REGISTRY.register()
class VDSR(nn.Module):
    """VDSR (module doc).

    Args:
        num_in_ch (int): Input channels. Default: 1.
        num_out_ch (int): Output channels (equal to num_in_ch: residual on the input). Default: 1.
        num_feat (int): Filters per layer. Default: 64.
        num_layer (int): Convolution layers d. Default: 20.
        upscale (int): Upsampling factor (any integer). Default: 2.
    """

    def __init__(self, num_in_ch: int = 1, num_out_ch: int = 1, num_feat: int = 64, num_layer: int = 20,
                 upscale: int = 2) -> None:
        super().__init__()
        if num_out_ch != num_in_ch:
            raise ValueError(f"VDSR: num_out_ch ({num_out_ch}) must equal num_in_ch ({num_in_ch}): "
                             "the network adds a residual to its upsampled input")
        if num_layer < 2:
            raise ValueError(f"VDSR: num_layer must be at least 2, got {num_layer}")
        layers: list[nn.Module] = [nn.Conv2d(num_in_ch, num_feat, 3, padding=1), nn.ReLU(inplace=True)]
        for _ in range(num_layer - 2):
            layers += [nn.Conv2d(num_feat, num_feat, 3, padding=1), nn.ReLU(inplace=True)]
        layers.append(nn.Conv2d(num_feat, num_out_ch, 3, padding=1))
        self.upscale = upscale
        self.body = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        up = upsample(x, self.upscale)
        return up + self.body(up)


PRESETS: dict[str, dict[str, Any]] = {
    "VDSR": {"type": "VDSR", "num_in_ch": 1, "num_out_ch": 1, "num_feat": 64, "num_layer": 20},
}
#: Table II ("model size comparison on T2 for SR x2"): parameters, mult-adds
TABLE_II: dict[str, tuple[float, float]] = {"VDSR": (1.40e6, 20.19e9)}
EXPERIMENT_TAGS: dict[str, str] = {"VDSR": "d{num_layer}f{num_feat}"}
#: a reading of each Table II figure ours differs from by more than 5% (``w2amsn stats``)
TABLE_II_NOTES: dict[str, str] = {"VDSR": (
    "Table II's 20.19G is its 1.40M parameters x 14,400 (the 120x120 LR pixels, the ratio of its "
    "RDN, RCAN and W2AMSN rows), but VDSR runs on the 240x240 upsampled image: 20 layers of 64 "
    "cost 665,921 x 57,600 = 38.3G. For 1.40M parameters no reading was found: 20 layers of 64 "
    "filters have 0.67M, and no depth or width the VDSR paper states gives 1.40M.")}
#: the preset cut for CPU comparisons (``w2amsn baselines --small``; docs/baselines.md)
SMALL: dict[str, dict[str, Any]] = {"VDSR": {"num_layer": 10}}
