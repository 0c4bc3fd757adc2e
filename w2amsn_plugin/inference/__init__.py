"""Whole-volume inference: model loading (:mod:`.loading`), the slice/tile engine
(:mod:`.engine`) and its tile plan (:mod:`.tiling`), the geometry of the super-resolved grid
(:mod:`.geometry`), volume formats and voxel types (:mod:`.volumes`), the training protocol a
model records (:mod:`.protocol`) and the provenance sidecar written beside every output
(:mod:`.provenance`). ``w2amsn infer`` is :mod:`w2amsn_plugin.commands.infer`; docs/inference.md
describes all of it."""
from __future__ import annotations

from ..data.degradations import bicubic_upsample
from .engine import super_resolve_array, super_resolve_volume
from .loading import InferenceError, load_model, load_model_info
from .tiling import DEFAULT_MAX_PIXELS, DEFAULT_TILE_OVERLAP, TilePlan, plan_tiles

__all__ = ["DEFAULT_MAX_PIXELS", "DEFAULT_TILE_OVERLAP", "InferenceError", "TilePlan", "bicubic_upsample",
           "load_model", "load_model_info", "plan_tiles", "super_resolve_array", "super_resolve_volume"]
