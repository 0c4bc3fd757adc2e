"""Models of the W²AMSN plugin: ``MRSRModel`` (registered in BasicSR's ``MODEL_REGISTRY`` on
import) and the x8 self-ensemble it uses."""
from __future__ import annotations

from .mr_sr_model import MRSRModel
from .self_ensemble import self_ensemble

__all__ = ["MRSRModel", "self_ensemble"]
