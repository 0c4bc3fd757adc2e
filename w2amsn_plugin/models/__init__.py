"""The model class of the W²AMSN plugin: ``MRSRModel`` (registered in BasicSR's ``MODEL_REGISTRY``
on import; x8 self-ensemble from :mod:`w2amsn_plugin.archs.self_ensemble`)."""
from __future__ import annotations

from .mr_sr_model import MRSRModel

__all__ = ["MRSRModel"]
