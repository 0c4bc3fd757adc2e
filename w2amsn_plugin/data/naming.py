"""The names of the slice databases, the one place they are spelled out: ``make_ixi_lmdb`` writes
them, :mod:`w2amsn_plugin.experiments` puts them into every options file, the demo and the
benchmarks read them."""
from __future__ import annotations

import re
from pathlib import PurePosixPath

__all__ = ["database_name", "database_path", "lr_kind", "parse_lr_kind", "manifest_name",
           "parse_database_name", "kind_scale"]

_DATABASE_RE = re.compile(r"^IXI_(?P<modality>T1|T2|PD)_(?P<split>[a-z]+)_"
                          r"(?P<kind>HR|LR_[a-z]+_X\d+)\.lmdb$")


def lr_kind(degradation: str, scale: int) -> str:
    """Database kind of an LR set, e.g. ``LR_bicubic_X2``."""
    return f"LR_{degradation}_X{scale}"


def parse_lr_kind(kind: str) -> tuple[str, int]:
    """``(degradation, scale)`` of an LR database kind: the inverse of :func:`lr_kind`."""
    _, degradation, scale = kind.split("_")
    return degradation, int(scale[1:])


def database_name(modality: str, split: str, kind: str) -> str:
    """Folder name of one database, e.g. ``IXI_T1_train_HR.lmdb``."""
    return f"IXI_{modality}_{split}_{kind}.lmdb"


def manifest_name(modality: str) -> str:
    """Name of the manifest ``make_ixi_lmdb`` writes beside the databases: ``IXI_T1_split.json``."""
    return f"IXI_{modality}_split.json"


def parse_database_name(name: str) -> tuple[str, str, str] | None:
    """``(modality, split, kind)`` of a database folder name made by :func:`database_name`
    (e.g. ``('T1', 'train', 'LR_bicubic_X2')``); ``None`` for any other name."""
    match = _DATABASE_RE.match(PurePosixPath(str(name).rstrip("/")).name)
    return (match["modality"], match["split"], match["kind"]) if match else None


def kind_scale(kind: str) -> int:
    """The scale of a database kind: 1 for ``HR``, ``s`` for ``LR_<degradation>_X<s>``."""
    return 1 if kind == "HR" else int(kind.rsplit("_X", 1)[1])


def database_path(root: str, modality: str, split: str, scale: int | None = None,
                  degradation: str = "bicubic") -> str:
    """``root/IXI_<MOD>_<split>_HR.lmdb`` (``scale=None``) or the LR database of ``scale``."""
    kind = "HR" if scale is None else lr_kind(degradation, scale)
    return str(PurePosixPath(root) / database_name(modality, split, kind))
