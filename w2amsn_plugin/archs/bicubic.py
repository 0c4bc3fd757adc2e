"""The data's MATLAB-compatible bicubic for networks that work on the interpolated image (SRCNN,
VDSR, NLM): :func:`upsample` is :func:`w2amsn_plugin.data.degradations.bicubic_upsample` and
:func:`downscale` the antialiased ``imresize(x, 1/s)`` of
:func:`w2amsn_plugin.data.degradations.bicubic_matrix`, on tensors. The weight matrices are
always built on the CPU (then moved), so a forward pass also runs on the ``meta`` device (shape
checks, ``w2amsn stats``)."""
from __future__ import annotations

import torch
from torch import Tensor

from ..data.degradations import bicubic_matrix, bicubic_upsample

__all__ = ["downscale", "upsample"]


def upsample(x: Tensor, scale: int) -> Tensor:
    """MATLAB ``imresize(x, scale, 'bicubic')`` of the last two dims of ``x``."""
    with torch.device("cpu"):
        return bicubic_upsample(x, scale)


def downscale(x: Tensor, scale: int) -> Tensor:
    """MATLAB ``imresize(x, 1/scale, 'bicubic')`` (antialiased) of the last two dims of ``x``:
    the data's bicubic degradation."""
    with torch.device("cpu"):
        rows = torch.tensor(bicubic_matrix(x.shape[-2], scale), dtype=torch.float32)
        cols = torch.tensor(bicubic_matrix(x.shape[-1], scale), dtype=torch.float32)
    return rows.to(x.device, x.dtype) @ x @ cols.to(x.device, x.dtype).T
