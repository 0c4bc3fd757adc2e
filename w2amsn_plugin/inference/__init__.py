"""Whole-volume MR super-resolution with a trained model, as a library (docs/inference.md):

- :func:`super_resolve_file` / :func:`super_resolve_image` / :func:`plan_file`: the file-to-file
  pipeline ``w2amsn infer`` runs, and the same on a nibabel image in memory (:mod:`.pipeline`);
  :class:`InferenceSettings` holds its choices (:mod:`.settings`);
- model loading (:mod:`.loading`), the plan and its reasons (:mod:`.planning`), the slice/tile
  engine (:mod:`.engine`) and its tile plan (:mod:`.tiling`), the geometry of the super-resolved
  grid (:mod:`.geometry`), volume formats and voxel types (:mod:`.volumes`), edges of magnitude
  images (:mod:`.edges`), the training protocol a model records (:mod:`.protocol`), safe output
  writing (:mod:`.output`) and the provenance sidecar (:mod:`.provenance`).

Names are imported on first use, so ``w2amsn infer --dry-run`` loads only what it needs.
"""
from __future__ import annotations

import importlib
from typing import Any

__all__ = ["DEFAULT_MAX_PIXELS", "DEFAULT_TILE_OVERLAP", "InferenceError", "InferenceSettings",
           "InferenceWarning", "SuperResolved", "TilePlan", "bicubic_upsample", "load_model",
           "load_model_info", "plan_file", "plan_tiles", "read_model", "super_resolve_array",
           "super_resolve_file", "super_resolve_image", "super_resolve_volume"]

_HOME = {
    "DEFAULT_MAX_PIXELS": ".tiling", "DEFAULT_TILE_OVERLAP": ".settings",
    "InferenceError": ".errors", "InferenceWarning": ".errors", "InferenceSettings": ".settings",
    "SuperResolved": ".pipeline", "TilePlan": ".tiling", "bicubic_upsample": "..data.degradations",
    "load_model": ".loading", "load_model_info": ".loading", "read_model": ".loading",
    "plan_file": ".pipeline", "plan_tiles": ".tiling", "super_resolve_array": ".engine",
    "super_resolve_file": ".pipeline", "super_resolve_image": ".pipeline",
    "super_resolve_volume": ".engine",
}


def __getattr__(name: str) -> Any:
    if name in _HOME:
        return getattr(importlib.import_module(_HOME[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
