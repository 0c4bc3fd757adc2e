"""The in-plane mode's degradations (``w2amsn self-sr --mode in-plane --degradation D``): how the
scan's own slices are made ``k`` times coarser to train on (zero-shot SR: the network learns to
undo on the scan what the scan's acquisition did to the anatomy, so the degradation should be
the one that made the scan coarse).

- ``bicubic``: MATLAB-bicubic /k, the first degradation of the paper's IXI protocol
  (section IV-A).
- ``kspace``: k-space truncation to the central ``1/k`` of each in-plane axis, magnitude kept:
  how an MR scanner's lower in-plane resolution arises (a smaller acquired matrix over the same
  field of view), and the paper's second degradation (its "truncation"). Here the slice is
  first shifted by ``(k - 1) / 2`` pixels (a phase ramp) so that each coarse pixel is centred
  on its ``k x k`` block, as MATLAB-bicubic's are and as the output's geometry assumes; the
  IXI protocol's :func:`~w2amsn_plugin.data.degradations.kspace_truncate` keeps the corner
  alignment of its pairs. For an even coarse size the kept band holds the one-sided Nyquist
  frequency, as a scanner's acquired matrix does.
- ``mixed``: each training patch from one of the two at random (the degradation is not known).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # numpy is imported where it is used: `w2amsn self-sr --help` reads the names below
    import numpy as np

__all__ = ["DEFAULT_DEGRADATION", "IN_PLANE_DEGRADATIONS", "degrade_in_plane", "kspace_downscale"]

IN_PLANE_DEGRADATIONS = ("bicubic", "kspace", "mixed")
DEFAULT_DEGRADATION = "kspace"
#: slices transformed at a time (bounds the complex intermediates of a whole output volume)
_CHUNK = 8


def _kspace_chunk(stack: np.ndarray, scale: int) -> np.ndarray:
    import numpy as np

    h, w = stack.shape[-2:]
    c = (scale - 1) / 2
    ramp = np.exp(2j * np.pi * c * (np.fft.fftfreq(h)[:, None] + np.fft.fftfreq(w)[None, :]))
    spectrum = np.fft.fftshift(np.fft.fft2(stack) * ramp, axes=(-2, -1))
    lh, lw = h // scale, w // scale
    top, left = h // 2 - lh // 2, w // 2 - lw // 2
    kept = np.fft.ifftshift(spectrum[..., top:top + lh, left:left + lw], axes=(-2, -1))
    return np.abs(np.fft.ifft2(kept)) / scale ** 2


def kspace_downscale(stack: np.ndarray, scale: int) -> np.ndarray:
    """``(..., H, W)`` images (H, W multiples of ``scale``) truncated in k-space to ``1/scale``,
    each coarse pixel centred on its ``scale x scale`` block, magnitude kept (module
    docstring); float32."""
    import numpy as np

    stack = np.asarray(stack)
    h, w = stack.shape[-2:]
    if h % scale or w % scale:
        raise ValueError(f"size {h}x{w} is not a multiple of the scale {scale}")
    flat = stack.reshape(-1, h, w)
    out = np.empty((flat.shape[0], h // scale, w // scale), np.float32)
    for i in range(0, flat.shape[0], _CHUNK):
        out[i:i + _CHUNK] = _kspace_chunk(flat[i:i + _CHUNK].astype(np.float64), scale)
    return out.reshape(*stack.shape[:-2], h // scale, w // scale)


def degrade_in_plane(stack: np.ndarray, scale: int, kind: str) -> list[np.ndarray]:
    """The low-resolution versions of ``(N, H, W)`` slices that ``kind`` trains on (two for
    ``mixed``), float32."""
    import numpy as np

    from ..data.degradations import bicubic_downscale

    if kind not in IN_PLANE_DEGRADATIONS:
        raise ValueError(f"in-plane degradation must be one of {IN_PLANE_DEGRADATIONS}, got {kind!r}")
    kinds = ("bicubic", "kspace") if kind == "mixed" else (kind,)
    make = {"bicubic": lambda s: np.concatenate([bicubic_downscale(s[i:i + _CHUNK], scale)
                                                 for i in range(0, len(s), _CHUNK)]),
            "kspace": lambda s: kspace_downscale(s, scale)}
    return [make[k](stack).astype(np.float32) for k in kinds]
