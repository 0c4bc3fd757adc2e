"""The plugin's entries in BasicSR's registries, there before any look-up and without importing
torch before BasicSR is needed.

``import w2amsn_plugin`` calls :func:`install` once BasicSR is imported (at once if it already
is; :func:`w2amsn_plugin.compat.after_basicsr`): the first question put to any of BasicSR's
registries (``get``, ``in``, iteration, ``keys``) first imports the plugin's registering
subpackages (:data:`SUBPACKAGES`), so ``build_network``, ``build_dataset`` and the options check
see the plugin's names. Importing a subpackage yourself registers its names at once, as before.
"""
from __future__ import annotations

import functools
import importlib
from typing import Any, Callable

__all__ = ["SUBPACKAGES", "install", "register_all"]

#: the subpackages whose import registers the plugin's architectures, datasets, metrics, models
SUBPACKAGES = ("archs", "data", "metrics", "models")
#: the modules that register them (``data`` imports its submodules lazily)
_REGISTERING = ("archs", "data.ixi_paired_dataset", "metrics", "models", "selfsr.patch_dataset")
_STATE = {"installed": False, "registered": False, "registering": False}


def register_all() -> None:
    """Import every registering subpackage of the plugin (once)."""
    if _STATE["registered"] or _STATE["registering"]:
        return
    _STATE["registering"] = True  # a look-up during these imports must not start them again
    try:
        for name in _REGISTERING:
            importlib.import_module(f"w2amsn_plugin.{name}")
        _STATE["registered"] = True
    finally:
        _STATE["registering"] = False


def _registering(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        register_all()
        return method(self, *args, **kwargs)

    return wrapper


def install() -> None:
    """Make every look-up in BasicSR's registries register the plugin first."""
    if _STATE["installed"]:
        return
    from basicsr.utils.registry import Registry

    for name in ("get", "__contains__", "__iter__", "keys"):
        setattr(Registry, name, _registering(getattr(Registry, name)))
    _STATE["installed"] = True
