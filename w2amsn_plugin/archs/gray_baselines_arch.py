"""BasicSR's EDSR and RCAN made safe for 1-channel MR: ``EDSRGray`` and ``RCANGray``.

BasicSR 1.4.2 builds ``self.mean = torch.Tensor(rgb_mean).view(1, 3, 1, 1)``
(edsr_arch.py:42, rcan_arch.py:110), which fails for 1-channel data (a conv shape error, or a
view error with a 1-value mean). These subclasses only replace that attribute after
``super().__init__``; the layers, the forward pass and the state_dict keys are BasicSR's own, so
weights load into and out of ``EDSR``/``RCAN`` with the same ``num_in_ch``.

The default ``mean=(0.5,)`` centres [0, 1]-normalised MR on zero before BasicSR's ``img_range``
scaling. It is data independent on purpose: a dataset mean would differ per modality and per
normalisation, and the first and last conv biases absorb any fixed offset during training.

Presets (:data:`PRESETS`): the paper's Table II sizes at x2 on a 120x120 LR input, RCAN 15.44M /
220.34G (both exact) and EDSR 3.14M (exact; 64 features x 40 blocks is the EDSR configuration of
that size).
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
from basicsr.archs.edsr_arch import EDSR
from basicsr.archs.rcan_arch import RCAN
from basicsr.utils.registry import ARCH_REGISTRY

__all__ = ["EDSRGray", "EXPERIMENT_TAGS", "PRESETS", "RCANGray", "SMALL", "TABLE_II", "TABLE_II_NOTES"]

PRESETS: dict[str, dict[str, Any]] = {
    "EDSR": {
        "type": "EDSRGray", "num_in_ch": 1, "num_out_ch": 1, "num_feat": 64, "num_block": 40,
        "res_scale": 1, "img_range": 255.0, "mean": [0.5],
    },
    "RCAN": {
        "type": "RCANGray", "num_in_ch": 1, "num_out_ch": 1, "num_feat": 64, "num_group": 10,
        "num_block": 20, "squeeze_factor": 16, "res_scale": 1, "img_range": 255.0, "mean": [0.5],
    },
}
#: the presets cut for CPU comparisons (``w2amsn baselines --small``; docs/baselines.md)
SMALL: dict[str, dict[str, Any]] = {
    "EDSR": {"num_block": 4},
    "RCAN": {"num_feat": 48, "num_group": 2, "num_block": 4, "squeeze_factor": 8},
}
#: Table II ("model size comparison on T2 for SR x2"): parameters, mult-adds
TABLE_II: dict[str, tuple[float, float]] = {"EDSR": (3.14e6, 722.61e9), "RCAN": (15.44e6, 220.34e9)}
#: a reading of each Table II figure ours differs from by more than 5% (``w2amsn stats``)
TABLE_II_NOTES: dict[str, str] = {"EDSR": (
    "64 features x 40 blocks is the EDSR configuration with Table II's 3.14M parameters; Table II's "
    "722.61G is exactly 16x our count, which the same network gives on a 480x480 input (722.608G).")}
#: the size part of experiment names
EXPERIMENT_TAGS: dict[str, str] = {"RCANGray": "g{num_group}b{num_block}f{num_feat}",
                                   "EDSRGray": "b{num_block}f{num_feat}"}


def _mean_tensor(arch: str, mean: Sequence[float], num_in_ch: int, num_out_ch: int) -> torch.Tensor:
    """``mean`` as a (1, C, 1, 1) tensor; one value, or one per channel (in == out channels)."""
    mean = tuple(float(m) for m in mean)
    if len(mean) != 1 and not (len(mean) == num_in_ch == num_out_ch):
        raise ValueError(f"{arch}: mean needs 1 value or one per channel "
                         f"(num_in_ch={num_in_ch}, num_out_ch={num_out_ch}), got {list(mean)}")
    return torch.tensor(mean).view(1, -1, 1, 1)


@ARCH_REGISTRY.register()
class EDSRGray(EDSR):
    """BasicSR's EDSR (Lim et al., CVPRW 2017) with a mean of any channel count.

    Args:
        num_in_ch (int): Channel number of inputs. Default: 1.
        num_out_ch (int): Channel number of outputs. Default: 1.
        num_feat (int): Channel number of intermediate features. Default: 64.
        num_block (int): Residual blocks in the trunk. Default: 16.
        upscale (int): Upsampling factor, 2^n or 3. Default: 2.
        res_scale (float): Residual scaling in the blocks. Default: 1.
        img_range (float): Image range after mean subtraction. Default: 255.
        mean (Sequence[float]): Mean subtracted from the input (1 value, or 1 per channel).
            Default: (0.5,).
    """

    def __init__(self, num_in_ch: int = 1, num_out_ch: int = 1, num_feat: int = 64,
                 num_block: int = 16, upscale: int = 2, res_scale: float = 1,
                 img_range: float = 255., mean: Sequence[float] = (0.5,)) -> None:
        super().__init__(num_in_ch, num_out_ch, num_feat=num_feat, num_block=num_block,
                         upscale=upscale, res_scale=res_scale, img_range=img_range)
        self.mean = _mean_tensor("EDSRGray", mean, num_in_ch, num_out_ch)


@ARCH_REGISTRY.register()
class RCANGray(RCAN):
    """BasicSR's RCAN (Zhang et al., ECCV 2018) with a mean of any channel count.

    Args:
        num_in_ch (int): Channel number of inputs. Default: 1.
        num_out_ch (int): Channel number of outputs. Default: 1.
        num_feat (int): Channel number of intermediate features. Default: 64.
        num_group (int): Residual groups. Default: 10.
        num_block (int): RCABs per group. Default: 20 (RCAN paper; BasicSR's default is 16).
        squeeze_factor (int): Channel attention reduction. Default: 16.
        upscale (int): Upsampling factor, 2^n or 3. Default: 2.
        res_scale (float): Residual scaling in the blocks. Default: 1.
        img_range (float): Image range after mean subtraction. Default: 255.
        mean (Sequence[float]): Mean subtracted from the input (1 value, or 1 per channel).
            Default: (0.5,).
    """

    def __init__(self, num_in_ch: int = 1, num_out_ch: int = 1, num_feat: int = 64,
                 num_group: int = 10, num_block: int = 20, squeeze_factor: int = 16,
                 upscale: int = 2, res_scale: float = 1, img_range: float = 255.,
                 mean: Sequence[float] = (0.5,)) -> None:
        super().__init__(num_in_ch, num_out_ch, num_feat=num_feat, num_group=num_group,
                         num_block=num_block, squeeze_factor=squeeze_factor, upscale=upscale,
                         res_scale=res_scale, img_range=img_range)
        self.mean = _mean_tensor("RCANGray", mean, num_in_ch, num_out_ch)
