"""The provenance record of a ``w2amsn infer`` result: the JSON sidecar written beside every output
(``sr.nii.gz`` -> ``sr.json``, in the spirit of BIDS derivatives) and what ``--dry-run --json``
prints. docs/inference.md lists its keys; :data:`SCHEMA` names their version."""
from __future__ import annotations

import datetime
import hashlib
import json
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = ["SCHEMA", "TOOL", "sha256_file", "package_versions", "tool_version", "now_utc", "to_json"]

SCHEMA = "w2amsn-infer/1"
TOOL = "w2amsn infer"
_PACKAGES = ("w2amsn_plugin", "torch", "basicsr", "nibabel", "numpy")


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of the file at ``path``."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def _version(package: str) -> str:
    module = __import__(package)
    version = getattr(module, "__version__", None)
    if version is None:
        try:
            version = metadata.version(package)
        except metadata.PackageNotFoundError:
            version = "unknown"
    return str(version)


def package_versions() -> dict[str, str]:
    """Versions of the packages that shape a result, and Python's."""
    return {**{name: _version(name) for name in _PACKAGES}, "python": platform.python_version()}


def tool_version() -> str:
    """``w2amsn_plugin <version>``, as written into the image's ``descrip``."""
    return f"w2amsn_plugin {_version('w2amsn_plugin')}"


def now_utc() -> str:
    """The current UTC time, ISO 8601 to the second."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def to_json(record: dict[str, Any]) -> str:
    """The record as indented JSON (paths and NumPy scalars as plain values)."""
    def plain(value: Any) -> Any:
        if isinstance(value, Path):
            return str(value)
        if hasattr(value, "item"):  # NumPy scalars
            return value.item()
        if hasattr(value, "tolist"):
            return value.tolist()
        raise TypeError(f"{type(value).__name__} is not JSON serialisable")

    return json.dumps(record, indent=1, default=plain) + "\n"
