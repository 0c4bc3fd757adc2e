"""Precision row of ``w2amsn bench``: what bf16 costs in accuracy (the
target is under 0.02 dB of foreground PSNR at x2).

A trained checkpoint (``--weights``, with its options YAML found as ``w2amsn infer`` finds it, or
``--opt``) super-resolves axial slices of the shipped Colin27 volume, degraded exactly as the
training data (per-volume normalisation, 16-bit quantisation, MATLAB bicubic /scale,
:mod:`w2amsn_plugin.data`), through :func:`w2amsn_plugin.infer.super_resolve_volume` in fp32 and
in bf16; the foreground PSNR of each against the HR slices (``calculate_psnr_fg``, per-slice mean)
and their difference are reported. An untrained network says nothing about this, so without
weights the row is "not available".
"""
from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .results import Row

__all__ = ["PrecisionSettings", "precision_row", "sample_slices"]


@dataclass(frozen=True)
class PrecisionSettings:
    """The checkpoint, how many slices of the sample, and the device."""

    weights: str | None = None
    opt: str | None = None
    n_slices: int = 8
    device: str = "cpu"


def sample_slices(n_slices: int, scale: int) -> tuple[np.ndarray, np.ndarray]:
    """``n_slices`` axial HR slices of Colin27 spread over the brain (most foreground) and their
    LR versions, both float32 in [0, 1] on the 16-bit grid, as the IXI databases hold them."""
    from ..data.degradations import bicubic_downscale
    from ..data.ixi import FOREGROUND_THRESHOLD, axial_stack, load_canonical
    from ..data.normalization import normalize_intensity
    from ..data.png16 import to_uint16
    from ..data.samples import sample_path

    volume, _ = load_canonical(sample_path("colin27_t1"))
    stack = axial_stack(normalize_intensity(volume)[0])
    h, w = (n - n % scale for n in stack.shape[1:])
    fg = (stack > FOREGROUND_THRESHOLD).mean(axis=(1, 2))
    brain = np.flatnonzero(fg >= 0.5 * fg.max())
    pick = brain[np.linspace(0, len(brain) - 1, n_slices).round().astype(int)]
    hr = to_uint16(stack[pick, :h, :w]).astype(np.float32) / 65535
    lr = to_uint16(np.clip(bicubic_downscale(hr, scale), 0, 1)).astype(np.float32) / 65535
    return hr, lr


def precision_row(s: PrecisionSettings) -> Row:
    """fp32 vs bf16 foreground PSNR of the checkpoint on the shipped sample."""
    name = "bf16 vs fp32 foreground PSNR, Colin27 sample"
    if s.weights is None:
        return Row("precision", name, unavailable="needs a trained checkpoint: pass --weights "
                   "experiments/<name>/models/net_g_latest.pth (e.g. from scripts/demo.sh)")
    from ..inference import load_model, super_resolve_volume
    from ..metrics import calculate_psnr_fg

    net, scale = load_model(s.weights, s.opt)
    hr, lr = sample_slices(s.n_slices, scale)
    psnr, seconds = {}, {}
    outputs = {}
    for precision in ("fp32", "bf16"):
        start = time.perf_counter()
        with warnings.catch_warnings():  # "bf16 is emulated": the row says the precision itself
            warnings.simplefilter("ignore", RuntimeWarning)
            sr = super_resolve_volume(lr, net, scale, plane_axis=0, bf16=precision == "bf16",
                                      device=s.device)
        seconds[precision] = (time.perf_counter() - start) / len(lr)
        outputs[precision] = np.clip(sr, 0, 1)
        psnr[precision] = float(np.nanmean([calculate_psnr_fg(o, g)
                                            for o, g in zip(outputs[precision], hr)]))
    change = psnr["bf16"] - psnr["fp32"]
    mse = float(np.mean((outputs["bf16"] - outputs["fp32"]) ** 2))
    agreement = 10 * np.log10(1 / mse) if mse > 0 else float("inf")
    return Row("precision", name, model=Path(s.weights).name, precision="bf16",
               input=f"{len(lr)} slices {lr.shape[1]}x{lr.shape[2]} LR, x{scale}",
               note=f"fg PSNR fp32 {psnr['fp32']:.3f} dB, bf16 {psnr['bf16']:.3f} dB: change "
                    f"{change:+.4f} dB; bf16 output vs fp32 output {agreement:.1f} dB",
               extra={"psnr_fg_fp32": psnr["fp32"], "psnr_fg_bf16": psnr["bf16"],
                      "psnr_fg_change_db": change, "bf16_vs_fp32_psnr_db": agreement,
                      "scale": scale, "seconds_per_slice": seconds, "weights": str(s.weights)})
