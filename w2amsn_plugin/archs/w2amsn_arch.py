"""W²AMSN, registered in BasicSR's ARCH_REGISTRY as ``W2AMSN`` (paper section III, Fig. 1)."""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn

from .w2amsn_blocks import (ATTENTION_KINDS, NCAB, W2AMSB, PixelShuffleUpsampler, RowShuffleUpsampler,
                            make_attention)

__all__ = ["UPSCALE_AXES", "W2AMSN"]

UPSCALE_AXES = ("both", "rows")


@ARCH_REGISTRY.register()
class W2AMSN(nn.Module):
    """Wide weighted attention multi-scale network.

    Paper: Wide Weighted Attention Multi-Scale Network for Accurate MR Image Super-Resolution
    (Wang, Hu, Zhao, Zhang, IEEE TCSVT 2021), section III.

    - SFE (eq. 1): conv3x3 (in -> a), conv1x1, conv3x3 gives x_S = x_0 (no activations).
    - t W²AMSBs (eqs. 2-3, 9-13), each output kept for the global concatenation
      x_c = [x_0, ..., x_t] (eq. 4).
    - Global attention on x_c (eq. 7, NCAB over (t+1)a channels), C1g conv1x1 ((t+1)a -> a),
      global residual + x_S, reconstruction conv3x3 -> pixel shuffle -> conv3x3 (eq. 8).

    Defaults are the paper's W²AMSN for 1-channel MR (a=32, t=20, widen 4, K3K5 with weighted
    fusion, NCAB in blocks and globally); W²AMSN-S is ``num_block=8``.

    Args:
        num_in_ch (int): Channel number of inputs. Default: 1.
        num_out_ch (int): Channel number of outputs. Default: 1.
        num_feat (int): a, the channel number between blocks. Default: 32.
        num_block (int): t, the number of W²AMSBs. Default: 20.
        upscale (int): Upsampling factor, any integer >= 1. Default: 2.
        widen (int): Channel widening factor of each block's first convs (eq. 9; Table I "CW",
            Table IV: 1, 2, 4). Default: 4.
        mid_feat (int | None): Output channels of each branch's second conv (S2/W2, eq. 10).
            The paper writes 8a, but Table II's sizes fit a (see docs/model-size.md);
            None means ``num_feat``. Default: None.
        kernel_sizes (list[int]): Kernel size per branch: [3, 5] = K3K5 (paper), [3, 3] = K3K3,
            [5, 5] = K5K5 (Fig. 6), [3] = the single-scale block of Table I. Default: [3, 5].
        weighted_fusion (bool): Learnable branch weights λ (eq. 12, init 1); False fixes them
            to 1 (Fig. 6(c) vs 6(d)). Default: True.
        block_attention (str): Attention at eq. 11: 'ncab' | 'cab' | 'none' (Tables V, VI).
            Default: 'ncab'.
        global_attention (str): Attention at eq. 7: 'ncab' | 'cab' | 'none' (Table VI).
            Default: 'ncab'.
        res_scale (float): Residual scaling of each block before its local skip (the paper's
            conclusion mentions it; 1 is eq. 13). Default: 1.
        upsample_feat (int | None): Channels F_R (eq. 8) upsamples on. None: a, as the text
            reads (conv3x3 a -> p²a, pixel shuffle, conv3x3 a -> out). An integer F (256 = 8a is
            the reading that closes Table II's parameter gap, docs/model-size.md): a 1x1 conv
            a -> F first, then the EDSR-style upsampler on F (conv3x3 F -> p²F per factor p) and
            conv3x3 F -> out. Default: None.
        upscale_axis (str): 'both' upsamples both image axes (the paper); 'rows' upsamples the
            rows (H) only, with a one-axis pixel shuffle (:class:`RowShuffleUpsampler`): the tail
            of self-supervised through-plane SR (``w2amsn self-sr``). Default: 'both'.
        input_residual (bool): Add the input, linearly interpolated to the output grid (along
            the upsampled axes, pixel centres as in ``imresize``), to the output, so the network
            learns only the residual (VDSR-style global skip; speeds up short self-supervised
            training). False is the paper's network. Default: False.

    Attributes:
        fold_global (bool): With global NCAB, compute C1g(F_A(x_c)) as one per-sample 1x1 map
            ``(G diag(w_a) C1l + G) x_c`` (eqs. 6-8 are linear in x_c once w_a is known): the
            same function without the (t+1)a x (t+1)a lower conv and without two more
            (t+1)a-channel maps in memory. False runs the layers one by one. Default: True.
    """

    def __init__(self, num_in_ch: int = 1, num_out_ch: int = 1, num_feat: int = 32,
                 num_block: int = 20, upscale: int = 2, widen: int = 4,
                 mid_feat: int | None = None, kernel_sizes: Sequence[int] = (3, 5),
                 weighted_fusion: bool = True, block_attention: str = "ncab",
                 global_attention: str = "ncab", res_scale: float = 1.0,
                 upsample_feat: int | None = None, upscale_axis: str = "both",
                 input_residual: bool = False) -> None:
        super().__init__()
        mid_feat = num_feat if mid_feat is None else mid_feat
        up_feat = num_feat if upsample_feat is None else upsample_feat
        for name, value in (("block_attention", block_attention),
                            ("global_attention", global_attention)):
            if value not in ATTENTION_KINDS:
                raise ValueError(f"W2AMSN: {name} must be one of {ATTENTION_KINDS}, got {value!r}")
        for name, value in (("num_in_ch", num_in_ch), ("num_out_ch", num_out_ch),
                            ("num_feat", num_feat), ("num_block", num_block), ("widen", widen),
                            ("mid_feat", mid_feat), ("upsample_feat", up_feat)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"W2AMSN: {name} must be a positive integer, got {value!r}")
        if upscale_axis not in UPSCALE_AXES:
            raise ValueError(f"W2AMSN: upscale_axis must be one of {UPSCALE_AXES}, got {upscale_axis!r}")
        self.num_feat = num_feat
        self.upscale = upscale
        self.upscale_axis = upscale_axis
        self.input_residual = bool(input_residual)
        self.sfe = nn.Sequential(
            nn.Conv2d(num_in_ch, num_feat, 3, padding=1),
            nn.Conv2d(num_feat, num_feat, 1),
            nn.Conv2d(num_feat, num_feat, 3, padding=1),
        )
        self.body = nn.ModuleList(
            W2AMSB(num_feat, mid_feat, widen=widen, kernel_sizes=kernel_sizes,
                   weighted_fusion=weighted_fusion, attention=block_attention,
                   res_scale=res_scale)
            for _ in range(num_block))
        concat_feat = (num_block + 1) * num_feat
        self.global_attention = make_attention(global_attention, concat_feat)
        self.global_fusion = nn.Conv2d(concat_feat, num_feat, 1)
        self.upsample_in = nn.Identity() if up_feat == num_feat else nn.Conv2d(num_feat, up_feat, 1)
        tail = PixelShuffleUpsampler if upscale_axis == "both" else RowShuffleUpsampler
        self.upsample = tail(upscale, up_feat)
        self.conv_last = nn.Conv2d(up_feat, num_out_ch, 3, padding=1)
        self.fold_global = True

    def _concat_features(self, x_s: torch.Tensor) -> torch.Tensor:
        """Run the blocks and return x_c = [x_0, ..., x_t] (eqs. 2-4).

        With autograd: one ``torch.cat`` at the end. Without (inference): each x_i is copied once
        into a preallocated x_c, so the t+1 maps are never held twice."""
        if torch.is_grad_enabled():
            feats = [x_s]
            for block in self.body:
                feats.append(block(feats[-1]))
            return torch.cat(feats, dim=1)
        n, a, h, w = x_s.shape
        channels_last = x_s.is_contiguous(memory_format=torch.channels_last) and not x_s.is_contiguous()
        x_c = torch.empty((n, a * (len(self.body) + 1), h, w), dtype=x_s.dtype, device=x_s.device,
                          memory_format=torch.channels_last if channels_last else torch.contiguous_format)
        x_c[:, :a].copy_(x_s)
        x = x_s
        for i, block in enumerate(self.body, start=1):
            x = block(x)
            x_c[:, i * a:(i + 1) * a].copy_(x)
        return x_c

    def _attend_and_fuse(self, x_c: torch.Tensor) -> torch.Tensor:
        """C1g(F_A(x_c)) of eqs. 7-8 (global attention, then the 1x1 conv to a channels)."""
        att = self.global_attention
        if not (self.fold_global and isinstance(att, NCAB)):
            return self.global_fusion(att(x_c))
        n, c, h, w = x_c.shape
        w_a = att.attention_weights(x_c).view(n, 1, c)
        g = self.global_fusion.weight.view(-1, c)
        g_w = g * w_a                                                    # G diag(w_a), (n, a, C)
        m = torch.matmul(g_w, att.lower.weight.view(c, c)) + g           # (n, a, C)
        bias = torch.matmul(g_w, att.lower.bias) + self.global_fusion.bias  # (n, a)
        flat = x_c.flatten(2)                                            # (n, C, HW), a view
        if x_c.is_contiguous():
            return torch.baddbmm(bias.unsqueeze(2), m, flat).view(n, -1, h, w)
        out = torch.baddbmm(bias.unsqueeze(1), flat.transpose(1, 2), m.transpose(1, 2))
        return out.view(n, h, w, -1).permute(0, 3, 1, 2)                 # channels_last

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_s = self.sfe(x)
        fused = self._attend_and_fuse(self._concat_features(x_s))
        out = self.conv_last(self.upsample(self.upsample_in(fused + x_s)))
        if self.input_residual:
            out = out + F.interpolate(x, size=out.shape[-2:], mode="bilinear", align_corners=False)
        return out
