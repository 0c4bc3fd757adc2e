"""The measurements behind ``w2amsn bench`` (:mod:`w2amsn_plugin.bench`): machine limits,
inference, training, data and whole-volume rows, each in its own module."""
from __future__ import annotations

from . import basicsr_models, data_path, inference, machine_limits, results, timing, training, volume

__all__ = ["basicsr_models", "data_path", "inference", "machine_limits", "results", "timing",
           "training", "volume"]
