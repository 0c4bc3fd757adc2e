"""Quick checks of a training/test dataset's LMDBs before BasicSR starts (docs/reliability.md):
the folder is an LMDB (``data.mdb`` + ``meta_info.txt``), its entry count matches
``meta_info.txt``, GT and LQ list the same keys (the same split), the shapes in ``meta_info.txt``
fit the scale, and the LQ slices are at least the training patch. Only ``meta_info.txt`` and the
LMDB header are read: no value is decoded (0.46 s for a 48,000-slice GT/LQ pair on 2 cores).
"""
from __future__ import annotations

import os
import re
from pathlib import Path

__all__ = ["LmdbCheckError", "read_meta_info", "check_lmdb", "check_paired_lmdbs"]

# BasicSR's meta_info.txt line: "KEY.png (h,w,c) compress_level" (basicsr/utils/lmdb_util.py)
_LINE = re.compile(r"^(?P<key>[^.\s]+)\.\S*\s+\((?P<h>\d+),\s*(?P<w>\d+),\s*(?P<c>\d+)\)")


class LmdbCheckError(ValueError):
    """A dataset database that BasicSR would fail on; the message is one line naming it."""


def read_meta_info(folder: str | os.PathLike) -> dict[str, tuple[int, int]]:
    """``{key: (h, w)}`` from an LMDB folder's ``meta_info.txt``."""
    meta = Path(folder, "meta_info.txt")
    shapes: dict[str, tuple[int, int]] = {}
    with open(meta, encoding="utf-8", errors="replace") as fin:
        for number, line in enumerate(fin, 1):
            if not line.strip():
                continue
            match = _LINE.match(line)
            if match is None:
                raise LmdbCheckError(f"{meta}: line {number} is not 'KEY.png (h,w,c) level': "
                                     f"{line.strip()[:60]!r}")
            shapes[match["key"]] = (int(match["h"]), int(match["w"]))
    if not shapes:
        raise LmdbCheckError(f"{meta}: lists no keys (an empty database?)")
    return shapes


def check_lmdb(folder: str | os.PathLike) -> dict[str, tuple[int, int]]:
    """Check that ``folder`` is a readable LMDB whose entry count is that of its
    ``meta_info.txt``; return the ``meta_info.txt`` shapes."""
    import lmdb

    from .lmdb_io import readonly_env

    folder = Path(folder)
    if not folder.is_dir():
        raise LmdbCheckError(f"{folder}: is not a folder (an LMDB is a folder with data.mdb)")
    for name in ("data.mdb", "meta_info.txt"):
        if not (folder / name).is_file():
            raise LmdbCheckError(f"{folder}: is not an LMDB database (no {name})")
    shapes = read_meta_info(folder)
    try:  # the process's shared read-only environment: py-lmdb refuses a second open of a path
        entries = readonly_env(folder).stat()["entries"]
    except lmdb.Error as err:
        raise LmdbCheckError(f"{folder}: data.mdb cannot be opened as an LMDB "
                             f"({str(err).splitlines()[0][:100]})") from None
    if entries != len(shapes):
        raise LmdbCheckError(f"{folder}: meta_info.txt lists {len(shapes)} keys but data.mdb holds "
                             f"{entries} values (an unfinished or mixed database?)")
    return shapes


def _sample(keys: set[str]) -> str:
    return sorted(keys)[0] if keys else ""


def check_paired_lmdbs(gt: str | os.PathLike, lq: str | os.PathLike, scale: int,
                       gt_size: int | None = None) -> None:
    """Check a GT/LQ pair: both LMDBs, the same keys, GT = ``scale`` x LQ for every key and
    (training, ``gt_size``) LQ slices at least ``gt_size / scale`` on each side."""
    gt_shapes, lq_shapes = check_lmdb(gt), check_lmdb(lq)
    only_gt, only_lq = set(gt_shapes) - set(lq_shapes), set(lq_shapes) - set(gt_shapes)
    if only_gt or only_lq:
        raise LmdbCheckError(f"{gt} and {lq}: different keys ({len(only_gt)} only in GT, e.g. "
                             f"{_sample(only_gt) or '-'}; {len(only_lq)} only in LQ, e.g. "
                             f"{_sample(only_lq) or '-'}): not the same split?")
    for key, (h, w) in lq_shapes.items():
        if gt_shapes[key] != (h * scale, w * scale):
            gh, gw = gt_shapes[key]
            raise LmdbCheckError(f"{lq}: {key} is {h}x{w} and {gh}x{gw} in {gt}: not scale "
                                 f"{scale} of the options (an x{gh / h:g} database?)")
    if gt_size is not None:
        patch = gt_size // scale
        small = [(k, s) for k, s in lq_shapes.items() if min(s) < patch]
        if small:
            key, (h, w) = small[0]
            raise LmdbCheckError(f"{lq}: {key} is {h}x{w}, smaller than the LQ training patch "
                                 f"{patch}x{patch} (gt_size {gt_size} / scale {scale}); lower "
                                 "gt_size")
