"""A small fake BIDS dataset from given NIfTI volumes (e.g. :func:`~.fake_ixi.make_fake_ixi_tree`'s
perturbed copies of the shipped real MR samples), for tests and for trying ``w2amsn prepare``.

Layout: ``dataset_description.json``; ``sub-01`` ... ``sub-NN`` with ``anat/sub-XX_T1w.nii.gz``;
subject 3 with two sessions (``ses-1``, ``ses-2``) instead; and three files a BIDS reader must
ignore: a ``T2w`` volume, a ``derivatives/`` copy and a volume outside ``anat/``.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Sequence

__all__ = ["make_fake_bids_tree"]


def make_fake_bids_tree(root: str | os.PathLike, volumes: Sequence[str | os.PathLike],
                        n_subjects: int = 6) -> Path:
    """Write the tree (module docstring) under ``root`` from ``volumes`` (at least
    ``n_subjects + 2`` ``.nii.gz`` files, used in order); return ``root``."""
    root, volumes = Path(root), [Path(v) for v in volumes]
    if n_subjects < 3 or len(volumes) < n_subjects + 2:
        raise ValueError(f"need n_subjects >= 3 and n_subjects + 2 volumes, got {n_subjects} "
                         f"and {len(volumes)}")
    root.mkdir(parents=True, exist_ok=True)
    (root / "dataset_description.json").write_text(
        json.dumps({"Name": root.name, "BIDSVersion": "1.8.0"}) + "\n")
    for i in range(1, n_subjects + 1):
        sub = f"sub-{i:02d}"
        if i == 3:
            for ses in (1, 2):
                anat = root / sub / f"ses-{ses}" / "anat"
                anat.mkdir(parents=True)
                shutil.copy(volumes[n_subjects + ses - 1], anat / f"{sub}_ses-{ses}_T1w.nii.gz")
            continue
        anat = root / sub / "anat"
        anat.mkdir(parents=True)
        shutil.copy(volumes[i - 1], anat / f"{sub}_T1w.nii.gz")
    extra = volumes[2]
    shutil.copy(extra, root / "sub-01" / "anat" / "sub-01_T2w.nii.gz")
    (root / "derivatives" / "sub-01" / "anat").mkdir(parents=True)
    shutil.copy(extra, root / "derivatives" / "sub-01" / "anat" / "sub-01_T1w.nii.gz")
    shutil.copy(extra, root / "sub-02" / "sub-02_T1w.nii.gz")
    return root
