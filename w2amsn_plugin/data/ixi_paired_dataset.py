"""``IXIPairedDataset``: the name the options files written before ``MRSliceDataset`` use for the
same dataset (docs/data.md); registered in BasicSR's ``DATASET_REGISTRY`` so they run as written.
Importing this module registers both names."""
from __future__ import annotations

from basicsr.utils.registry import DATASET_REGISTRY

from .mr_slice_dataset import MRSliceDataset

__all__ = ["IXIPairedDataset", "MRSliceDataset"]


@DATASET_REGISTRY.register()
class IXIPairedDataset(MRSliceDataset):
    """:class:`~.mr_slice_dataset.MRSliceDataset` under its former name (same options, items and
    checks)."""
