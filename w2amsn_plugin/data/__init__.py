"""Data of the W²AMSN plugin: IXI preparation (:mod:`.prepare`) and the paired slice dataset
(:mod:`.ixi_paired_dataset`, registered in BasicSR's ``DATASET_REGISTRY`` on import)."""
from __future__ import annotations

from . import ixi_paired_dataset, normalization, samples  # noqa: F401  (registration)
from .ixi_paired_dataset import IXIPairedDataset

__all__ = ["IXIPairedDataset", "ixi_paired_dataset", "normalization", "samples"]
