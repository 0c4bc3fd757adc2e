"""Architectures of the W²AMSN plugin, registered in BasicSR's ARCH_REGISTRY on import:
``W2AMSN`` (the paper's network) and the 1-channel baselines ``EDSRGray`` and ``RCANGray``;
:data:`PRESETS` holds the configurations the options and tools use."""
from __future__ import annotations

from . import gray_baselines, w2amsn_arch  # noqa: F401  (registration side effects)
from .gray_baselines import EDSRGray, RCANGray
from .presets import ABLATIONS, PRESETS, Ablation, ablation, preset
from .w2amsn_arch import W2AMSN

__all__ = ["ABLATIONS", "Ablation", "EDSRGray", "PRESETS", "RCANGray", "W2AMSN", "ablation", "preset"]
