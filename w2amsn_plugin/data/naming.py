"""The names of the slice databases, the one place they are spelled out: ``make_ixi_lmdb`` writes
them, :mod:`w2amsn_plugin.experiments` puts them into every options file, the demo and the
benchmarks read them."""
from __future__ import annotations

from pathlib import PurePosixPath

__all__ = ["database_name", "database_path", "lr_kind"]


def lr_kind(degradation: str, scale: int) -> str:
    """Database kind of an LR set, e.g. ``LR_bicubic_X2``."""
    return f"LR_{degradation}_X{scale}"


def database_name(modality: str, split: str, kind: str) -> str:
    """Folder name of one database, e.g. ``IXI_T1_train_HR.lmdb``."""
    return f"IXI_{modality}_{split}_{kind}.lmdb"




def database_path(root: str, modality: str, split: str, scale: int | None = None,
                  degradation: str = "bicubic") -> str:
    """``root/IXI_<MOD>_<split>_HR.lmdb`` (``scale=None``) or the LR database of ``scale``."""
    kind = "HR" if scale is None else lr_kind(degradation, scale)
    return str(PurePosixPath(root) / database_name(modality, split, kind))
