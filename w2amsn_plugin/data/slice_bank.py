"""The training set held in memory, on the training device when it fits: the on-device data path.

A dataloader worker that decodes PNGs and crops in NumPy delivers a few hundred patches a second;
a GPU training step of W²AMSN-S in bf16 consumes thousands. :class:`SliceBank` decodes a paired
HR/LR database once into two 16-bit tensors (``round(x * 65535)``: exact for the 16-bit and
8-bit PNGs the databases hold; kept as ``int16`` bit patterns, since torch's ``uint16`` lacks
flips) on the device (a CUDA device when the bank fits its free memory,
pinned host memory otherwise; plain memory on a CPU), and :meth:`SliceBank.sample` cuts a whole
batch there: one random aligned LR/HR crop per requested slice, then BasicSR's
``augment`` (random horizontal flip, vertical flip and transpose, each with probability 1/2 and
independently per item), with the same statistics as :class:`~.ixi_paired_dataset.IXIPairedDataset`
with ``paired_random_crop`` + ``augment`` (top/left uniform over every valid LR position, the HR
patch at ``scale`` times the LR position).

:class:`~.ixi_paired_dataset.IXIPairedDataset` uses a bank in training when its ``on_device``
option is on (``auto``: when the bank fits, see :func:`bank_fits`); its items are then just the slice
indices and :class:`~w2amsn_plugin.models.MRSRModel` asks the bank for the batch
(:func:`get_bank`). Banks are kept per process (like the LMDB environments of :mod:`.lmdb_io`).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from .lmdb_io import read_slice

__all__ = ["SliceBank", "CropSpec", "bank_bytes", "bank_fits", "get_bank", "register_bank"]

#: share of free device memory (CUDA) or of available RAM (CPU) a bank may take under ``auto``
FIT_FRACTION = 0.4
_BANKS: dict[str, "SliceBank"] = {}


@dataclass(frozen=True)
class CropSpec:
    """How a bank cuts training patches: HR patch side ``gt_size`` (a multiple of ``scale``) and
    BasicSR's ``augment`` switches."""

    gt_size: int
    scale: int
    use_hflip: bool = True
    use_rot: bool = True


