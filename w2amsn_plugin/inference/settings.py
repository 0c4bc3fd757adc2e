"""The choices of one whole-volume inference run, as a frozen record: what ``w2amsn infer``'s
options set and what :func:`w2amsn_plugin.inference.super_resolve_file` takes as keywords
(docs/inference.md). This module imports nothing heavy, so the command's ``--help`` stays fast;
the choices are checked where they are used (one-line :class:`InferenceError`)."""
from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

from ..protocol import PAPER

__all__ = ["DTYPE_CHOICES", "DEVICE_AUTO", "DEFAULT_TILE_OVERLAP", "CPU_BATCH", "DEFAULT_PERCENTILE",
           "InferenceSettings", "settings_from"]

#: output voxel types; ``auto`` is the rule of :func:`w2amsn_plugin.inference.volumes.output_dtype`
DTYPE_CHOICES = ("auto", "input", "float32", "int16", "uint16")
#: the device value that picks CUDA when this machine has it, else the CPU
DEVICE_AUTO = "auto"
#: LR pixels of context on each side of a tile (its output is cropped away)
DEFAULT_TILE_OVERLAP = 32
#: slices per forward call at most, on the CPU (on CUDA only the pixel budget limits a batch)
CPU_BATCH = 8
#: the normalisation percentile when the training manifest does not record one (the paper's)
DEFAULT_PERCENTILE = PAPER.percentile


@dataclass(frozen=True)
class InferenceSettings:
    """How to super-resolve a volume; every default is ``w2amsn infer``'s.

    ``plane``: ``acquisition``, ``axial``, ``coronal``, ``sagittal`` or None (the acquisition plane,
    or the one plane the model was trained on). ``volume_index``: one volume of a 4-D file (None:
    all). ``percentile``: None takes the training manifest's. ``dtype``: one of
    :data:`DTYPE_CHOICES`. ``edges``: clamp a magnitude image's output to the input's range and
    keep its background zeros (:mod:`.edges`). ``device``: ``auto``, ``cpu``, ``cuda``,
    ``cuda:N``. ``bf16``: None where the device computes it natively. ``batch``, ``max_pixels``,
    ``tile``, ``tile_overlap``: the tile plan (None: derived, :mod:`.tiling`). ``threads``: torch's
    CPU threads during the run (None: torch's default). ``progress``: a progress bar on stderr.
    ``overwrite``: replace an existing output (else refused).
    """

    plane: str | None = None
    volume_index: int | None = None
    percentile: float | None = None
    dtype: str = "auto"
    self_ensemble: bool = False
    edges: bool = True
    device: str = DEVICE_AUTO
    bf16: bool | None = None
    batch: int | None = None
    max_pixels: int | None = None
    tile: int | None = None
    tile_overlap: int = DEFAULT_TILE_OVERLAP
    threads: int | None = None
    progress: bool = False
    overwrite: bool = False


def settings_from(settings: InferenceSettings | None, **overrides: Any) -> InferenceSettings:
    """``settings`` (default: the defaults) with ``overrides``; an unknown keyword is a
    ``TypeError`` naming it."""
    known = {f.name for f in fields(InferenceSettings)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise TypeError(f"unknown inference setting(s): {', '.join(unknown)} "
                        f"(known: {', '.join(sorted(known))})")
    return replace(settings or InferenceSettings(), **overrides)
