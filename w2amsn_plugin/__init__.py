"""W²AMSN for BasicSR: importing this package registers the plugin's architectures, datasets,
metrics and models in BasicSR's registries and makes BasicSR 1.4.2 work on current
torch/torchvision (:mod:`w2amsn_plugin.compat`).

Both happen when BasicSR is imported, at once if it already is: importing the package itself
loads neither torch nor BasicSR (``w2amsn --help`` answers at once), and the registries hold the
plugin's names before their first look-up (:mod:`w2amsn_plugin.registration`). The subpackages
``archs``, ``data``, ``metrics`` and ``models`` are imported on first use of the attribute.
"""
from __future__ import annotations

import importlib
from typing import Any

from . import compat, registration

compat.apply()
compat.after_basicsr(registration.install)

__version__ = "0.1.0"
__all__ = ["archs", "data", "metrics", "models", "__version__"]


def __getattr__(name: str) -> Any:
    if name in registration.SUBPACKAGES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
