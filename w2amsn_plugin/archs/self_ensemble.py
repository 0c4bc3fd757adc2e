"""x8 geometric self-ensemble (W²AMSN+ in the paper's Table III; Lim et al., EDSR, CVPRW 2017).

The input is transformed by the 8 elements of the dihedral group of the square (identity,
flips, transposes and their compositions), the network runs on each, every output is mapped
back by the inverse transform, and the 8 are averaged. Transform ``k`` (0..7) is, in this
order: flip W if bit 0 of k, flip H if bit 1, then transpose H<->W if bit 2; its inverse undoes
the steps in reverse order. Transposing a non-square input changes its shape, so the network
runs on two batches of 4 (one when H == W).
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

__all__ = ["NUM_TRANSFORMS", "transform", "inverse_transform", "self_ensemble"]

NUM_TRANSFORMS = 8


def transform(x: Tensor, k: int) -> Tensor:
    """Apply dihedral transform ``k`` (0..7) to the last two dims of ``x``."""
    if k & 1:
        x = x.flip(-1)
    if k & 2:
        x = x.flip(-2)
    if k & 4:
        x = x.transpose(-1, -2)
    return x


def inverse_transform(y: Tensor, k: int) -> Tensor:
    """Undo :func:`transform` ``k`` on the last two dims of ``y``."""
    if k & 4:
        y = y.transpose(-1, -2)
    if k & 2:
        y = y.flip(-2)
    if k & 1:
        y = y.flip(-1)
    return y


def self_ensemble(forward: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """Mean of ``inverse_transform(forward(transform(x, k)), k)`` over the 8 transforms.

    ``x`` is NCHW; ``forward`` maps an NCHW batch to an NCHW batch (any output size, e.g. SR).
    The 8 outputs are averaged in float32 and returned in ``forward``'s output dtype. Runs the
    network on 8N images at once (4N twice for non-square input): callers bound N for memory.
    """
    if x.dim() != 4:
        raise ValueError(f"self_ensemble expects an NCHW tensor, got shape {tuple(x.shape)}")
    n = x.shape[0]
    groups = [range(NUM_TRANSFORMS)] if x.shape[-1] == x.shape[-2] else [range(4), range(4, 8)]
    total = None
    for group in groups:
        out = forward(torch.cat([transform(x, k) for k in group]))
        for i, k in enumerate(group):
            part = inverse_transform(out[i * n:(i + 1) * n], k).float()
            total = part if total is None else total + part
    return (total / NUM_TRANSFORMS).to(out.dtype)
