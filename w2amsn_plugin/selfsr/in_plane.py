"""The in-plane mode's degradations (``w2amsn self-sr --mode in-plane --degradation D``): how the
scan's own slices are made ``k`` times coarser to train on (zero-shot SR: the network learns to
undo on the scan what the scan's acquisition did to the anatomy, so the degradation should be
the one that made the scan coarse).

- ``bicubic``: MATLAB-bicubic /k, the degradation of the paper's IXI protocol (section IV-A).
- ``kspace``: k-space truncation to the central ``1/k`` of each in-plane axis, magnitude kept:
  how an MR scanner's lower in-plane resolution arises (a smaller acquired matrix over the same
  field of view). The slice is first shifted by ``(k - 1) / 2`` pixels so that each coarse
  pixel is centred on its ``k x k`` block, as MATLAB-bicubic's are and as the output's
  geometry assumes (the paper protocol's :func:`~w2amsn_plugin.data.degradations.kspace_truncate`
  keeps the corner alignment of its IXI pairs).
- ``mixed``: each training patch from one of the two at random (the degradation is not known).
"""
from __future__ import annotations

import numpy as np

from ..data.degradations import bicubic_downscale, kspace_truncate

__all__ = ["DEFAULT_DEGRADATION", "IN_PLANE_DEGRADATIONS", "degrade_in_plane", "kspace_downscale"]

IN_PLANE_DEGRADATIONS = ("bicubic", "kspace", "mixed")
DEFAULT_DEGRADATION = "bicubic"


def kspace_downscale(stack: np.ndarray, scale: int) -> np.ndarray:
    """``(N, H, W)`` slices (H, W multiples of ``scale``) truncated in k-space to ``1/scale``,
    each coarse pixel centred on its ``scale x scale`` block (module docstring); float64."""
    from scipy import ndimage

    shift = -(scale - 1) / 2
    spectrum = np.fft.fft2(np.asarray(stack, dtype=np.float64), axes=(-2, -1))
    moved = ndimage.fourier_shift(spectrum, (0.0, shift, shift))
    return kspace_truncate(np.real(np.fft.ifft2(moved, axes=(-2, -1))), scale)


def degrade_in_plane(stack: np.ndarray, scale: int, kind: str) -> list[np.ndarray]:
    """The low-resolution versions of ``(N, H, W)`` slices that ``kind`` trains on (two for
    ``mixed``), float32."""
    if kind not in IN_PLANE_DEGRADATIONS:
        raise ValueError(f"in-plane degradation must be one of {IN_PLANE_DEGRADATIONS}, got {kind!r}")
    kinds = ("bicubic", "kspace") if kind == "mixed" else (kind,)
    make = {"bicubic": bicubic_downscale, "kspace": kspace_downscale}
    return [make[k](stack, scale).astype(np.float32) for k in kinds]
