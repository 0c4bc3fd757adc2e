"""Self-supervised super-resolution of one scan (``w2amsn self-sr``; SMORE: Zhao et al., Magn.
Reson. Imaging 2019 and IEEE TMI 2021), one job per module:

- :mod:`.geometry`: coarse axis, factor and output grid from the header;
- :mod:`.slice_profile`: the slice profile and the degradation it defines;
- :mod:`.profile_estimate`: the slices' effective thickness, estimated from the scan's spectra;
- :mod:`.in_plane`: the in-plane mode's degradations (MATLAB-bicubic, k-space truncation);
- :mod:`.training_pairs`: the scan's in-plane slices and their degraded partners;
- :mod:`.patch_dataset`: ``SelfSRPatchDataset``, BasicSR's dataset of the one volume;
- :mod:`.experiment`: the BasicSR options of a run; :mod:`.budget`: a wall time split into
  training and inference; :mod:`.trainer`: BasicSR's trainer on them;
- :mod:`.warm_start`: the network of a ``--init`` checkpoint;
- :mod:`.through_plane`: inference on the two through-plane orientations (the inference engine);
- :mod:`.combine`: mean or Fourier burst accumulation of the orientations;
- :mod:`.scores`: held-out and self-consistency scores for the sidecar;
- :mod:`.pipeline`: one run end to end;
- :mod:`.evaluation`: measuring a run against the truth on volumes made thick or coarse.

``SelfSRPatchDataset`` is registered with the plugin's other names (:mod:`w2amsn_plugin.registration`),
so ``basicsr train -opt <workdir>/<experiment>.yml --auto_resume`` runs or resumes a self-sr
experiment like any other.
"""
from __future__ import annotations

import importlib
from typing import Any

from .errors import SelfSRError

__all__ = ["MODES", "Plan", "SelfSRError", "SelfSRSettings", "plan_run", "run_self_sr"]

_PIPELINE = ("MODES", "Plan", "SelfSRSettings", "plan_run", "run_self_sr")


def __getattr__(name: str) -> Any:
    """The pipeline's names, imported on first use (registering the dataset stays light)."""
    if name in _PIPELINE:
        return getattr(importlib.import_module(f"{__name__}.pipeline"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
