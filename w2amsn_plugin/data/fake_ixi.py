"""A fake IXI download built from the shipped real MR samples, for tests, the demo and the bench.

:func:`make_fake_ixi_tree` writes ``IXI<id>-<site>-<session>-<MOD>.nii.gz`` files the way IXI
ships them, stored in IXI-like orientations (T1 sagittal, axis codes ``PSR``: first axis A-P,
second S-I, third L-R; T2/PD axial, ``LPS``) so the pipeline's reorientation is exercised, as int16
like IXI. With ``shape="ixi"`` the files have IXI's real geometry: T1 256x256x150 and T2/PD
256x256x130 as stored, at 0.9375 x 0.9375 x 1.2 mm (the third stored axis is the coarse one, so
the acquisition plane is T1's sagittal and T2/PD's axial); ``voxel_mm`` gives any stored voxel
size to smaller volumes (the anatomy keeps its voxels: the head is scaled, not resampled).

Each file is a copy of a sample volume (Colin27 or ICBM152, alternating), perturbed per subject
and modality so no two are equal: an integer shift of up to 3 voxels per axis, an intensity gain
and a modality-dependent intensity remapping (a smooth power curve; T2/PD are not real contrasts,
only distinct ones), and Rician noise. It is real anatomy, not IXI: it tests the code, not a model's accuracy.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Literal

import nibabel as nib
import numpy as np

from .ixi import IXI_MODALITIES
from .samples import SAMPLE_VOLUMES, sample_path

__all__ = ["IXI_STORAGE_AXCODES", "IXI_RAS_SHAPES", "IXI_VOXEL_MM", "fake_ixi_name",
           "make_fake_ixi_tree"]

#: orientation a modality is stored in (IXI: T1 sagittal, T2/PD axial)
IXI_STORAGE_AXCODES = {"T1": ("P", "S", "R"), "T2": ("L", "P", "S"), "PD": ("L", "P", "S")}
#: IXI's typical volume shape per modality, in canonical RAS order (x, y, z)
IXI_RAS_SHAPES = {"T1": (150, 256, 256), "T2": (256, 256, 130), "PD": (256, 256, 130)}
#: IXI's voxel size in mm, in stored axis order (the same for the three modalities)
IXI_VOXEL_MM = (0.9375, 0.9375, 1.2)
_SITES = ("Guys", "HH", "IOP")
_GAMMA = {"T1": 1.0, "T2": 0.6, "PD": 0.8}


def fake_ixi_name(index: int, modality: str) -> str:
    """IXI-style file name of fake subject ``index``, e.g. ``IXI100-Guys-1000-T1.nii.gz``."""
    return f"IXI{100 + index:03d}-{_SITES[index % 3]}-{1000 + index:04d}-{modality}.nii.gz"


def make_fake_ixi_tree(root: str | os.PathLike, n_subjects: int,
                       modalities: Iterable[str] = IXI_MODALITIES,
                       shape: tuple[int, int, int] | Literal["ixi"] | None = None,
                       skip: Iterable[tuple[int, str]] = (), seed: int = 0,
                       sources: Iterable[str | os.PathLike] | None = None,
                       voxel_mm: tuple[float, float, float] | None = None) -> list[Path]:
    """Write a fake IXI tree under ``root``; return the written paths (sorted).

    Args:
        root: output folder (created).
        n_subjects: subjects ``IXI100-Guys-1000``, ``IXI101-HH-1001``, ...
        modalities: which of T1/T2/PD to write for every subject.
        shape: the stored shape each source is centre-cropped/zero-padded to before
            perturbation, in the modality's stored axis order (:data:`IXI_STORAGE_AXCODES`), so
            ``(width, height, slices)`` of the stored acquisition plane for every modality
            (T1: A-P, S-I, L-R; T2/PD: L-R, A-P, S-I); ``"ixi"``: IXI's sizes
            (:data:`IXI_RAS_SHAPES`, 256x256x150 / 256x256x130 stored); ``None``: the source's
            own shape (181x217x181 / 197x233x189 in RAS order).
        skip: ``(subject index, modality)`` pairs not to write (subjects missing a modality).
        seed: perturbation seed (the same arguments give the same voxel data).
        sources: NIfTI volumes to copy from (default: the shipped samples).
        voxel_mm: voxel size in stored axis order; default :data:`IXI_VOXEL_MM` with
            ``shape="ixi"``, else the source's (1 mm).
    """
    import nibabel as nib

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    modalities = tuple(modalities)
    bad = [m for m in modalities if m not in IXI_MODALITIES]
    if bad:
        raise ValueError(f"unknown modalities {bad}; choose among {IXI_MODALITIES}")
    source_paths = [Path(p) for p in sources] if sources is not None else [
        sample_path(name) for name in SAMPLE_VOLUMES]
    canonical = [nib.as_closest_canonical(nib.load(str(p))) for p in source_paths]
    volumes = [np.asarray(img.dataobj, dtype=np.float32) for img in canonical]
    skip = set(skip)
    if voxel_mm is None and shape == "ixi":
        voxel_mm = IXI_VOXEL_MM
    written = []
    for index in range(n_subjects):
        for modality in modalities:
            if (index, modality) in skip:
                continue
            rng = np.random.default_rng([seed, index, list(IXI_STORAGE_AXCODES).index(modality)])
            src = index % len(volumes)
            target = IXI_RAS_SHAPES[modality] if shape == "ixi" else _ras_shape(shape, modality)
            vol = volumes[src] if target is None else _centre_fit(volumes[src], target)
            vol = _perturb(vol, modality, rng)
            affine = canonical[src].affine.copy()
            if target is not None:  # keep the centre voxel at the same world position
                offset = (np.array(volumes[src].shape) - np.array(target)) // 2
                affine[:3, 3] = affine[:3, :3] @ offset + affine[:3, 3]
            if voxel_mm is not None:
                affine = _with_voxel_size(affine, voxel_mm, modality)
            img = nib.Nifti1Image(vol, affine)
            img.header.set_data_dtype(np.int16)
            img.header.set_xyzt_units("mm", "sec")
            stored = img.as_reoriented(nib.orientations.ornt_transform(
                nib.orientations.axcodes2ornt(("R", "A", "S")),
                nib.orientations.axcodes2ornt(IXI_STORAGE_AXCODES[modality])))
            path = root / fake_ixi_name(index, modality)
            nib.save(stored, str(path))
            written.append(path)
    return sorted(written)


def _ras_shape(stored: tuple[int, int, int] | None, modality: str) -> tuple[int, int, int] | None:
    """The RAS-order shape of an array stored as the modality is stored with shape ``stored``."""
    if stored is None:
        return None
    ras = [0, 0, 0]
    for axis, (ras_axis, _) in enumerate(
            nib.orientations.axcodes2ornt(IXI_STORAGE_AXCODES[modality]).astype(int)):
        ras[ras_axis] = int(stored[axis])
    return (ras[0], ras[1], ras[2])


def _with_voxel_size(affine: np.ndarray, voxel_mm: tuple[float, float, float], modality: str
                     ) -> np.ndarray:
    """``affine`` (of a canonical RAS array) with voxel sizes ``voxel_mm`` given in the order the
    modality is stored in (:data:`IXI_STORAGE_AXCODES`)."""
    ornt = nib.orientations.axcodes2ornt(IXI_STORAGE_AXCODES[modality])
    ras_mm = np.empty(3)
    for stored, (ras, _) in enumerate(ornt.astype(int)):
        ras_mm[ras] = voxel_mm[stored]
    old = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    out = affine.copy()
    out[:3, :3] = affine[:3, :3] * (ras_mm / old)
    return out


def _centre_fit(vol: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    out = np.zeros(shape, dtype=vol.dtype)
    src, dst = [], []
    for n_in, n_out in zip(vol.shape, shape):
        start = (n_in - n_out) // 2
        lo, hi = max(start, 0), min(start + n_out, n_in)
        src.append(slice(lo, hi))
        dst.append(slice(lo - start, hi - start))
    out[tuple(dst)] = vol[tuple(src)]
    return out


def _perturb(vol: np.ndarray, modality: str, rng: np.random.Generator) -> np.ndarray:
    """Shift, remap intensities and add Rician noise; int16 values up to ~1000-3000 like IXI."""
    shift = tuple(int(s) for s in rng.integers(-3, 4, size=3))
    vol = np.roll(vol, shift, axis=(0, 1, 2))
    peak = float(vol.max()) or 1.0
    gain = rng.uniform(1000.0, 3000.0)
    signal = gain * (vol / peak) ** _GAMMA[modality]
    sigma = rng.uniform(0.005, 0.02) * gain
    noisy = np.hypot(signal + rng.normal(0.0, sigma, vol.shape),
                     rng.normal(0.0, sigma, vol.shape))
    return np.rint(noisy).astype(np.int16)
