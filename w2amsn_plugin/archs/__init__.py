"""Architectures of the W²AMSN plugin, registered in BasicSR's ARCH_REGISTRY on import: every
``*_arch.py`` of this folder is imported (:mod:`.discovery`), so a new network is one file.
``W2AMSN`` is the paper's network; the others are the methods of its Tables II and III for
1-channel MR. :data:`PRESETS` holds the configurations the options and tools use."""
from __future__ import annotations

from .presets import ABLATIONS, PRESETS, TABLE_II, Ablation, ablation, experiment_tag, preset, trainable
from .gray_baselines_arch import EDSRGray, RCANGray
from .w2amsn_arch import W2AMSN

__all__ = ["ABLATIONS", "Ablation", "EDSRGray", "PRESETS", "RCANGray", "TABLE_II", "W2AMSN", "ablation",
           "experiment_tag", "preset", "trainable"]
