"""The one safe writer of files and the one file hash of the package.

Every file the package writes in one piece (text, CSV, JSON, figures, checkpoints, inference
outputs) goes to a hidden temporary file in the target folder, named so it is obviously temporary
(:func:`temp_path`: ``.<name>.w2amsn-partial-<pid><suffix>``, cut to fit the file system's name
limit), is flushed to disk and renamed onto the target (:func:`atomic_write`), so a reader never
sees a half-written file and a killed writer leaves no file under the target's name.
:func:`sha256_file` is the hash every manifest, download and provenance record uses."""
from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
from pathlib import Path
from typing import Any, Callable, Sequence

__all__ = ["TEMP_MARK", "name_max", "temp_path", "atomic_write", "sha256_file", "write_text",
           "write_csv", "write_json", "write_figure"]

#: the part of a temporary file's name that marks it as one (followed by the writer's pid)
TEMP_MARK = ".w2amsn-partial-"
_CHUNK = 1 << 20


def name_max(folder: str | os.PathLike) -> int:
    """The longest file name (bytes) the file system of ``folder`` (or its nearest existing
    ancestor) takes; 255 where it does not say."""
    folder = Path(folder)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        return int(os.pathconf(folder, "PC_NAME_MAX"))
    except (OSError, ValueError):
        return 255


def temp_path(final: str | os.PathLike, suffix: str | None = None, pid: int | None = None) -> Path:
    """The hidden temporary name ``final`` is written under by process ``pid`` (default: this
    one): ``.<stem>.w2amsn-partial-<pid><suffix>`` in ``final``'s folder. ``suffix`` (default:
    ``final``'s last suffix) is kept so format-sniffing writers (nibabel, matplotlib) see the same
    format; the stem is cut so the name fits the file system's limit."""
    final = Path(final)
    suffix = final.suffix if suffix is None else suffix
    stem = final.name[:-len(suffix)] if suffix and final.name.endswith(suffix) else final.name
    tail = f"{TEMP_MARK}{os.getpid() if pid is None else pid}{suffix}"
    room = name_max(final.parent) - 1 - len(os.fsencode(tail))
    stem_bytes = os.fsencode(stem)[:max(room, 0)]
    return final.with_name("." + stem_bytes.decode("utf-8", "ignore") + tail)


def _fsync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems do not sync folders
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None], suffix: str | None = None,
                 *, fsync: bool = True) -> None:
    """Create ``path`` atomically: ``write(temporary)`` writes the content to :func:`temp_path`
    (same folder, so the rename cannot cross file systems), which is then flushed to disk
    (``fsync``) and renamed onto ``path`` with :func:`os.replace`. The folder is created when
    missing; on any error (or Ctrl-C) the temporary file is removed and ``path`` is untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path, suffix)
    try:
        write(tmp)
        if fsync:
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    if fsync:
        _fsync_folder(path.parent)


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of the file at ``path``, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _cell(value: Any) -> Any:
    return "" if isinstance(value, float) and not math.isfinite(value) else value


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) atomically (:func:`atomic_write`)."""
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_figure(fig: Any, path: str | os.PathLike, dpi: int = 110) -> None:
    """Save a matplotlib figure as PNG atomically (:func:`atomic_write`) and close it."""
    import matplotlib.pyplot as plt

    try:
        atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=dpi, format="png"), suffix=".png")
    finally:
        plt.close(fig)


def write_csv(path: str | os.PathLike, rows: Sequence[dict[str, Any]]) -> None:
    """Write ``rows`` (same keys each) as CSV atomically; NaN/inf become empty cells."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]) if rows else [], lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: _cell(v) for k, v in row.items()} for row in rows)
    write_text(path, buf.getvalue())


def write_json(path: str | os.PathLike, data: Any) -> None:
    """Write ``data`` as indented JSON atomically (floats that are not finite become ``NaN``)."""
    write_text(path, json.dumps(data, indent=1, default=float) + "\n")
