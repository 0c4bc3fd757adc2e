"""What a model's training data looked like, as far as inference can find out: the protocol record
of the training manifest ``<dataset>_<MOD>_split.json`` that ``w2amsn prepare`` writes beside the
databases (key ``"protocol"``: plane, in-plane voxel size, normalisation percentile, ...;
docs/data.md), found through the options' ``datasets.train.dataroot_gt``.

The database path is relative to the folder training ran in, so it is tried from the options
file's experiment root (``experiments/<name>/../..``), from the options file's parent folder and
from the current directory. Whatever is not found is unknown; inference then says so instead of
guessing (docs/inference.md).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from ..data.planes import PLANES
from ..protocol import ManifestError, manifest_beside, parse_database_name, read_manifest

__all__ = ["TrainingProtocol", "training_manifest_path", "training_protocol"]


@dataclass(frozen=True)
class TrainingProtocol:
    """The training data's protocol; every field None when unknown."""

    manifest: Path | None = None
    plane: str | None = None
    plane_source: str | None = None
    #: every plane the training slices were cut in (a manifest's or the options' ``planes``
    #: list, e.g. a training set with resliced copies), else ``(plane,)``
    planes: tuple[str, ...] | None = None
    in_plane_voxel_mm: tuple[float, float] | None = None
    percentile: float | None = None
    lr_patch: int | None = None


def _train_set(options: Mapping[str, Any]) -> Mapping[str, Any]:
    datasets = options.get("datasets")
    train = datasets.get("train") if isinstance(datasets, Mapping) else None
    return train if isinstance(train, Mapping) else {}


def training_manifest_path(options: Mapping[str, Any], options_path: Path | None,
                           cwd: Path | None = None) -> Path | None:
    """Where the training manifest of ``options`` is (module docstring), or None."""
    root = _train_set(options).get("dataroot_gt")
    if not isinstance(root, str) or parse_database_name(root) is None:
        return None
    rel = manifest_beside(root)
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
    manifest = training_manifest_path(options, options_path, cwd)
    record: Any = None
    if manifest is not None:
        try:
            record = read_manifest(manifest).get("protocol")
        except ManifestError:
            manifest = None
    record = record if isinstance(record, Mapping) else {}  # older manifests have none
    sources = ((f"training manifest {manifest}", record), (f"options {options_path}", train))
    listed = [(tuple(dict.fromkeys(entry["planes"])), where) for where, entry in sources
              if isinstance(entry.get("planes"), (list, tuple)) and entry["planes"]
              and all(p in PLANES for p in entry["planes"])]
    named = [(entry["plane"], where) for where, entry in sources if entry.get("plane") in PLANES]
    plane, source = named[0] if named else (None, None)
    planes = listed[0][0] if listed else None if plane is None else (plane,)
    if listed:  # a list of planes says more than a single plane name
        source = listed[0][1]
        plane = plane if plane in planes else planes[0]
    percentile = record.get("percentile")
    if not (isinstance(percentile, (int, float)) and 0 < percentile <= 100):
        percentile = None
    return TrainingProtocol(manifest=manifest, plane=plane, planes=planes,
                            plane_source=source, in_plane_voxel_mm=_voxel(
                                record.get("in_plane_voxel_mm")),
                            percentile=None if percentile is None else float(percentile),
                            lr_patch=lr_patch)
