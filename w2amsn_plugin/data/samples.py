"""Paths of the real MR sample volumes shipped in ``w2amsn_plugin/sample_data`` (see its README).

Two licensed 1 mm T1 brain volumes (Colin27 from Debian's ``mricron-data``, the ICBM152 2009a
template from the nilearn wheel): small enough to ship, real enough to test the data pipeline, the
metrics and the demo on anatomy rather than noise.
"""
from __future__ import annotations

from importlib import resources
from pathlib import Path

__all__ = ["SAMPLE_VOLUMES", "SAMPLE_SCANS", "sample_path", "sample_paths"]

#: name -> file name in ``w2amsn_plugin/sample_data``
SAMPLE_VOLUMES: dict[str, str] = {
    "colin27_t1": "colin27_t1.nii.gz",
    "mni152_2009a_t1": "mni152_2009a_t1.nii.gz",
}

#: single real 2 mm scans of other subjects, scanners and contrasts (the demo's test rows):
#: name -> file name in ``w2amsn_plugin/sample_data``
SAMPLE_SCANS: dict[str, str] = {
    "nibabel_epi": "nibabel_example4d_epi_frame0.nii.gz",
    "dipy_b0": "dipy_s0_10slices.nii.gz",
}


def sample_path(name: str) -> Path:
    """Path of the shipped sample volume ``name`` (a key of :data:`SAMPLE_VOLUMES` or
    :data:`SAMPLE_SCANS`)."""
    files = {**SAMPLE_VOLUMES, **SAMPLE_SCANS}
    if name not in files:
        raise KeyError(f"unknown sample volume {name!r}; choose one of {sorted(files)}")
    path = Path(str(resources.files("w2amsn_plugin") / "sample_data" / files[name]))
    if not path.is_file():
        raise FileNotFoundError(f"{path}: shipped sample volume is missing (broken install?)")
    return path


def sample_paths() -> list[Path]:
    """Paths of all shipped sample volumes, in the order of :data:`SAMPLE_VOLUMES`."""
    return [sample_path(name) for name in SAMPLE_VOLUMES]
