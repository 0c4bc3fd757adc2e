"""Paired LR/HR MR slices from the databases ``w2amsn prepare`` (or ``prepare-ixi``) writes, of
any dataset (paper section IV-A; docs/data.md), registered in BasicSR's ``DATASET_REGISTRY`` as
``MRSliceDataset`` (``IXIPairedDataset``, :mod:`.ixi_paired_dataset`, is the same dataset under
the name older options files use).
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch
from basicsr.data.data_util import paired_paths_from_folder, paired_paths_from_lmdb
from basicsr.data.transforms import augment, paired_random_crop
from basicsr.utils.registry import DATASET_REGISTRY
from torch.utils import data

from . import slice_bank
from .augment import MRAugment
from .degradations import bicubic_downscale
from .lmdb_io import read_slice
from .png16 import decode_png
from ..protocol import parse_slice_key
from .protocol import check_dataset

__all__ = ["MRSliceDataset"]


@DATASET_REGISTRY.register()
class MRSliceDataset(data.Dataset):
    """1-channel, 16-bit paired LR/HR MR slices (W²AMSN paper, section IV-A).

    Like BasicSR's ``PairedImageDataset`` but for grayscale 16-bit PNG values: images are decoded
    to float32 in [0, 1] (16-bit / 65535; 8-bit PNGs from a folder / 255) and returned as
    ``1 x h x w`` tensors, never converted to 3 channels or divided by 255.

    Args:
        opt (dict): BasicSR dataset options:
            dataroot_gt (str): HR LMDB (``<dataset>_<MOD>_<split>_HR.lmdb``, e.g.
                ``IXI_T1_train_HR.lmdb``) or folder of ``<key>.png`` files.
            dataroot_lq (str): LR LMDB/folder with the same keys.
            io_backend (dict): ``{type: lmdb}`` or ``{type: disk}`` (folders).
            scale (int): LR scale (BasicSR adds it from the top-level ``scale``).
            phase (str): ``train`` crops and augments; anything else returns whole slices.
            gt_size (int): HR patch size for training (a multiple of ``scale``; the paper's LR
                patch is 32, so ``32 * scale``).
            use_hflip (bool): random horizontal flips in training. Default: True.
            use_rot (bool): random 90-degree rotations / vertical flips in training. Default: True.
            filename_tmpl (str): folder mode, LR file name template. Default: ``'{}'``.
            slice_step (int): keep every n-th slice (in key order, i.e. per volume when a
                volume's slice count is a multiple of n), e.g. for a quicker test. Default: 1.
            plane (str): optional; the plane the databases must have been cut in (``acquisition``,
                ``axial``, ...), checked once against the manifest beside ``dataroot_gt``
                (:func:`w2amsn_plugin.protocol.manifest_beside`) together with the modality,
                the scale and the GT/LQ protocol id
                (:func:`w2amsn_plugin.data.protocol.check_dataset`).
            on_device (bool | 'auto'): training only: decode the whole set once into a
                :class:`~.slice_bank.SliceBank` on the training device (CUDA when it fits, else
                pinned host memory; RAM on a CPU) and cut each batch there; items are then only
                ``bank``/``bank_index`` and :class:`~w2amsn_plugin.models.MRSRModel` makes the
                batch. ``auto``: when the bank takes under 40% of the free memory. Default: False
                (the generated options say ``auto``).
            mr_augment (dict): training only: draw an ordinary scan's look on each HR patch
                (:class:`~.augment.MRAugment`: resolution, contrast, bias field, window, Rician
                noise; ``{}`` for its defaults) and make the LR patch from the augmented HR patch
                with MATLAB bicubic (the LR database is then not read). Default: none.

    Items: ``lq`` (1xhxw float32), ``gt`` (1xHxW), ``lq_path``/``gt_path`` (the LMDB key, or the
    file path in folder mode), ``key`` (e.g. ``IXI002-Guys-0828_T1_s042``), ``subject`` (the
    volume, ``IXI002-Guys-0828``), ``modality`` (``T1``) and ``slice_index`` (42), so a tester can
    aggregate per volume. An LMDB is opened on first access, once per process (each dataloader
    worker opens its own; datasets of one process share it), read-only and without locking, as
    BasicSR's ``LmdbBackend`` opens it.
    """

    def __init__(self, opt: dict):
        super().__init__()
        self.opt = opt
        self.backend = opt["io_backend"]["type"]
        if self.backend not in ("lmdb", "disk"):
            raise ValueError(f"io_backend type must be 'lmdb' or 'disk', got {self.backend!r}")
        self.scale = int(opt["scale"])
        self.gt_folder, self.lq_folder = str(opt["dataroot_gt"]), str(opt["dataroot_lq"])
        if opt.get("phase") == "train":
            gt_size = int(opt["gt_size"])
            if gt_size % self.scale:
                raise ValueError(f"gt_size {gt_size} is not a multiple of scale {self.scale}")
        for folder in (self.gt_folder, self.lq_folder):
            if not Path(folder).is_dir():
                raise FileNotFoundError(f"{folder}: dataset folder does not exist")
        if self.backend == "lmdb":
            self.paths = paired_paths_from_lmdb([self.lq_folder, self.gt_folder], ["lq", "gt"])
            self.meta_hw = gt_hw, lq_hw = _meta_shape(self.gt_folder), _meta_shape(self.lq_folder)
            if gt_hw and lq_hw and gt_hw != (lq_hw[0] * self.scale, lq_hw[1] * self.scale):
                raise ValueError(f"{self.lq_folder}: LQ slices are {lq_hw[0]}x{lq_hw[1]} and GT "
                                 f"slices {gt_hw[0]}x{gt_hw[1]}: not scale {self.scale}")
            check_dataset(opt, self.gt_folder, self.lq_folder, self.scale)  # once, not per item
        else:
            self.meta_hw = (None, None)
            self.paths = sorted(  # sorted like the LMDB keys (scandir order is arbitrary)
                paired_paths_from_folder([self.lq_folder, self.gt_folder], ["lq", "gt"],
                                         opt.get("filename_tmpl", "{}")),
                key=lambda p: p["gt_path"])
        step = int(opt.get("slice_step", 1))
        if step < 1:
            raise ValueError(f"slice_step must be a positive integer, got {step}")
        self.paths = self.paths[::step]
        if not self.paths:
            raise ValueError(f"{self.gt_folder}: dataset is empty")
        self.keys = [self._key(p["gt_path"]) for p in self.paths]
        self.slices = []  # (subject, modality, slice index) per item
        for key in self.keys:
            try:
                self.slices.append(parse_slice_key(key))
            except ValueError as err:
                raise ValueError(f"{self.gt_folder}: {err}") from None
        self.mr_augment = (MRAugment.from_options(opt["mr_augment"] or {})
                           if opt.get("phase") == "train" and "mr_augment" in opt else None)
        self.bank_id = self._bank() if opt.get("phase") == "train" else None

    def _bank(self) -> str | None:
        """Register the slice bank when ``on_device`` asks for one (module doc of slice_bank)."""
        mode = self.opt.get("on_device", False)
        if mode not in (True, False, "auto"):
            raise ValueError(f"on_device must be true, false or auto, got {mode!r}")
        if mode is False or self.backend != "lmdb" or self.mr_augment is not None:
            return None  # mr_augment makes each patch in NumPy: no bank
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        gt_hw, lq_hw = self.meta_hw
        if mode == "auto" and not (gt_hw and lq_hw and slice_bank.bank_fits(
                slice_bank.bank_bytes(len(self.keys), gt_hw, lq_hw), device)):
            return None
        crop = slice_bank.CropSpec(int(self.opt["gt_size"]), self.scale,
                                   bool(self.opt.get("use_hflip", True)), bool(self.opt.get("use_rot", True)))
        return slice_bank.register_bank(self.gt_folder, self.lq_folder, self.keys, crop, device)

    def _key(self, path: str) -> str:
        return path if self.backend == "lmdb" else Path(path).name.rsplit(".", 1)[0]

    def _read(self, path: str, folder: str) -> np.ndarray:
        """HxWx1 float32 image of a key (LMDB) or a file path (disk)."""
        if self.backend == "lmdb":
            return read_slice(folder, path)[:, :, None]
        return decode_png(Path(path).read_bytes(), path)[:, :, None]

    def __getitem__(self, index: int) -> dict:
        if self.bank_id is not None:  # the model cuts the batch on the device
            return {"bank": self.bank_id, "bank_index": index}
        gt_path = self.paths[index]["gt_path"]
        lq_path = self.paths[index]["lq_path"]
        img_gt = self._read(gt_path, self.gt_folder)
        if self.mr_augment is not None:
            img_gt, img_lq = self._augmented_pair(img_gt)
            return self._item(index, img_gt, img_lq)
        img_lq = self._read(lq_path, self.lq_folder)
        if img_gt.shape[:2] != (img_lq.shape[0] * self.scale, img_lq.shape[1] * self.scale):
            raise ValueError(f"{gt_path}: GT shape {img_gt.shape[:2]} is not {self.scale}x the "
                             f"LQ shape {img_lq.shape[:2]} ({lq_path})")
        if self.opt.get("phase") == "train":
            img_gt, img_lq = paired_random_crop(img_gt, img_lq, int(self.opt["gt_size"]),
                                                self.scale, gt_path)
            img_gt, img_lq = augment([img_gt, img_lq], self.opt.get("use_hflip", True),
                                     self.opt.get("use_rot", True))
        return self._item(index, img_gt, img_lq)

    def _item(self, index: int, img_gt: np.ndarray, img_lq: np.ndarray) -> dict:
        subject, modality, slice_index = self.slices[index]
        return {
            "lq": _to_tensor(img_lq), "gt": _to_tensor(img_gt), "lq_path": self.paths[index]["lq_path"],
            "gt_path": self.paths[index]["gt_path"], "key": self.keys[index], "subject": subject,
            "modality": modality, "slice_index": slice_index,
        }

    def _augmented_pair(self, img_gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``mr_augment``: a random HR crop (larger for the resolution step), its augmented
        ``gt_size`` patch, flipped/rotated, and the LR patch made from it (MATLAB bicubic)."""
        size = int(self.opt["gt_size"])
        rng = np.random.default_rng(np.random.randint(2**31))
        h, w = img_gt.shape[:2]
        side = min(self.mr_augment.crop_size(size, rng), h, w)
        top, left = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        hr = self.mr_augment(img_gt[top:top + side, left:left + side, 0], size, rng)[:, :, None]
        hr = augment([hr], self.opt.get("use_hflip", True), self.opt.get("use_rot", True))
        lr = np.clip(bicubic_downscale(hr[:, :, 0], self.scale), 0.0, 1.0).astype(np.float32)
        return hr, lr[:, :, None]

    def __len__(self) -> int:
        return len(self.paths)


def _meta_shape(folder: str) -> tuple[int, int] | None:
    """(h, w) on the first line of an LMDB's ``meta_info.txt`` (``KEY.png (h,w,c) level``)."""
    with open(Path(folder, "meta_info.txt")) as fin:
        match = re.search(r"\((\d+),(\d+),\d+\)", fin.readline())
    return (int(match[1]), int(match[2])) if match else None


def _to_tensor(img: np.ndarray) -> torch.Tensor:
    """HxWx1 float32 array -> 1xHxW tensor (a copy: crops and flips may be views)."""
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1), dtype=np.float32))
