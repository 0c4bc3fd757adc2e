"""The data protocol: the one owner of the paper's data settings and of the names of the files a
prepared dataset is written into (paper section IV-A; docs/data.md, "The protocol object").

What this module owns (no other module spells these facts; import them from here):

- :class:`DataProtocol` (frozen): how volumes become slices and databases: the modalities of the
  paper (IXI PD, T1, T2), the scales (x2, x3, x4), the crop ``(width, height, depth)`` =
  240 x 240 pixels x 96 slices per volume, the plane (``acquisition``), the slice selection
  (``head``), the normalisation percentile (99.5), the storage bits (16), the LR degradations
  (``bicubic``), and the subject split (:class:`Split`: 500 train, 70 test, 6 validation, seed 0).
  :data:`PAPER` is the paper's protocol; commands take their defaults from it.
- The names: database folders ``<dataset>_<modality>_<split>_<kind>.lmdb`` (:func:`database_name`;
  IXI's are ``IXI_T1_train_HR.lmdb``, ``IXI_T1_train_LR_bicubic_X2.lmdb``), the manifest beside them
  ``<dataset>_<modality>_split.json`` (:func:`manifest_name`), the staging folder of an unfinished
  run (:func:`staging_name`), the protocol stamp in each database folder (:data:`STAMP_FILE`), the
  slice keys ``<volume>_<modality>_s<NNN>`` (:func:`slice_key`).
- The manifest: :func:`read_manifest` is the one reader of a manifest file (one-line
  :class:`ManifestError` for an unreadable one); :func:`manifest_beside` finds the manifest of a
  database folder by name.

``modality`` in the names is a label without ``_``: IXI's ``T1``/``T2``/``PD``, or a BIDS suffix
such as ``T1w``; ``dataset`` likewise (``IXI``, or a name chosen by ``w2amsn prepare``).
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, NamedTuple

__all__ = ["ACQUISITION", "Split", "DataProtocol", "PAPER", "IXI_DATASET", "SPLITS", "STAMP_FILE", "LABEL_RE",
           "ManifestError", "DatabaseName", "lr_kind", "parse_lr_kind", "kind_scale",
           "database_name", "database_path", "parse_database_name", "manifest_name",
           "staging_name", "slice_key", "parse_slice_key", "manifest_beside", "read_manifest",
           "ANATOMICAL_PLANES", "PLANES", "SLICE_SELECTIONS", "DEGRADATIONS", "BIT_DEPTHS",
           "DEFAULT_COMPRESS_LEVEL", "SMALL_VOLUME_RULES"]

#: the dataset label of IXI's databases (``IXI_<MOD>_...``)
IXI_DATASET = "IXI"
#: the split names, in the order subjects are assigned to them (:mod:`w2amsn_plugin.data.split`)
SPLITS = ("test", "val", "train")
#: file in each database folder naming the protocol id it was built with
STAMP_FILE = "w2amsn_protocol.json"
#: a dataset or modality label: letters, digits and ``-`` (``_`` separates the parts of a name)
LABEL_RE = re.compile(r"^[A-Za-z0-9-]+$")
#: the anatomical planes, by the RAS+ axis normal to them (:mod:`w2amsn_plugin.data.planes`)
ANATOMICAL_PLANES: dict[str, int] = {"sagittal": 0, "coronal": 1, "axial": 2}
#: the plane each volume was acquired in (read from its header): the paper's
ACQUISITION = "acquisition"
#: every value ``plane`` takes (the paper's first: the acquisition plane)
PLANES: tuple[str, ...] = (ACQUISITION, *ANATOMICAL_PLANES)
#: how the ``depth`` slices of a volume are chosen (:func:`w2amsn_plugin.data.ixi.crop_stack`)
SLICE_SELECTIONS = ("head", "central")
#: the LR degradations (:mod:`w2amsn_plugin.data.degradations`)
DEGRADATIONS = ("bicubic", "truncation")
#: the bit depths a slice may be stored with (the paper's first) and the PNG compression level
BIT_DEPTHS = (16, 8)
DEFAULT_COMPRESS_LEVEL = 1
#: what prepare does with a volume whose plane is smaller than the crop
SMALL_VOLUME_RULES = ("pad", "skip", "refuse")


@dataclass(frozen=True)
class Split:
    """How subjects are split (paper section IV-A: 500 / 70 / 6 volumes per modality); ``seed``
    orders the subjects (:func:`w2amsn_plugin.data.split.split_subjects`)."""

    n_train: int = 500
    n_test: int = 70
    n_val: int = 6
    seed: int = 0


@dataclass(frozen=True)
class DataProtocol:
    """The data settings of a prepared dataset; the defaults are the paper's (section IV-A).

    ``crop`` is ``(width, height, depth)``: slices ``width`` x ``height`` pixels of ``plane``,
    ``depth`` slices per volume chosen by ``slice_selection`` (``head``: centred on the head,
    ``central``: the middle ones); ``percentile`` clips each volume's intensities before scaling to
    [0, 1]; ``bits`` of PNG storage; an LR database per degradation and scale.
    """

    modalities: tuple[str, ...] = ("PD", "T1", "T2")
    scales: tuple[int, ...] = (2, 3, 4)
    crop: tuple[int, int, int] = (240, 240, 96)
    plane: str = ACQUISITION
    slice_selection: str = "head"
    percentile: float = 99.5
    bits: int = 16
    degradations: tuple[str, ...] = ("bicubic",)
    split: Split = field(default_factory=Split)

    @property
    def slices_per_volume(self) -> int:
        """Slices kept per volume (the crop's depth, 96 in the paper)."""
        return self.crop[2]


#: the paper's protocol
PAPER = DataProtocol()


class ManifestError(ValueError):
    """A manifest that cannot be read; ``str(err)`` is one line naming the file."""


class DatabaseName(NamedTuple):
    """The parts of a database folder name (:func:`parse_database_name`)."""

    modality: str
    split: str
    kind: str
    dataset: str


_DATABASE_RE = re.compile(r"^(?P<dataset>[A-Za-z0-9-]+)_(?P<modality>[A-Za-z0-9-]+)_"
                          r"(?P<split>train|val|test)_(?P<kind>HR|LR_[a-z]+_X\d+)\.lmdb$")
_SLICE_KEY_RE = re.compile(r"^(?P<volume>[^.]+)_(?P<modality>[A-Za-z0-9-]+)_s(?P<index>\d{3,})$")


def lr_kind(degradation: str, scale: int) -> str:
    """Database kind of an LR set, e.g. ``LR_bicubic_X2``."""
    return f"LR_{degradation}_X{scale}"


def parse_lr_kind(kind: str) -> tuple[str, int]:
    """``(degradation, scale)`` of an LR database kind: the inverse of :func:`lr_kind`."""
    _, degradation, scale = kind.split("_")
    return degradation, int(scale[1:])


def kind_scale(kind: str) -> int:
    """The scale of a database kind: 1 for ``HR``, ``s`` for ``LR_<degradation>_X<s>``."""
    return 1 if kind == "HR" else int(kind.rsplit("_X", 1)[1])


def database_name(modality: str, split: str, kind: str, dataset: str = IXI_DATASET) -> str:
    """Folder name of one database, e.g. ``IXI_T1_train_HR.lmdb`` or ``ds001_T1w_val_HR.lmdb``."""
    return f"{dataset}_{modality}_{split}_{kind}.lmdb"


def database_path(root: str, modality: str, split: str, scale: int | None = None,
                  degradation: str = "bicubic", dataset: str = IXI_DATASET) -> str:
    """``root/<dataset>_<MOD>_<split>_HR.lmdb`` (``scale=None``) or the LR database of ``scale``."""
    kind = "HR" if scale is None else lr_kind(degradation, scale)
    return str(PurePosixPath(root) / database_name(modality, split, kind, dataset))


def parse_database_name(name: str | os.PathLike) -> DatabaseName | None:
    """The parts of a database folder name made by :func:`database_name` (the last path part of
    ``name``), e.g. ``('T1', 'train', 'LR_bicubic_X2', 'IXI')``; ``None`` for any other name."""
    match = _DATABASE_RE.match(PurePosixPath(str(name).rstrip("/")).name)
    if match is None:
        return None
    return DatabaseName(match["modality"], match["split"], match["kind"], match["dataset"])


def manifest_name(modality: str, dataset: str = IXI_DATASET) -> str:
    """Name of the manifest written beside the databases, e.g. ``IXI_T1_split.json``."""
    return f"{dataset}_{modality}_split.json"


def staging_name(modality: str, dataset: str = IXI_DATASET) -> str:
    """Name of the hidden folder an unfinished run keeps its work in: ``.IXI_T1_staging``."""
    return f".{dataset}_{modality}_staging"


def slice_key(volume: str, modality: str, index: int) -> str:
    """Key of slice ``index`` (0-based in the cropped stack): ``IXI002-Guys-0828_T1_s042``
    (no dots: BasicSR cuts keys at the first ``.``)."""
    return f"{volume}_{modality}_s{index:03d}"


def parse_slice_key(key: str) -> tuple[str, str, int]:
    """``(volume, modality, slice index)`` of a key made by :func:`slice_key`.

    Raises ValueError for a key that does not follow the pattern.
    """
    match = _SLICE_KEY_RE.match(key)
    if match is None:
        raise ValueError(f"{key!r} is not a slice key <volume>_<modality>_s<NNN>")
    return match["volume"], match["modality"], int(match["index"])


def manifest_beside(dataroot: str | os.PathLike) -> Path:
    """The manifest a database folder ``dataroot`` belongs to (by its name; it may not exist).

    Raises :class:`ManifestError` when ``dataroot`` is not named like a prepared database.
    """
    parsed = parse_database_name(dataroot)
    if parsed is None:
        raise ManifestError(f"{dataroot}: not a database name <dataset>_<modality>_<split>_<kind>"
                            ".lmdb, so it has no manifest")
    return Path(dataroot).parent / manifest_name(parsed.modality, parsed.dataset)


def read_manifest(path: str | os.PathLike) -> dict[str, Any]:
    """The manifest at ``path`` as a dict (its ``"protocol"`` record, splits, volumes, databases).

    Raises :class:`ManifestError`, one line naming the file, when it is missing, unreadable, not
    JSON, or not a JSON object.
    """
    try:
        manifest = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ManifestError(f"{path}: manifest not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ManifestError(f"{path}: unreadable manifest ({err})") from None
    if not isinstance(manifest, dict):
        raise ManifestError(f"{path}: not a manifest (a JSON object expected)")
    return manifest
