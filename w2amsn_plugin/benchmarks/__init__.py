"""The measurements behind ``w2amsn bench`` (:mod:`w2amsn_plugin.bench`): machine limits,
inference, training, data, whole-volume and bf16-accuracy rows, each in its own module."""
from __future__ import annotations

from . import (basicsr_models, data_path, inference, machine_limits, precision, results, timing,
               training, volume)

__all__ = ["basicsr_models", "data_path", "inference", "machine_limits", "precision", "results",
           "timing", "training", "volume"]
