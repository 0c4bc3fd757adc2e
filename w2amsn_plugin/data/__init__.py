"""Data of the W²AMSN plugin: preparation of slice databases (:mod:`.prepare`) and the paired
slice dataset (:mod:`.mr_slice_dataset`, also under its former name :mod:`.ixi_paired_dataset`;
both registered in BasicSR's ``DATASET_REGISTRY`` when it is imported,
and before BasicSR's first registry look-up: :mod:`w2amsn_plugin.registration`). Submodules are
imported on first use, so light ones (:mod:`.planes`, :mod:`.normalization`) load without BasicSR."""
from __future__ import annotations

import importlib
from typing import Any

__all__ = ["MRSliceDataset", "IXIPairedDataset", "mr_slice_dataset", "ixi_paired_dataset",
           "normalization", "samples"]


def __getattr__(name: str) -> Any:
    if name in ("MRSliceDataset", "IXIPairedDataset"):
        return getattr(importlib.import_module(".ixi_paired_dataset", __name__), name)
    if name in __all__:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
