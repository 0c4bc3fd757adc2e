"""The demo's volumes and how they are split (docs/demo.md): training volumes (with resliced
copies of isotropic ones, so their three planes are all training slices), one validation volume
that selects the checkpoint, and test scans it never trains or validates on."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..data.demo_testset import DemoScan

__all__ = ["DemoSources", "shipped_sources", "folder_sources", "build_demo_tree"]

#: resliced copies of an isotropic training volume: site suffix -> axis order of the RAS array
#: (the copy's axial slices are the source's coronal / sagittal slices)
_PLANE_COPIES = (("Coronal", (0, 2, 1)), ("Sagittal", (2, 1, 0)))


@dataclass(frozen=True)
class DemoSources:
    """``train``: (IXI-style subject, file) pairs; ``val`` and ``test``: one row per scan."""

    train: tuple[tuple[str, Path], ...]
    val: tuple[DemoScan, ...]
    test: tuple[DemoScan, ...]


def shipped_sources() -> DemoSources:
    """The shipped sample: the MNI152 2009a template trains, Colin27 (another brain, with skull)
    validates, and two single real 2 mm scans of other subjects, scanners and contrasts test."""
    from ..data.samples import sample_path

    return DemoSources(
        train=(("IXI001-Demo-0001", sample_path("mni152_2009a_t1")),),
        val=(DemoScan("Colin27", str(sample_path("colin27_t1")), "T1 average of one subject, 1 mm"),),
        test=(DemoScan("EPI-2mm", str(sample_path("nibabel_epi")),
                       "gradient-echo EPI (T2*) of a human head, 2 mm (nibabel)"),
              DemoScan("DWI-b0-2mm", str(sample_path("dipy_b0")),
                       "b=0 (T2) image of a human diffusion scan, 2 mm (dipy)")))


def folder_sources(folder: Path) -> DemoSources:
    """Every ``*.nii``/``*.nii.gz`` of ``folder`` (sorted by name): the last validates, the one
    before it tests, the rest train. Raises SystemExit (one line) with fewer than three."""
    files = sorted(p for p in Path(folder).iterdir()
                   if p.name.endswith((".nii", ".nii.gz")) and p.is_file())
    if len(files) < 3:
        raise SystemExit(f"demo: {folder}: needs at least three NIfTI volumes (to train on, to "
                         f"validate on and to test on), found {len(files)}")
    scans = [DemoScan(p.name.split(".nii")[0], str(p.resolve()), "your volume") for p in files[-2:]]
    train = tuple((f"IXI{i + 1:03d}-Demo-{i + 1:04d}", f.resolve()) for i, f in enumerate(files[:-2]))
    return DemoSources(train=train, val=(scans[1],), test=(scans[0],))


def _plane_copies(subject: str, src: Path, tree: Path, modality: str) -> list[Path]:
    """Write the resliced copies of an isotropic volume (:data:`_PLANE_COPIES`) into ``tree``
    (kept when newer than ``src``); none for an anisotropic volume."""
    import nibabel as nib

    from ..data.ixi import load_canonical, open_volume
    from ..results.files import atomic_write

    img, _ = open_volume(src)
    zooms = [float(z) for z in img.header.get_zooms()[:3]]
    if max(zooms) > 1.1 * min(zooms):
        return []
    number, site, session = subject[3:].split("-")
    out, data, dtype = [], None, img.get_data_dtype()
    for suffix, axes in _PLANE_COPIES:
        path = tree / f"IXI{number}-{site}{suffix}-{session}-{modality}.nii.gz"
        if not (path.is_file() and path.stat().st_mtime >= src.stat().st_mtime):
            if data is None:
                data, _ = load_canonical(src)
            arr = np.transpose(data, axes)
            whole = np.issubdtype(dtype, np.integer) and np.array_equal(arr, np.round(arr))
            arr = arr.astype(dtype if whole else np.float32)
            copy = nib.Nifti1Image(arr, np.diag([*(zooms[a] for a in axes), 1.0]))
            atomic_write(path, lambda tmp, img=copy: nib.save(img, tmp), suffix=".nii.gz")
        out.append(path)
    return out


def build_demo_tree(tree: Path, modality: str, sources: Sequence[tuple[str, Path]],
                    planes: bool) -> list[Path]:
    """The training tree: a link per ``(subject, file)`` under its IXI name, plus the resliced
    copies when ``planes``; anything else named like an IXI volume is removed. Returns the files
    (sorted)."""
    tree.mkdir(parents=True, exist_ok=True)
    wanted = []
    for subject, src in sources:
        ext = ".nii.gz" if str(src).endswith(".gz") else ".nii"
        link = tree / f"{subject}-{modality}{ext}"
        if (link.is_symlink() or link.exists()) and link.resolve() != Path(src).resolve():
            link.unlink()
        if not link.exists():
            link.symlink_to(src)
        wanted.append(link)
        if planes:
            wanted += _plane_copies(subject, Path(src), tree, modality)
    for stale in tree.glob("IXI*.nii*"):
        if stale not in wanted:
            stale.unlink()
    return sorted(wanted)
