"""``SelfSRPatchDataset``: 2-D training patches cut from one scan, registered in BasicSR's
``DATASET_REGISTRY`` (self-supervised SR, SMORE: Zhao et al., IEEE TMI 2021, sec. II-B).

Options (besides BasicSR's ``name``, ``type``, ``phase``, loader keys):

- ``volume`` (str): ``.npy`` of the scan normalised to [0, 1] (the intensity window's upper end
  may be exceeded), its coarse axis last, so ``volume[:, :, z]`` are the acquired slices.
- ``spacing`` (list[float]): voxel sizes (mm); the last one is the slice spacing.
- ``scale`` (int): the network's factor k.
- ``degradation`` (str): ``'slice_profile'`` (through-plane mode: blur with ``profile`` and
  subsample along one in-plane axis, :mod:`.training_pairs`) or one of the in-plane mode's
  degradations of both axes /k (:data:`~.in_plane.IN_PLANE_DEGRADATIONS`: ``'bicubic'``, the
  degradation of the paper's section IV-A, ``'kspace'`` or ``'mixed'``, :mod:`.in_plane`).
- ``profile`` (dict): :class:`~.slice_profile.SliceProfile` fields (``kind``, ``thickness``,
  and ``samples``/``sample_mm`` for a measured profile). A ``mixed`` profile blurs each training
  patch with the Gaussian or the rectangle at random, and validates on both.
- ``val_slices`` (list[int]): acquired slices held out for validation; training never cuts
  from them. The train phase uses the others, the val phase only these (whole slices, both
  orientations, phase 0).
- ``gt_size`` (int, 64): side of a training GT patch (a multiple of k).
- ``samples_per_epoch`` (int, 4096): the length of the train phase (patches are random).
- ``fg_threshold`` (float, 0.1): anatomy is where the slice exceeds it; a patch is drawn with
  probability ``background_weight`` + the fraction of anatomy around its centre.
- ``background_weight`` (float, 0.1).
- ``use_hflip``, ``use_vflip`` (bool, True): random flips of the pair (a flip of the degraded
  axis keeps the pair consistent: the profile is symmetric and centred); ``use_rot`` (bool,
  True, in-plane mode only): random transposes too (its degradations treat both axes alike).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from basicsr.utils.registry import DATASET_REGISTRY
from scipy import ndimage
from torch.utils import data

from .in_plane import IN_PLANE_DEGRADATIONS, degrade_in_plane
from .slice_profile import SliceProfile
from .training_pairs import build_pairs

__all__ = ["SelfSRPatchDataset"]


def _stacks(opt: dict[str, Any], volume: np.ndarray) -> tuple[list[np.ndarray], list[list[np.ndarray]]]:
    """Per orientation: the fine stack and its low-resolution sources, one per training profile
    (all-phase blurred rows in the through-plane mode, the LR stacks in the in-plane mode)."""
    k = int(opt["scale"])
    degradation = opt.get("degradation", "slice_profile")
    if degradation in IN_PLANE_DEGRADATIONS:
        h, w = (volume.shape[0] // k) * k, (volume.shape[1] // k) * k
        hr = np.ascontiguousarray(volume[:h, :w].transpose(2, 0, 1))
        return [hr], [degrade_in_plane(hr, k, degradation)]
    if degradation != "slice_profile":
        raise ValueError(f"SelfSRPatchDataset: unknown degradation {degradation!r} (one of "
                         f"'slice_profile', {', '.join(map(repr, IN_PLANE_DEGRADATIONS))})")
    spacing = [float(v) for v in opt["spacing"]]
    profile = SliceProfile(**{key: (tuple(v) if key == "samples" else v)
                              for key, v in opt["profile"].items()})
    pairs = [build_pairs(volume, tuple(spacing), spacing[2], k, p) for p in profile.training_profiles()]
    return ([o.hr for o in pairs[0].orientations],
            [[p.orientations[i].blurred for p in pairs] for i in range(len(pairs[0].orientations))])


@DATASET_REGISTRY.register()
class SelfSRPatchDataset(data.Dataset):
    """Patches of one scan for self-supervised SR (module docstring lists the options)."""

    def __init__(self, opt: dict[str, Any]) -> None:
        super().__init__()
        self.opt = opt
        self.scale = int(opt["scale"])
        #: in-plane mode: both axes are k times coarser (else only the rows, through-plane)
        self.in_plane = opt.get("degradation", "slice_profile") in IN_PLANE_DEGRADATIONS
        volume = np.load(opt["volume"], mmap_mode="r")
        if volume.ndim != 3:
            raise ValueError(f"SelfSRPatchDataset: {opt['volume']} is not a 3-D array")
        self.hr, self.lr = _stacks(opt, np.asarray(volume, dtype=np.float32))
        held_out = sorted({int(z) for z in opt.get("val_slices", [])})
        every = range(volume.shape[2])
        self.train = opt.get("phase", "train") == "train"
        self.slices = np.array([z for z in every if (z in held_out) != self.train], dtype=np.int64)
        if self.slices.size == 0:
            raise ValueError(f"SelfSRPatchDataset: no {'training' if self.train else 'validation'} slices")
        if self.train:
            self.gt_size = int(opt.get("gt_size", 64))
            if self.gt_size % self.scale:
                raise ValueError(f"SelfSRPatchDataset: gt_size {self.gt_size} is not a multiple of "
                                 f"the scale {self.scale}")
            k = self.scale
            rows = min(hr.shape[1] for hr in self.hr)
            cols = min(hr.shape[2] for hr in self.hr)
            # one patch shape for every orientation (they batch), whole LR pixels
            self.patch = (min(self.gt_size, rows - rows % k),
                          min(self.gt_size, cols - cols % k if self.in_plane else cols))
            self._cdf = [self._patch_cdf(hr) for hr in self.hr]

    # -- where patches come from ----------------------------------------------------------------
    def _patch_shape(self, hr: np.ndarray) -> tuple[int, int]:
        return self.patch

    def _patch_cdf(self, hr: np.ndarray) -> np.ndarray:
        """Cumulative probability of each top-left corner (over the training slices)."""
        ph, pw = self._patch_shape(hr)
        fg = (hr[self.slices] > float(self.opt.get("fg_threshold", 0.1))).astype(np.float32)
        frac = ndimage.uniform_filter(fg, size=(1, ph, pw), mode="constant")
        corners = frac[:, ph // 2:ph // 2 + hr.shape[1] - ph + 1, pw // 2:pw // 2 + hr.shape[2] - pw + 1]
        weight = corners + float(self.opt.get("background_weight", 0.1))
        cdf = np.cumsum(weight.ravel(), dtype=np.float64)
        return cdf / cdf[-1]

    def _train_item(self, index: int) -> dict[str, Any]:
        o = np.random.randint(len(self.hr))
        sources = self.lr[o]
        # one profile draws nothing here, so its patches are those it drew before ``mixed`` existed
        lr = sources[np.random.randint(len(sources))] if len(sources) > 1 else sources[0]
        hr, k = self.hr[o], self.scale
        ph, pw = self._patch_shape(hr)
        n_rows, n_cols = hr.shape[1] - ph + 1, hr.shape[2] - pw + 1
        flat = int(np.searchsorted(self._cdf[o], np.random.random_sample(), side="right"))
        flat = min(flat, self._cdf[o].size - 1)
        zi, rem = divmod(flat, n_rows * n_cols)
        r0, c0 = divmod(rem, n_cols)
        z = self.slices[zi]
        if self.in_plane:  # corners on the LR grid
            r0, c0 = r0 // k, c0 // k
            gt = hr[z, r0 * k:r0 * k + ph, c0 * k:c0 * k + pw]
            lq = lr[z, r0:r0 + ph // k, c0:c0 + pw // k]
        else:
            gt = hr[z, r0:r0 + ph, c0:c0 + pw]
            lq = lr[z, r0:r0 + ph:k, c0:c0 + pw]
        if self.opt.get("use_hflip", True) and np.random.random_sample() < 0.5:
            gt, lq = gt[:, ::-1], lq[:, ::-1]
        if self.opt.get("use_vflip", True) and np.random.random_sample() < 0.5:
            gt, lq = gt[::-1], lq[::-1]
        if self.in_plane and self.opt.get("use_rot", True) and np.random.random_sample() < 0.5:
            gt, lq = gt.T, lq.T
        return self._item(lq, gt, f"o{o}_z{z}_r{r0}_c{c0}", int(z))

    def _val_item(self, index: int) -> dict[str, Any]:
        pair, zi = divmod(index, self.slices.size)
        o, source = divmod(pair, len(self.lr[0]))
        z, k = int(self.slices[zi]), self.scale
        hr, lr = self.hr[o][z], self.lr[o][source][z]
        if self.in_plane:
            gt, lq = hr, lr
        else:
            rows = hr.shape[0] // k
            gt, lq = hr[:rows * k], lr[0:rows * k:k]
        key = f"o{o}_z{z}" if len(self.lr[o]) == 1 else f"o{o}_p{source}_z{z}"
        return self._item(lq, np.clip(gt, 0.0, 1.0), key, z)

    @staticmethod
    def _item(lq: np.ndarray, gt: np.ndarray, key: str, z: int) -> dict[str, Any]:
        def tensor(a: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)).unsqueeze(0)

        return {"lq": tensor(lq), "gt": tensor(gt), "key": f"scan_{key}", "lq_path": key,
                "gt_path": key, "subject": "scan", "modality": "MR", "slice_index": z}

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self._train_item(index) if self.train else self._val_item(index)

    def __len__(self) -> int:
        if self.train:
            return int(self.opt.get("samples_per_epoch", 4096))
        return len(self.hr) * len(self.lr[0]) * int(self.slices.size)
