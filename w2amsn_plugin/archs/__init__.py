"""Architectures of the W²AMSN plugin, registered in BasicSR's ARCH_REGISTRY on import:
``W2AMSN`` (the paper's network) and the 1-channel baselines ``EDSRGray`` and ``RCANGray``."""
from __future__ import annotations

from . import w2amsn_arch  # noqa: F401  (registers W2AMSN)
from .w2amsn_arch import W2AMSN

__all__ = ["W2AMSN"]
