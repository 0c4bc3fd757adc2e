"""W²AMSN for BasicSR: importing this package registers the plugin's architectures, datasets,
metrics and models in BasicSR's registries (after :mod:`w2amsn_plugin.compat` has made BasicSR
1.4.2 importable on current torch/torchvision)."""
from __future__ import annotations

from . import compat

compat.apply()

from . import archs, data, metrics, models  # noqa: E402,F401  (registration side effects)

__version__ = "0.1.0"
__all__ = ["archs", "data", "metrics", "models", "__version__"]
