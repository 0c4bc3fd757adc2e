"""Walking a dataset folder the way users expect: recursively, hidden folders skipped, symbolic
links to folders followed (a linked modality or subject folder is found), each real folder once."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

__all__ = ["walk_files"]


def walk_files(root: Path) -> Iterator[Path]:
    """Every file under ``root``, sorted per folder; hidden folders skipped; symbolic links to
    folders followed, each real folder once (a link loop ends there)."""
    seen: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            yield Path(dirpath) / name
