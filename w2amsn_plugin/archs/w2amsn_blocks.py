"""Building blocks of W²AMSN (Wang et al., IEEE TCSVT 2021, section III, Fig. 1-2).

- :class:`NCAB`: non-reduction channel attention, eqs. 5-6.
- :class:`CAB`: RCAN's channel attention (BasicSR's ``ChannelAttention``), the Table V/VI ablation.
- :func:`make_attention`: ``'ncab' | 'cab' | 'none'`` -> module.
- :class:`W2AMSB`: wide weighted attention multi-scale block, eqs. 9-13.
- :class:`PixelShuffleUpsampler`: the pixel-shuffle part of the reconstruction F_R, eq. 8.
- :class:`RowShuffleUpsampler`: the same for one axis (rows only), the one-axis tail of
  self-supervised through-plane SR (``w2amsn self-sr``).
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from basicsr.archs.rcan_arch import ChannelAttention
from torch import nn

__all__ = ["ATTENTION_KINDS", "CAB", "NCAB", "PixelShuffleUpsampler", "RowPixelShuffle",
           "RowShuffleUpsampler", "W2AMSB", "make_attention", "prime_factors"]

ATTENTION_KINDS = ("ncab", "cab", "none")


class NCAB(nn.Module):
    """Non-reduction channel attention block (paper Fig. 2, eqs. 5-6).

    ``w_a = Softmax_c(G(C1u(x)))`` and ``F_A(x) = w_a ⊙ C1l(x) + x``, where G is global average
    pooling and C1u, C1l are 1x1 convolutions C -> C (no channel reduction).

    G and a 1x1 convolution commute (both are linear, the bias passes through the mean), so by
    default the upper convolution is applied to the pooled C-vector instead of the full map: the
    same function, without a C x C x H x W convolution. ``pool_first=False`` runs the literal
    order (used to count MACs the conventional way and in the tests).

    Args:
        channels (int): Channel number C of input and output.
        pool_first (bool): Pool before the upper 1x1 conv (exactly equivalent). Default: True.
    """

    def __init__(self, channels: int, pool_first: bool = True) -> None:
        super().__init__()
        self.upper = nn.Conv2d(channels, channels, 1)
        self.lower = nn.Conv2d(channels, channels, 1)
        self.pool_first = pool_first

    def attention_weights(self, x: torch.Tensor) -> torch.Tensor:
        """``w_a`` of eq. 5, shape (N, C, 1, 1), summing to 1 over channels."""
        if self.pool_first:
            pooled = self.upper(x.mean(dim=(2, 3), keepdim=True))
        else:
            pooled = self.upper(x).mean(dim=(2, 3), keepdim=True)
        return torch.softmax(pooled, dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w_a = self.attention_weights(x)
        lower = self.lower(x)
        return torch.addcmul(x, lower, w_a.to(lower.dtype))


class CAB(ChannelAttention):
    """RCAN's channel attention (BasicSR ``rcan_arch.ChannelAttention``): GAP -> 1x1 C->C/r ->
    ReLU -> 1x1 C/r->C -> sigmoid, multiplied with the input (no residual, as in RCAN's CA layer).
    The "+ CAB" column of Table V. ``squeeze_factor`` is capped at C so that tiny test networks
    keep at least one hidden channel.

    Args:
        channels (int): Channel number C.
        squeeze_factor (int): RCAN's reduction r. Default: 16.
    """

    def __init__(self, channels: int, squeeze_factor: int = 16) -> None:
        super().__init__(channels, squeeze_factor=min(squeeze_factor, channels))


def make_attention(kind: str, channels: int) -> nn.Module:
    """The attention layer for the block (eq. 11) or global (eq. 7) position: ``'ncab'``,
    ``'cab'`` or ``'none'`` (identity; Tables V and VI)."""
    if kind == "ncab":
        return NCAB(channels)
    if kind == "cab":
        return CAB(channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"attention must be one of {ATTENTION_KINDS}, got {kind!r}")


class W2AMSB(nn.Module):
    """Wide weighted attention multi-scale block (paper Fig. 1(b), eqs. 9-13).

    With branches k_1..k_n (paper: n=2, kernels 3 and 5)::

        B1_j = conv_{k_j}(x)                     a -> widen*a         (eq. 9, channel widening)
        B2_j = conv_{k_j}([σ(B1_j), σ(B1_others)])   n*widen*a -> mid (eq. 10)
        B3_j = attention(B2_j)                                         (eq. 11)
        S'   = conv1x1([λ_1 B3_1, ..., λ_n B3_n])  n*mid -> a          (eq. 12)
        out  = res_scale * S' + x                                      (eq. 13, LSC)

    Eq. 10 feeds the 3x3 branch ``[σ(S1), σ(W1)]`` and the 5x5 branch ``[σ(W1), σ(S1)]``. A
    convolution is linear in its input channels, so reading ``[σ(S1), σ(W1)]`` with the
    input-channel halves of the 5x5 weight swapped is the same function: we concatenate once and
    store every branch's weight in that shared order (to load weights laid out in eq. 10's order,
    swap the input-channel halves of ``mix.1.weight``). The λ are folded into the 1x1 fusion
    weight (the same function as scaling the features, cheaper). ``kernel_sizes`` of length 1 is
    the single-scale block of Table I (one branch, no interactive concatenation).

    Args:
        num_feat (int): a, channels in and out.
        mid_feat (int): Output channels of each branch's second conv (S2/W2).
        widen (int): Channel widening factor of the first convs (paper: 4; Table IV: 1, 2, 4).
        kernel_sizes (Sequence[int]): Kernel size per branch ((3, 5) = K3K5; (3, 3), (5, 5), (3,)).
        weighted_fusion (bool): Learnable λ per branch, initialised to 1 (False: fixed 1).
        attention (str): ``'ncab' | 'cab' | 'none'`` at eq. 11.
        res_scale (float): Scale of S' before the local skip (1 = eq. 13).
    """

    def __init__(self, num_feat: int, mid_feat: int, widen: int = 4,
                 kernel_sizes: Sequence[int] = (3, 5), weighted_fusion: bool = True,
                 attention: str = "ncab", res_scale: float = 1.0) -> None:
        super().__init__()
        kernel_sizes = tuple(int(k) for k in kernel_sizes)
        if not kernel_sizes or any(k < 1 or k % 2 == 0 for k in kernel_sizes):
            raise ValueError(f"kernel_sizes must be odd positive ints, got {list(kernel_sizes)}")
        wide = widen * num_feat
        n = len(kernel_sizes)
        self.widen = nn.ModuleList(nn.Conv2d(num_feat, wide, k, padding=k // 2) for k in kernel_sizes)
        self.mix = nn.ModuleList(nn.Conv2d(n * wide, mid_feat, k, padding=k // 2) for k in kernel_sizes)
        self.attention = nn.ModuleList(make_attention(attention, mid_feat) for _ in kernel_sizes)
        self.fusion = nn.Conv2d(n * mid_feat, num_feat, 1)
        self.register_parameter("lambdas", nn.Parameter(torch.ones(n)) if weighted_fusion else None)
        self.mid_feat = mid_feat
        self.res_scale = res_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        wide = [conv(x) for conv in self.widen]
        wide = torch.relu_(torch.cat(wide, dim=1) if len(wide) > 1 else wide[0])
        branches = [att(conv(wide)) for conv, att in zip(self.mix, self.attention)]
        fused = torch.cat(branches, dim=1) if len(branches) > 1 else branches[0]
        weight = self.fusion.weight
        if self.lambdas is not None:
            weight = weight * self.lambdas.repeat_interleave(self.mid_feat).view(1, -1, 1, 1)
        out = F.conv2d(fused, weight, self.fusion.bias)
        if self.res_scale != 1.0:
            return torch.add(x, out, alpha=self.res_scale)
        return out + x


def prime_factors(n: int) -> list[int]:
    """Prime factors of ``n`` in ascending order (``prime_factors(12) == [2, 2, 3]``)."""
    factors, p = [], 2
    while p * p <= n:
        while n % p == 0:
            factors.append(p)
            n //= p
        p += 1
    if n > 1:
        factors.append(n)
    return factors


class PixelShuffleUpsampler(nn.Sequential):
    """Sub-pixel upsampling (Shi et al. [51]) for any integer scale: one conv3x3 (C -> p²C) +
    PixelShuffle(p) stage per prime factor p of the scale (x2: one stage, x4: two x2 stages as in
    EDSR, x3: one, x6: x2 then x3; x1: none). Together with the final conv3x3 of
    :class:`~w2amsn_plugin.archs.w2amsn_arch.W2AMSN` this is F_R of eq. 8; for 2^n and 3 the layer
    layout equals BasicSR's ``arch_util.Upsample``.

    Args:
        scale (int): Upscaling factor >= 1.
        num_feat (int): Channels C.
    """

    def __init__(self, scale: int, num_feat: int) -> None:
        if int(scale) != scale or scale < 1:
            raise ValueError(f"upscale must be a positive integer, got {scale!r}")
        layers: list[nn.Module] = []
        for p in prime_factors(int(scale)):
            layers += [nn.Conv2d(num_feat, p * p * num_feat, 3, padding=1), nn.PixelShuffle(p)]
        super().__init__(*layers)


class RowPixelShuffle(nn.Module):
    """Sub-pixel shuffle along the rows only: (N, p·C, H, W) -> (N, C, p·H, W), channel
    ``c·p + i`` becoming row ``p·h + i`` of channel ``c`` (PixelShuffle's order, one axis).

    Args:
        scale (int): Row factor p >= 1.
    """

    def __init__(self, scale: int) -> None:
        super().__init__()
        self.scale = int(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        p = self.scale
        return x.reshape(n, c // p, p, h, w).permute(0, 1, 3, 2, 4).reshape(n, c // p, h * p, w)


class RowShuffleUpsampler(nn.Sequential):
    """:class:`PixelShuffleUpsampler` along one axis: one conv3x3 (C -> pC) + :class:`RowPixelShuffle`
    (p) stage per prime factor p of the scale, so the columns keep their number (the image is
    upsampled along H only). Used by SMORE-style self-supervised SR (Zhao et al., Magn. Reson.
    Imaging 2019), where the network undoes a blur-and-subsample along one axis.

    Args:
        scale (int): Row upscaling factor >= 1.
        num_feat (int): Channels C.
    """

    def __init__(self, scale: int, num_feat: int) -> None:
        if int(scale) != scale or scale < 1:
            raise ValueError(f"upscale must be a positive integer, got {scale!r}")
        layers: list[nn.Module] = []
        for p in prime_factors(int(scale)):
            layers += [nn.Conv2d(num_feat, p * num_feat, 3, padding=1), RowPixelShuffle(p)]
        super().__init__(*layers)
