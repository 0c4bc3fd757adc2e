"""What a model's training data looked like, as far as inference can find out: the protocol record
of the training manifest ``IXI_<MOD>_split.json`` that ``w2amsn prepare-ixi`` writes beside the
databases (key ``"protocol"``: plane, in-plane voxel size, normalisation percentile, ...;
docs/data.md), found through the options' ``datasets.train.dataroot_gt``.

The database path is relative to the folder training ran in, so it is tried from the options
file's experiment root (``experiments/<name>/../..``), from the options file's parent folder and
from the current directory. Whatever is not found is unknown; inference then says so instead of
guessing (docs/inference.md).
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from ..data.planes import PLANES

__all__ = ["TrainingProtocol", "find_manifest", "training_protocol"]

# IXI_<MOD>_<split>_<kind>.lmdb (w2amsn_plugin.data.naming.database_name)
_DATABASE = re.compile(r"^IXI_(?P<mod>[A-Za-z0-9]+)_[A-Za-z0-9]+_.+\.lmdb$")


@dataclass(frozen=True)
class TrainingProtocol:
    """The training data's protocol; every field None when unknown."""

    manifest: Path | None = None
    plane: str | None = None
    plane_source: str | None = None
    in_plane_voxel_mm: tuple[float, float] | None = None
    percentile: float | None = None
    lr_patch: int | None = None


def _train_set(options: Mapping[str, Any]) -> Mapping[str, Any]:
    datasets = options.get("datasets")
    train = datasets.get("train") if isinstance(datasets, Mapping) else None
    return train if isinstance(train, Mapping) else {}


def find_manifest(options: Mapping[str, Any], options_path: Path | None,
                  cwd: Path | None = None) -> Path | None:
    """The training manifest of ``options`` (module docstring), or None."""
    root = _train_set(options).get("dataroot_gt")
    if not isinstance(root, str):
        return None
    match = _DATABASE.match(Path(root).name)
    if match is None:
        return None
    rel = Path(root).parent / f"IXI_{match['mod']}_split.json"
    if rel.is_absolute():
        return rel if rel.is_file() else None
    bases = []
    if options_path is not None:
        folder = options_path.resolve().parent
        bases += [folder.parent.parent, folder.parent]
    bases.append((cwd or Path.cwd()).resolve())
    for base in bases:
        if (base / rel).is_file():
            return base / rel
    return None


def _voxel(value: Any) -> tuple[float, float] | None:
    if (isinstance(value, (list, tuple)) and len(value) == 2
            and all(isinstance(v, (int, float)) and math.isfinite(v) and v > 0 for v in value)):
        return float(value[0]), float(value[1])
    return None


def training_protocol(options: Mapping[str, Any], options_path: Path | None,
                      scale: int, cwd: Path | None = None) -> TrainingProtocol:
    """What the manifest of ``options`` (or, for the plane, ``datasets.train.plane``) records.
    An unreadable or malformed manifest counts as not found."""
    train = _train_set(options)
    gt_size = train.get("gt_size")
    lr_patch = gt_size // scale if isinstance(gt_size, int) and gt_size >= scale else None
    manifest = find_manifest(options, options_path, cwd)
    record: Any = None
    if manifest is not None:
        try:
            loaded = json.loads(manifest.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            manifest, loaded = None, None
        record = loaded.get("protocol") if isinstance(loaded, Mapping) else None
    record = record if isinstance(record, Mapping) else {}  # older manifests have none
    plane, source = record.get("plane"), f"training manifest {manifest}"
    if plane not in PLANES:
        plane, source = train.get("plane"), f"options {options_path}"
    if plane not in PLANES:
        plane = source = None
    percentile = record.get("percentile")
    if not (isinstance(percentile, (int, float)) and 0 < percentile <= 100):
        percentile = None
    return TrainingProtocol(manifest=manifest, plane=plane,
                            plane_source=source, in_plane_voxel_mm=_voxel(
                                record.get("in_plane_voxel_mm")),
                            percentile=None if percentile is None else float(percentile),
                            lr_patch=lr_patch)
