"""How well one self-sr run did, from the scan alone (the sidecar's numbers).

- :func:`held_out_scores`: foreground PSNR on the acquired slices held out of training
  (:class:`~.patch_dataset.SelfSRPatchDataset`'s val phase: the same degradation, never cut for
  training), of the network and of cubic B-spline interpolation of the same low-resolution rows.
- :func:`self_consistency`: the output degraded again with the slice profile at the input's
  slice positions, against the input (both normalised with the input's window): how faithfully
  the result explains the acquired data (SMORE, Zhao et al., IEEE TMI 2021, sec. III-C uses this
  check on real scans without ground truth); :func:`in_plane_self_consistency`, the in-plane
  mode's: the output degraded again with the degradation it trained on (the mean of the two for
  ``mixed``).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..metrics.foreground import foreground_mask
from ..metrics.psnr_ssim import calculate_psnr_fg
from .in_plane import degrade_in_plane
from .patch_dataset import SelfSRPatchDataset
from .slice_profile import SliceProfile, apply_along
from .training_pairs import resample_axis

__all__ = ["held_out_scores", "in_plane_self_consistency", "self_consistency", "volume_psnr_fg"]


def _upsample_rows(lq: np.ndarray, factor: int, in_plane: bool) -> np.ndarray:
    if in_plane:  # the in-plane mode's reference: bicubic upsampling of both axes
        from ..data.degradations import bicubic_upsample

        return bicubic_upsample(torch.from_numpy(lq)[None], factor)[0].numpy()
    return resample_axis(lq, 0, lq.shape[0] * factor)


@torch.no_grad()
def held_out_scores(net: torch.nn.Module, dataset_opt: dict[str, Any], device: str = "cpu"
                    ) -> dict[str, float]:
    """Mean foreground PSNR (dB) of ``net`` and of cubic interpolation on the held-out slices."""
    data = SelfSRPatchDataset({**dataset_opt, "phase": "val"})
    net = net.to(device).eval()
    ours, cubic = [], []
    for i in range(len(data)):
        item = data[i]
        lq, gt = item["lq"], item["gt"][0].numpy()
        sr = net(lq[None].to(device)).float().clamp(0, 1)[0, 0].cpu().numpy()
        ref = np.clip(_upsample_rows(lq[0].numpy(), data.scale, data.in_plane), 0, 1)
        ours.append(calculate_psnr_fg(sr, gt))
        cubic.append(calculate_psnr_fg(ref, gt))
    ours_mean, cubic_mean = float(np.nanmean(ours)), float(np.nanmean(cubic))
    return {"psnr_fg": ours_mean, "interpolation_psnr_fg": cubic_mean,
            "gain_db": ours_mean - cubic_mean, "slices": len(data)}


def volume_psnr_fg(estimate: np.ndarray, truth: np.ndarray, axis: int = 2) -> float:
    """Foreground PSNR (dB) of two volumes in [0, 1]: the MSE over the voxels inside each slice's
    foreground mask (:func:`~w2amsn_plugin.metrics.foreground.foreground_mask` of ``truth``,
    slices along ``axis``)."""
    est = np.moveaxis(np.clip(estimate, 0, 1), axis, 0)
    ref = np.moveaxis(np.clip(truth, 0, 1), axis, 0)
    mask = np.stack([foreground_mask(s) for s in ref])
    if not mask.any():
        return float("nan")
    mse = float(np.mean((est[mask].astype(np.float64) - ref[mask]) ** 2))
    return 10.0 * np.log10(1.0 / max(mse, 1e-10))


def self_consistency(output: np.ndarray, scan: np.ndarray, profile: SliceProfile,
                     out_spacing: float) -> float:
    """Foreground PSNR (dB) of ``output`` (coarse axis last, on the output grid of
    ``out_spacing`` mm) degraded with ``profile`` at ``scan``'s slice centres, against ``scan``
    (both normalised)."""
    n, n_out = scan.shape[2], output.shape[2]
    centres = (np.arange(n) + 0.5) * n_out / n - 0.5
    again = apply_along(output, profile.matrix(centres, n_out, out_spacing), 2)
    return volume_psnr_fg(again, scan, axis=2)


def in_plane_self_consistency(output: np.ndarray, scan: np.ndarray, scale: int, degradation: str) -> float:
    """Foreground PSNR (dB) of the in-plane mode's ``output`` (slice axis last, ``scale`` times
    finer in the first two) degraded again /``scale`` with ``degradation``
    (:func:`~.in_plane.degrade_in_plane`; the mean of the two for ``mixed``), against ``scan``
    (both normalised)."""
    lrs = degrade_in_plane(output.transpose(2, 0, 1), scale, degradation)
    again = lrs[0] if len(lrs) == 1 else (lrs[0] + lrs[1]) / 2
    return volume_psnr_fg(again.transpose(1, 2, 0), scan)
