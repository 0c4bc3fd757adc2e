"""Output paths checked before the work: a command that will write a file or fill a folder asks
here first, so a long run never ends in a ``PermissionError`` with its results lost
(docs/reliability.md). Writability is tested by creating (and removing) a temporary file, which
also holds for root and for read-only file systems, where permission bits say nothing."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["output_file_problem", "output_folder_problem"]


def _existing_ancestor(path: Path) -> Path:
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    return parent


def _write_problem(folder: Path) -> str | None:
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".w2amsn-write-test-"):
            pass
    except OSError as err:
        return f"cannot write in {folder} ({err.strerror or err})"
    return None


def output_file_problem(path: str | os.PathLike) -> str | None:
    """Why ``path`` cannot be written as a file (one line naming it), or None. Its folder must
    exist (commands do not create folders for a single output file)."""
    path = Path(path)
    if path.is_dir():
        return f"{path}: is a folder; give a file name"
    if not path.parent.exists():
        ancestor = _existing_ancestor(path)
        if not ancestor.is_dir():
            return f"{path}: {ancestor} is a file, not a folder"
        return f"{path}: its folder does not exist ({path.parent})"
    if not path.parent.is_dir():
        return f"{path}: {path.parent} is not a folder"
    problem = _write_problem(path.parent)
    return f"{path}: {problem}" if problem else None


def output_folder_problem(path: str | os.PathLike) -> str | None:
    """Why ``path`` cannot be used (or created) as an output folder, or None."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        return f"{path}: is a file, not a folder"
    target = path if path.is_dir() else _existing_ancestor(path)
    if not target.is_dir():
        return f"{path}: {target} is a file, so the folder cannot be created below it"
    problem = _write_problem(target)
    return f"{path}: {problem}" if problem else None
