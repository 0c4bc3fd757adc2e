"""Architecture discovery, the way BasicSR finds its own (``basicsr/archs/__init__.py``): every
``*_arch.py`` in this folder is imported when the package is imported, which registers its
networks in BasicSR's ``ARCH_REGISTRY``. A ``*_presets.py`` file holds the presets of an arch whose
table is too long to sit in its ``*_arch.py`` (W²AMSN's ablations).

A module that fails to import stops the package import with one line naming the file and the
error (:class:`ArchImportError`): a broken network is never silently missing from the registry.
"""
from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

__all__ = ["ArchImportError", "arch_files", "import_arch_modules"]

_HERE = Path(__file__).resolve().parent


class ArchImportError(ImportError):
    """An architecture module could not be imported; the message is one line naming the file."""


def arch_files(folder: Path = _HERE) -> list[Path]:
    """The ``*_arch.py`` files, then the ``*_presets.py`` files, of ``folder``, sorted by name."""
    return sorted(folder.glob("*_arch.py")) + sorted(folder.glob("*_presets.py"))


def import_arch_modules(package: str = __package__, folder: Path = _HERE) -> list[ModuleType]:
    """Import every file of :func:`arch_files` as ``package.<stem>``; raise
    :class:`ArchImportError` (one line: the file and the error) on the first that fails."""
    modules = []
    for path in arch_files(folder):
        try:
            modules.append(importlib.import_module(f"{package}.{path.stem}"))
        except Exception as err:  # any error in a network's file: name the file, once
            detail = str(err).splitlines()[0] if str(err) else ""
            raise ArchImportError(f"{path}: cannot import this architecture module: "
                                  f"{type(err).__name__}: {detail}") from err
    return modules
