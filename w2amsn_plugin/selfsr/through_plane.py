"""Applying the trained one-axis network to the two through-plane orientations of a scan, through
the plugin's inference engine (:func:`w2amsn_plugin.inference.engine.super_resolve_volume`:
same tiling, batching, devices and bf16 rules as ``w2amsn infer``).

The volume has its coarse axis last (``(X, Y, Z)``). Orientation 0 takes the slices normal to X,
orientation 1 those normal to Y; in both the coarse axis Z is the image rows, which the network's
tail upsamples (SMORE, Zhao et al., IEEE TMI 2021, sec. II-D).
"""
from __future__ import annotations

import numpy as np
import torch
from tqdm import tqdm

from ..inference.engine import super_resolve_volume

__all__ = ["super_resolve_orientations"]

# per orientation: (X, Y, Z) -> (slice axis, rows = Z, columns), and back
_FORWARD = ((0, 2, 1), (1, 2, 0))


def super_resolve_orientations(volume: np.ndarray, net: torch.nn.Module, factor: int, *,
                               device: str = "cpu", bf16: bool | None = None,
                               progress: bool = False) -> list[np.ndarray]:
    """Both orientations' estimates of ``volume`` (normalised, coarse axis last) with Z ``factor``
    times finer: a list of two float32 ``(X, Y, Z·factor)`` arrays."""
    out = []
    for order in _FORWARD:
        slices = np.ascontiguousarray(np.transpose(volume, order))
        bar = tqdm(total=slices.shape[0], unit="slice", disable=not progress, leave=False,
                   desc=f"self-sr: orientation {len(out) + 1}/2")
        sr = super_resolve_volume(slices, net, (factor, 1), plane_axis=0, device=device, bf16=bf16,
                                  progress=bar)
        bar.close()
        out.append(np.ascontiguousarray(np.transpose(sr, np.argsort(order))))
    return out
