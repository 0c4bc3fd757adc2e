"""Whole-volume inference: model loading (:mod:`.loading`), the slice/tile engine
(:mod:`.engine`), the geometry of the super-resolved grid (:mod:`.geometry`) and volume reading
(:mod:`.volumes`). ``w2amsn infer`` is :mod:`w2amsn_plugin.commands.infer`."""
from __future__ import annotations

from .engine import (DEFAULT_MAX_PIXELS, DEFAULT_TILE_OVERLAP, TilePlan, bicubic_upsample, plan_tiles,
                     super_resolve_array, super_resolve_volume)
from .loading import InferenceError, load_model

__all__ = ["DEFAULT_MAX_PIXELS", "DEFAULT_TILE_OVERLAP", "InferenceError", "TilePlan", "bicubic_upsample",
           "load_model", "plan_tiles", "super_resolve_array", "super_resolve_volume"]
