"""``python -m w2amsn_plugin.selfsr -opt OPTIONS.yml [--auto_resume]``: ``basicsr train`` with
:class:`~w2amsn_plugin.selfsr.patch_dataset.SelfSRPatchDataset` registered (what
:func:`w2amsn_plugin.selfsr.trainer.train` runs; also for resuming a run by hand)."""
from __future__ import annotations

import sys

from .trainer import main

sys.exit(main())