class SliceBank:
    """Every HR and LR slice of a paired database as 16-bit tensors on one device.

    Args:
        hr: ``N x H x W`` int16 holding the bits of ``uint16(round(x * 65535))``.
        lr: ``N x h x w`` the same, ``H == scale * h`` and ``W == scale * w``.
        crop: the training crop and augmentation.
    """

    def __init__(self, hr: Tensor, lr: Tensor, crop: CropSpec) -> None:
        if hr.dtype != torch.int16 or lr.dtype != torch.int16 or hr.dim() != 3 or lr.dim() != 3:
            raise ValueError("a slice bank holds N x H x W int16 tensors (uint16 bit patterns)")
        n, h, w = lr.shape
        if hr.shape != (n, h * crop.scale, w * crop.scale):
            raise ValueError(f"HR slices {tuple(hr.shape[1:])} are not {crop.scale}x the LR "
                             f"slices {(h, w)}")
        if crop.gt_size % crop.scale or crop.gt_size // crop.scale > min(h, w):
            raise ValueError(f"gt_size {crop.gt_size} is not a multiple of scale {crop.scale} "
                             f"that fits the {h}x{w} LR slices")
        self.hr, self.lr, self.crop = hr, lr, crop

    @property
    def device(self) -> torch.device:
        return self.hr.device

    def __len__(self) -> int:
        return int(self.hr.shape[0])

    def sample(self, indices: Tensor | Sequence[int], device: torch.device | str | None = None,
               generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """One random aligned crop of each slice in ``indices`` (repeats allowed), augmented:
        ``(lq, gt)`` float32 ``B x 1 x p x p`` and ``B x 1 x sp x sp`` in [0, 1] on ``device``
        (default: the bank's). ``generator`` (on the bank's device) makes it reproducible."""
        dev = self.device
        idx = torch.as_tensor(indices, dtype=torch.long).to(dev)
        b, s = idx.numel(), self.crop.scale
        p = self.crop.gt_size // s
        h, w = self.lr.shape[1:]
        top = torch.randint(0, h - p + 1, (b,), device=dev, generator=generator)
        left = torch.randint(0, w - p + 1, (b,), device=dev, generator=generator)
        lq = _crop(self.lr, idx, top, left, p)
        gt = _crop(self.hr, idx, top * s, left * s, p * s)
        flips = torch.rand(3, b, device=dev, generator=generator) < 0.5
        flips[0] &= self.crop.use_hflip
        flips[1:] &= self.crop.use_rot
        lq, gt = (_augment(x, flips) for x in (lq, gt))
        out = device if device is not None else dev
        return (_to_unit(lq).to(out, non_blocking=True), _to_unit(gt).to(out, non_blocking=True))


def _crop(stack: Tensor, idx: Tensor, top: Tensor, left: Tensor, size: int) -> Tensor:
    """``B x size x size`` crops ``stack[idx[b], top[b]:+size, left[b]:+size]`` by one gather."""
    ar = torch.arange(size, device=stack.device)
    rows = (top[:, None] + ar)[:, :, None]
    cols = (left[:, None] + ar)[:, None, :]
    return stack[idx[:, None, None], rows, cols]


def _augment(x: Tensor, flips: Tensor) -> Tensor:
    """BasicSR's ``augment`` per item: horizontal flip, vertical flip, then transpose, where
    ``flips[k, b]`` is set (patches are square, so the transpose keeps the shape)."""
    for k, dims in enumerate(((-1,), (-2,))):
        x = torch.where(flips[k][:, None, None], x.flip(dims), x)
    return torch.where(flips[2][:, None, None], x.transpose(-1, -2), x)


def _to_unit(x: Tensor) -> Tensor:
    """``B x H x W`` int16 (uint16 bits) -> ``B x 1 x H x W`` float32 in [0, 1]."""
    return ((x.to(torch.int32) & 0xFFFF).to(torch.float32) / 65535.0).unsqueeze(1)


def _decode_stack(folder: str, keys: Sequence[str]) -> np.ndarray:
    """``N x H x W`` int16 holding the bits of ``uint16(round(x * 65535))`` of the PNG values of
    ``keys`` in an LMDB."""
    out = None
    for i, key in enumerate(keys):
        img = np.rint(read_slice(folder, key) * np.float32(65535.0))
        if out is None:
            out = np.empty((len(keys), *img.shape), dtype=np.uint16)
        elif img.shape != out.shape[1:]:
            raise ValueError(f"{folder}:{key}: slice shape {img.shape} differs from "
                             f"{out.shape[1:]} of the others; a bank needs one shape")
        out[i] = img
    return out.view(np.int16)


def bank_bytes(n: int, hr_hw: tuple[int, int], lr_hw: tuple[int, int]) -> int:
    """Bytes of a bank of ``n`` slices of these HR and LR shapes."""
    return 2 * n * (hr_hw[0] * hr_hw[1] + lr_hw[0] * lr_hw[1])


def bank_fits(nbytes: int, device: torch.device | str) -> bool:
    """Whether a bank of ``nbytes`` takes at most :data:`FIT_FRACTION` of the device's free
    memory (CUDA) or of the machine's available memory (CPU)."""
    device = torch.device(device)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return nbytes <= FIT_FRACTION * free
    try:
        available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return False
    return nbytes <= FIT_FRACTION * available


def register_bank(gt_folder: str, lq_folder: str, keys: Sequence[str], crop: CropSpec,
                  device: torch.device | str) -> str:
    """Decode the slices ``keys`` of a paired LMDB into a bank on ``device`` (once per process
    and database pair) and return the id :func:`get_bank` takes. On CUDA the bank goes to the
    device when it fits, else to pinned host memory."""
    bank_id = f"{os.path.realpath(gt_folder)}|{os.path.realpath(lq_folder)}|{len(keys)}|{crop}"
    if bank_id in _BANKS:
        return bank_id
    hr = torch.from_numpy(_decode_stack(gt_folder, keys))
    lr = torch.from_numpy(_decode_stack(lq_folder, keys))
    device = torch.device(device)
    if device.type == "cuda":
        nbytes = (hr.numel() + lr.numel()) * 2
        hr, lr = ((hr.to(device), lr.to(device)) if bank_fits(nbytes, device)
                  else (hr.pin_memory(), lr.pin_memory()))
    _BANKS[bank_id] = SliceBank(hr, lr, crop)
    return bank_id


def get_bank(bank_id: str) -> SliceBank:
    """The bank :func:`register_bank` made in this process."""
    try:
        return _BANKS[bank_id]
    except KeyError:
        raise KeyError(f"no slice bank {bank_id!r} in this process (on_device needs the dataset "
                       "and the model in one process: num_worker_per_gpu 0, or workers that only "
                       "return indices)") from None
