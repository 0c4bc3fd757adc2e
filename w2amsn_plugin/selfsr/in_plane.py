"""The in-plane mode's degradations (``w2amsn self-sr --mode in-plane --degradation D``): how the
scan's own slices are made ``k`` times coarser to train on (zero-shot SR: the network learns to
undo on the scan what the scan's acquisition did to the anatomy, so the degradation should be
the one that made the scan coarse).

- ``bicubic``: MATLAB-bicubic /k, the first degradation of the paper's IXI protocol
  (section IV-A).
- ``kspace``: k-space truncation to the central ``1/k`` of each in-plane axis, magnitude kept:
  how an MR scanner's lower in-plane resolution arises (a smaller acquired matrix over the same
  field of view), and the paper's second degradation (its "truncation",
  :func:`~w2amsn_plugin.data.degradations.kspace_truncate`). Here with ``block_centred``: each
  coarse pixel is centred on its ``k x k`` block, as MATLAB-bicubic's are and as the output's
  geometry assumes, where the IXI pairs keep the corner alignment. For an even coarse size the
  kept band holds the one-sided Nyquist frequency, as a scanner's acquired matrix does.
- ``mixed``: each training patch from one of the two at random (the degradation is not known).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:  # numpy is imported where it is used: `w2amsn self-sr --help` reads the names below
    import numpy as np

__all__ = ["DEFAULT_DEGRADATION", "IN_PLANE_DEGRADATIONS", "degrade_in_plane", "kspace_downscale"]

IN_PLANE_DEGRADATIONS = ("bicubic", "kspace", "mixed")
DEFAULT_DEGRADATION = "kspace"
#: slices degraded at a time (bounds the float64/complex intermediates of a whole output volume)
_CHUNK = 8


def _by_chunks(stack: np.ndarray, degrade: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """``degrade`` applied to :data:`_CHUNK` images of ``(..., H, W)`` at a time; float32."""
    import numpy as np

    h, w = stack.shape[-2:]
    flat = np.asarray(stack).reshape(-1, h, w)
    low = np.concatenate([degrade(flat[i:i + _CHUNK]).astype(np.float32)
                          for i in range(0, flat.shape[0], _CHUNK)])
    return low.reshape(*stack.shape[:-2], *low.shape[-2:])


def kspace_downscale(stack: np.ndarray, scale: int) -> np.ndarray:
    """``(..., H, W)`` images (H, W multiples of ``scale``) truncated in k-space to ``1/scale``,
    each coarse pixel centred on its ``scale x scale`` block, magnitude kept (module
    docstring); float32."""
    from ..data.degradations import kspace_truncate

    return _by_chunks(stack, lambda chunk: kspace_truncate(chunk, scale, block_centred=True))


def degrade_in_plane(stack: np.ndarray, scale: int, kind: str) -> list[np.ndarray]:
    """The low-resolution versions of ``(N, H, W)`` slices that ``kind`` trains on (two for
    ``mixed``), float32."""
    from ..data.degradations import bicubic_downscale

    if kind not in IN_PLANE_DEGRADATIONS:
        raise ValueError(f"in-plane degradation must be one of {IN_PLANE_DEGRADATIONS}, got {kind!r}")
    kinds = ("bicubic", "kspace") if kind == "mixed" else (kind,)
    return [kspace_downscale(stack, scale) if k == "kspace"
            else _by_chunks(stack, lambda chunk: bicubic_downscale(chunk, scale)) for k in kinds]
