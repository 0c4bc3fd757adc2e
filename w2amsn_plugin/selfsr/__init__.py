"""Self-supervised super-resolution of one scan (``w2amsn self-sr``; SMORE: Zhao et al., Magn.
Reson. Imaging 2019 and IEEE TMI 2021), one job per module:

- :mod:`.geometry`: coarse axis, factor and output grid from the header;
- :mod:`.slice_profile`: the slice profile and the degradation it defines;
- :mod:`.training_pairs`: the scan's in-plane slices and their degraded partners;
- :mod:`.patch_dataset`: ``SelfSRPatchDataset``, BasicSR's dataset of the one volume;
- :mod:`.experiment`: the BasicSR options of a run; :mod:`.trainer`: BasicSR's trainer on them;
- :mod:`.warm_start`: the network of a ``--init`` checkpoint;
- :mod:`.through_plane`: inference on the two through-plane orientations (the inference engine);
- :mod:`.combine`: mean or Fourier burst accumulation of the orientations;
- :mod:`.scores`: held-out and self-consistency scores for the sidecar;
- :mod:`.pipeline`: one run end to end.
"""
from __future__ import annotations

from . import patch_dataset  # noqa: F401  (registers SelfSRPatchDataset)
from .errors import SelfSRError
from .pipeline import MODES, Plan, SelfSRSettings, plan_run, run_self_sr

__all__ = ["MODES", "Plan", "SelfSRError", "SelfSRSettings", "plan_run", "run_self_sr"]
