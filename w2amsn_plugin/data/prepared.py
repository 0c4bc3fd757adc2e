"""A prepared dataset as options see it: the folder ``w2amsn prepare`` wrote, read through its
manifest (:func:`w2amsn_plugin.protocol.read_manifest`): which dataset and modality, the plane,
the scales and slice size it holds, and the paths of its databases (``w2amsn make-options --data``,
:func:`w2amsn_plugin.experiments.prepared_train_options`)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..protocol import ManifestError, database_path, read_manifest

__all__ = ["PreparedDataset", "open_prepared"]


@dataclass(frozen=True)
class PreparedDataset:
    """The facts of one prepared dataset that options need; ``slice_hw`` is the HR slice
    ``(height, width)``, ``train_slices`` the number of training slices."""

    folder: Path
    manifest_path: Path
    dataset: str
    modality: str
    plane: str
    scales: tuple[int, ...]
    slice_hw: tuple[int, int]
    train_slices: int

    def database(self, split: str, scale: int | None = None) -> str:
        """The path of the HR (``scale`` None) or x``scale`` LR database of ``split``."""
        return database_path(str(self.folder), self.modality, split, scale, dataset=self.dataset)


def open_prepared(folder: str | os.PathLike) -> PreparedDataset:
    """The :class:`PreparedDataset` in ``folder`` (absolute paths). Raises
    :class:`~w2amsn_plugin.protocol.ManifestError`, one line, when ``folder`` holds no manifest,
    several (one modality per folder is expected), or an incomplete one."""
    folder = Path(folder).resolve()
    manifests = sorted(folder.glob("*_split.json")) if folder.is_dir() else []
    if len(manifests) != 1:
        raise ManifestError(f"{folder}: " + ("no manifest *_split.json (prepare it with "
                                             "w2amsn prepare)" if not manifests else
                                             f"{len(manifests)} manifests; keep one modality per "
                                             "folder"))
    path = manifests[0]
    manifest = read_manifest(path)
    protocol, databases = manifest.get("protocol") or {}, manifest.get("databases") or {}
    try:
        train = [d for d in databases.values() if d["split"] == "train" and d["kind"] == "HR"]
        height, width, _ = protocol["crop"]
        return PreparedDataset(
            folder=folder, manifest_path=path, dataset=manifest.get("dataset", "IXI"),
            modality=manifest["modality"], plane=protocol["plane"],
            scales=tuple(int(s) for s in protocol["scales"]), slice_hw=(int(height), int(width)),
            train_slices=int(train[0]["keys"]))
    except (KeyError, IndexError, TypeError, ValueError) as err:
        raise ManifestError(f"{path}: incomplete manifest (no {err}); rebuild it with "
                            "w2amsn prepare") from None
