"""The tile plan of whole-volume inference: how many slices (or tiles of a slice, with overlap)
go through the network per forward call, within a budget of LR pixels per call (the memory a
call takes grows with it). :mod:`.engine` runs the plan; ``w2amsn infer --dry-run`` prints it."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .errors import InferenceError
from .settings import CPU_BATCH, DEFAULT_TILE_OVERLAP

__all__ = ["DEFAULT_MAX_PIXELS", "DEFAULT_TILE_OVERLAP", "MIN_TILE", "CPU_BATCH", "TilePlan", "plan_tiles",
           "auto_max_pixels"]

#: LR pixels per forward call on the CPU (batch x window area): one 256x256 LR slice. W2AMSN
#: (a=32, t=20) peaks at about 5.7 KB per LR pixel in fp32 (4.3 KB in bf16; measured, x2), ~0.4 GiB
#: per call; `w2amsn bench` measured the same speed as 4x more per call and half the peak memory
#: (a 256x256x150 volume at x4: 0.82 GiB above the output array for W2AMSN fp32, 1.69 GiB with 1 << 18).
DEFAULT_MAX_PIXELS = 1 << 16
#: smallest tile side (LR pixels): smaller tiles spend most of each call on the overlap
MIN_TILE = 8
#: device bytes budgeted per LR pixel of a forward call on CUDA: W2AMSN's measured 5.7 KB peak
#: in fp32 with headroom; the output's scale**2 pixels (plus the ensemble's sum) are added
_CUDA_BYTES_PER_LR_PIXEL = 8 << 10
#: most LR pixels per CUDA call (64 slices of 256x256), the share of free memory used, and the
#: largest slab of the LR volume held on the device at once
_CUDA_MAX_PIXELS = 1 << 22
_CUDA_FREE_SHARE = 0.5
@dataclass(frozen=True)
class TilePlan:
    """How slices go through the network: ``batch`` windows per forward call, each a whole
    slice (``tile`` None) or a ``tile`` x ``tile`` LR tile with ``overlap`` pixels of context."""

    batch: int
    tile: int | None = None
    overlap: int = DEFAULT_TILE_OVERLAP

    def windows(self, height: int, width: int
                ) -> tuple[tuple[int, int], list[tuple[int, int, int, int, int, int]]]:
        """Window size and ``(win_y, win_x, y0, y1, x0, x1)`` per tile of an ``height x width``
        slice: the tile ``[y0, y1) x [x0, x1)`` is cut from the output of the window at
        ``(win_y, win_x)``. Windows all have one size (they batch) and reach ``overlap`` pixels
        past their tile, or to the slice border, where zero padding is the same as untiled."""
        if self.tile is None:
            return (height, width), [(0, 0, 0, height, 0, width)]
        win_h = min(self.tile + 2 * self.overlap, height)
        win_w = min(self.tile + 2 * self.overlap, width)
        boxes = []
        for y0 in range(0, height, self.tile):
            win_y = min(max(y0 - self.overlap, 0), height - win_h)
            for x0 in range(0, width, self.tile):
                win_x = min(max(x0 - self.overlap, 0), width - win_w)
                boxes.append((win_y, win_x, y0, min(y0 + self.tile, height),
                              x0, min(x0 + self.tile, width)))
        return (win_h, win_w), boxes

    def forward_calls(self, n_slices: int, height: int, width: int,
                      self_ensemble: bool = False) -> int:
        """Network calls for ``n_slices`` slices (with the x8 self-ensemble: 8 per full batch,
        fewer for a short one, as :func:`_forward_fn` groups them)."""
        (win_h, win_w), boxes = self.windows(height, width)
        windows = n_slices * len(boxes)
        if not self_ensemble:
            return math.ceil(windows / self.batch)
        from ..archs.self_ensemble import NUM_TRANSFORMS  # only here: archs imports BasicSR

        group_sizes = (NUM_TRANSFORMS,) if win_h == win_w else (4, 4)
        sizes = [self.batch] * (windows // self.batch) + ([windows % self.batch] if windows % self.batch
                                                          else [])
        return sum(math.ceil(g / max(1, self.batch // n)) for n in sizes for g in group_sizes)


def plan_tiles(height: int, width: int, batch: int | None = CPU_BATCH, *,
               max_pixels: int = DEFAULT_MAX_PIXELS, tile: int | None = None,
               overlap: int = DEFAULT_TILE_OVERLAP) -> TilePlan:
    """Plan for ``height x width`` LR slices: whole slices, ``batch`` at most (None: no limit
    but the pixels) and no more than ``max_pixels`` LR pixels per forward call; tiles (of side
    ``tile``, or the largest whose window fits ``max_pixels``) when one slice alone would exceed
    it. The x8 self-ensemble runs its transforms one after another at this same plan.
    Tiles under :data:`MIN_TILE` px are refused, given or derived."""
    if (batch is not None and batch < 1) or max_pixels < 1 or overlap < 0:
        raise InferenceError(f"batch ({batch}) and max_pixels ({max_pixels}) must be positive, "
                             f"overlap ({overlap}) >= 0")
    if tile is not None and tile < MIN_TILE:
        raise InferenceError(f"tile {tile}: tiles under {MIN_TILE} px are refused (each call "
                             f"would be mostly overlap); use --tile >= {MIN_TILE}")
    if tile is None and height * width > max_pixels:
        tile = math.isqrt(max_pixels) - 2 * overlap
        if tile < MIN_TILE:
            raise InferenceError(f"max_pixels {max_pixels} leaves tiles of {tile} px with "
                                 f"overlap {overlap} (under {MIN_TILE} px); raise it or lower "
                                 "the overlap")
    if tile is not None and tile >= max(height, width):
        tile = None
    win_h, win_w = TilePlan(batch=1, tile=tile, overlap=overlap).windows(height, width)[0]
    fit = max(1, max_pixels // (win_h * win_w))
    return TilePlan(batch=fit if batch is None else min(batch, fit), tile=tile, overlap=overlap)


def auto_max_pixels(device: str | torch.device, scale: int, self_ensemble: bool = False) -> int:
    """LR pixels per forward call: :data:`DEFAULT_MAX_PIXELS` on the CPU; on CUDA, what half
    of the free device memory holds at :data:`_CUDA_BYTES_PER_LR_PIXEL` per pixel plus the
    output's ``scale**2`` float32 pixels (twice with the ensemble's sum)."""
    dev = torch.device(device)
    if dev.type != "cuda":
        return DEFAULT_MAX_PIXELS
    free, _ = torch.cuda.mem_get_info(dev)
    per_pixel = _CUDA_BYTES_PER_LR_PIXEL + 4 * scale * scale * (3 if self_ensemble else 2)
    return int(min(_CUDA_MAX_PIXELS, max(DEFAULT_MAX_PIXELS, _CUDA_FREE_SHARE * free / per_pixel)))


