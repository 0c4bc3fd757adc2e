"""Non-local MRI upsampling for 1-channel MR slices: Manjón, Coupé, Buades, Fonov, Collins,
Robles, "Non-local MRI upsampling", Medical Image Analysis 14(6), 784-792, 2010.

The classical method, no training (the paper's section 2): the LR image is interpolated, then
alternately (1) filtered by a non-local means filter whose weights compare patches of the current
HR estimate, w(i, j) = exp(-||P(i) - P(j)||^2 / h^2), the centre pixel weighted by the largest
weight of its neighbours, and (2) corrected so that it is consistent with the LR image
(the paper's back-projection / mean-correction constraint: the degraded reconstruction must
equal the LR data). h starts at the noise level estimated from the LR image and is halved each
iteration; the loop stops when the mean absolute change falls below ``tol`` or after
``num_iter`` iterations.

Vectorised in torch over all pixels at once (one shifted copy per search offset, patch distances by
a box filter), so a 120x120 LR slice at x2 takes well under a second on a CPU. Choices for 2-D
slices and this data (docs/baselines.md): 3x3 patches and a 7x7 search window (the paper's
3x3x3 / 7x7x7 in 3-D); the interpolation and the constraint use the data's own degradation,
MATLAB's antialiased bicubic (:mod:`w2amsn_plugin.archs.bicubic`), instead of the paper's
box (local mean) model: the correction is ``x += U(y - D(x))`` (iterative back-projection with the
bicubic upsampler U), ``bp_iter`` times per iteration. It has no weights: ``basicsr test`` runs it
with ``pretrain_network_g: ~``.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from basicsr.utils.registry import ARCH_REGISTRY
from torch import Tensor, nn

from .bicubic import downscale, upsample

__all__ = ["EXPERIMENT_TAGS", "NLMUpsampler", "PRESETS", "nlm_filter"]


def nlm_filter(x: Tensor, h: float | Tensor, patch: int = 3, search: int = 7) -> Tensor:
    """Non-local means of ``x`` (N, C, H, W): every pixel the weighted mean of the pixels of its
    ``search`` x ``search`` window, weights ``exp(-mean squared patch difference / h^2)`` (``h`` a
    number or one per image, (N, 1, 1, 1)); the
    centre pixel gets the largest weight of the others (Manjón et al. 2010, eq. 2)."""
    r = search // 2
    padded = F.pad(x, (r, r, r, r), mode="reflect")
    height, width = x.shape[-2:]
    num = torch.zeros_like(x)
    den = torch.zeros_like(x)
    best = torch.zeros_like(x)
    for dy in range(search):
        for dx in range(search):
            if dy == r and dx == r:
                continue
            shifted = padded[..., dy:dy + height, dx:dx + width]
            dist = F.avg_pool2d(F.pad((x - shifted) ** 2, (patch // 2,) * 4, mode="replicate"), patch, 1)
            w = torch.exp(-dist / (h * h))
            num += w * shifted
            den += w
            best = torch.maximum(best, w)
    best = torch.where(best > 0, best, torch.ones_like(best))
    return (num + best * x) / (den + best)


@ARCH_REGISTRY.register()
class NLMUpsampler(nn.Module):
    """Non-local MRI upsampling (module doc); no trainable weights.

    Args:
        num_in_ch (int): Input channels (each filtered on its own). Default: 1.
        num_out_ch (int): Output channels (equal to num_in_ch). Default: 1.
        upscale (int): Upsampling factor (any integer). Default: 2.
        patch (int): Patch side. Default: 3.
        search (int): Search window side. Default: 7.
        num_iter (int): At most this many filter + constraint iterations. Default: 6.
        bp_iter (int): Back-projection steps of each constraint. Default: 3.
        h_factor (float): h of the first iteration, in units of the estimated noise level. Default: 1.
        tol (float): Stop when the mean absolute change is below this. Default: 1e-4.
    """

    def __init__(self, num_in_ch: int = 1, num_out_ch: int = 1, upscale: int = 2, patch: int = 3,
                 search: int = 7, num_iter: int = 6, bp_iter: int = 3, h_factor: float = 1.0,
                 tol: float = 1e-4) -> None:
        super().__init__()
        if num_out_ch != num_in_ch:
            raise ValueError(f"NLMUpsampler: num_out_ch ({num_out_ch}) must equal num_in_ch ({num_in_ch})")
        self.upscale, self.patch, self.search = upscale, patch, search
        self.num_iter, self.bp_iter, self.h_factor, self.tol = num_iter, bp_iter, h_factor, tol

    @staticmethod
    def noise_level(y: Tensor) -> Tensor:
        """Per-image noise estimate: the median absolute deviation of the diagonal pixel
        differences / (0.6745 sqrt 2) (a robust estimate, floored at 1e-3 of the range)."""
        diff = (y[..., 1:, 1:] - y[..., :-1, :-1]).flatten(1)
        sigma = diff.abs().median(dim=1).values / (0.6745 * 2 ** 0.5)
        return sigma.clamp_min(1e-3)

    def _constrain(self, x: Tensor, y: Tensor) -> Tensor:
        for _ in range(self.bp_iter):
            x = x + upsample(y - downscale(x, self.upscale), self.upscale)
        return x

    def forward(self, y: Tensor) -> Tensor:
        dtype, y = y.dtype, y.float()
        x = self._constrain(upsample(y, self.upscale), y)
        h = self.noise_level(y).view(-1, 1, 1, 1) * self.h_factor  # per image
        active = torch.ones_like(h, dtype=torch.bool)  # per image: not yet converged
        for _ in range(self.num_iter):
            new = self._constrain(nlm_filter(x, h, self.patch, self.search), y)
            change = (new - x).abs().mean(dim=(1, 2, 3), keepdim=True)
            x = torch.where(active, new, x)
            active = active & (change >= self.tol)
            h = h / 2
        return x.to(dtype)


PRESETS: dict[str, dict[str, Any]] = {
    "NLM": {"type": "NLMUpsampler", "num_in_ch": 1, "num_out_ch": 1, "patch": 3, "search": 7,
            "num_iter": 6, "bp_iter": 3, "h_factor": 1.0, "tol": 1.0e-4},
}
EXPERIMENT_TAGS: dict[str, str] = {"NLMUpsampler": "p{patch}s{search}"}
