"""Where the volumes of a dataset are: an IXI download, a BIDS dataset or any folder of 3-D MR
volumes nibabel reads (docs/data.md, "Your own NIfTI or BIDS folder").

Each layout gives a :class:`Source`: its volumes, each with a volume id (unique; the first part of
its slice keys, :func:`w2amsn_plugin.protocol.slice_key`) and a subject (the unit of the split: one
subject never appears in two splits), plus one warning line per file it skipped.

- ``ixi``: ``IXI<id>-<site>-<session>-<MOD>.nii[.gz]`` files (:func:`~.ixi.scan_ixi_tree`); the
  subject is the volume.
- ``bids`` (a folder with ``dataset_description.json``): ``sub-*/[ses-*/]anat/*_<suffix>.nii[.gz]``;
  the subject is the BIDS subject (``sub-01``), the volume id the file name without the suffix
  (``sub-01_ses-2_run-1``).
- ``folder``: every ``.nii``, ``.nii.gz``, ``.mgh``, ``.mgz`` file found recursively, one volume per
  file, the file's stem as the volume id and the subject (``subject_regex``: the subject is the
  regex's group ``subject``, or its first group, searched in the stem).

Folders are searched recursively, hidden folders skipped, symbolic links to folders followed (each
real folder once).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from .ixi import IXIDataError, scan_ixi_tree
from .walk import walk_files

__all__ = ["LAYOUTS", "VOLUME_SUFFIXES", "Volume", "Source", "detect_layout",
           "scan_source", "volume_stem", "safe_label"]

#: ``layout`` values of :func:`scan_source` (``auto``: ``bids`` when the root has a
#: ``dataset_description.json``, else ``folder``)
LAYOUTS = ("auto", "bids", "folder", "ixi")
#: file name endings of the volumes a plain folder is searched for (nibabel reads them all)
VOLUME_SUFFIXES = (".nii.gz", ".nii", ".mgz", ".mgh.gz", ".mgh")
_UNSAFE = re.compile(r"[^A-Za-z0-9-]+")


@dataclass(frozen=True)
class Volume:
    """One volume file: ``volume`` its id (letters, digits, ``-`` and ``_``), ``subject`` its
    split unit."""

    volume: str
    subject: str
    path: Path


@dataclass
class Source:
    """The volumes of one dataset and modality, by volume id, and the skipped files' warnings."""

    layout: str
    root: Path
    volumes: dict[str, Volume]
    warnings: list[str] = field(default_factory=list)

    def subjects(self) -> list[str]:
        """The subjects, sorted."""
        return sorted({v.subject for v in self.volumes.values()})


def safe_label(text: str) -> str:
    """``text`` with every run of characters other than letters, digits and ``-`` made one ``-``
    (a dataset label, :data:`w2amsn_plugin.protocol.LABEL_RE`)."""
    return _UNSAFE.sub("-", text).strip("-") or "data"


def _safe_id(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-") or "volume"


def volume_stem(name: str) -> str | None:
    """The file name without its volume ending (:data:`VOLUME_SUFFIXES`), or None for another
    file."""
    for suffix in VOLUME_SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return None


def detect_layout(root: Path) -> str:
    """``bids`` when ``root`` holds ``dataset_description.json``, else ``folder``."""
    return "bids" if (root / "dataset_description.json").is_file() else "folder"


def scan_source(root: str | os.PathLike, layout: str, modality: str,
                subject_regex: str | None = None) -> Source:
    """The :class:`Source` of ``root`` (module docstring). ``modality`` is the IXI modality
    (``ixi``), the BIDS suffix (``bids``); a plain folder does not use it.

    Raises :class:`~.ixi.IXIDataError` (one line) when ``root`` is not a folder, the regex is
    invalid or does not match a file's stem, or two files give one volume id.
    """
    root = Path(root)
    if layout not in LAYOUTS:
        raise IXIDataError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    if layout == "ixi":
        files, warnings = scan_ixi_tree(root, modality)
        return Source("ixi", root, {s: Volume(s, s, p) for s, p in files.items()}, warnings)
    if not root.is_dir():
        raise IXIDataError(f"{root}: dataset root is not a folder")
    if layout == "auto":
        layout = detect_layout(root)
    if layout == "bids":
        return _scan_bids(root, modality)
    return _scan_folder(root, subject_regex)


def _add(volumes: dict[str, Volume], volume: Volume) -> None:
    if volume.volume in volumes:
        raise IXIDataError(f"{volume.path}: gives the volume id {volume.volume!r} that "
                           f"{volumes[volume.volume].path} already has; rename one of them")
    volumes[volume.volume] = volume


def _scan_bids(root: Path, suffix: str) -> Source:
    """``sub-*/[ses-*/]anat/*_<suffix>.nii[.gz]`` of a BIDS dataset."""
    volumes: dict[str, Volume] = {}
    warnings: list[str] = []
    ending = re.compile(rf"^(?P<entities>sub-[A-Za-z0-9]+(?:_[A-Za-z0-9]+-[A-Za-z0-9]+)*)"
                        rf"_{re.escape(suffix)}\.nii(?:\.gz)?$")
    for path in walk_files(root):
        rel = path.relative_to(root).parts
        if not rel[0].startswith("sub-") or len(rel) not in (3, 4) or rel[-2] != "anat":
            continue
        if len(rel) == 4 and not rel[1].startswith("ses-"):
            continue
        match = ending.match(path.name)
        if match is None:
            continue
        subject = match["entities"].split("_")[0]
        if subject != rel[0]:
            warnings.append(f"{path}: skipped, its subject {subject} is not its folder {rel[0]}")
            continue
        _add(volumes, Volume(match["entities"], subject, path))
    return Source("bids", root, dict(sorted(volumes.items())), warnings)


def _scan_folder(root: Path, subject_regex: str | None) -> Source:
    """One volume per file of a plain folder; the stem is the volume id and the subject."""
    try:
        regex = re.compile(subject_regex) if subject_regex else None
    except re.error as err:
        raise IXIDataError(f"--subject-regex {subject_regex!r}: not a regular expression ({err})"
                           ) from None
    volumes: dict[str, Volume] = {}
    for path in walk_files(root):
        stem = volume_stem(path.name)
        if stem is None:
            continue
        subject = stem
        if regex is not None:
            match = regex.search(stem)
            if match is None:
                raise IXIDataError(f"{path}: --subject-regex {subject_regex!r} does not match "
                                   f"its stem {stem!r}")
            groups = match.groupdict()
            subject = groups.get("subject") or (match.group(1) if match.groups() else match[0])
        _add(volumes, Volume(_safe_id(stem), subject, path))
    return Source("folder", root, dict(sorted(volumes.items())))
