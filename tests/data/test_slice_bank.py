"""The on-device data path (w2amsn_plugin.data.slice_bank, IXIPairedDataset ``on_device``):
the batches it cuts are aligned, augmented crops with IXIPairedDataset's statistics, and BasicSR
trains through it."""
from __future__ import annotations

import itertools
import random
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import w2amsn_plugin  # noqa: F401  (registers IXIPairedDataset, MRSRModel, W2AMSN)
from w2amsn_plugin.cli import basicsr_main
from w2amsn_plugin.data import IXIPairedDataset
from w2amsn_plugin.data.fake_ixi import make_fake_ixi_tree
from w2amsn_plugin.data.prepare import PrepConfig, make_ixi_lmdb
from w2amsn_plugin.data.slice_bank import CropSpec, SliceBank, get_bank

DEPTH = 4
SCALE = 2


def _transforms(x: np.ndarray) -> list[tuple[tuple[bool, bool, bool], np.ndarray]]:
    """The 8 results of BasicSR's ``augment`` (hflip, vflip, then transpose) on a 2-D patch."""
    out = []
    for h, v, t in itertools.product((False, True), repeat=3):
        y = x[:, ::-1] if h else x
        y = y[::-1, :] if v else y
        out.append(((h, v, t), y.T if t else y))
    return out


def _recover(lq: np.ndarray, gt: np.ndarray, lr: np.ndarray, hr: np.ndarray, scale: int
             ) -> list[tuple[int, int, tuple[bool, bool, bool]]]:
    """Every (top, left, flips) with ``lq == T(lr crop)`` and ``gt == T(hr crop)`` (aligned)."""
    p = lq.shape[0]
    found = []
    for top in range(lr.shape[0] - p + 1):
        for left in range(lr.shape[1] - p + 1):
            lr_crop = lr[top:top + p, left:left + p]
            hr_crop = hr[top * scale:(top + p) * scale, left * scale:(left + p) * scale]
            for (flags, t_lr), (_, t_hr) in zip(_transforms(lr_crop), _transforms(hr_crop)):
                if np.array_equal(t_lr, lq) and np.array_equal(t_hr, gt):
                    found.append((top, left, flags))
    return found


def _as_u16(x: torch.Tensor) -> np.ndarray:
    return np.rint(x.numpy() * 65535.0).astype(np.int64)


def _bank_arrays(bank: SliceBank) -> tuple[np.ndarray, np.ndarray]:
    return ((bank.hr.to(torch.int32) & 0xFFFF).numpy(), (bank.lr.to(torch.int32) & 0xFFFF).numpy())


def test_each_sample_is_one_aligned_augmented_crop_with_uniform_statistics():
    g = torch.Generator().manual_seed(0)
    n, h, w, scale, p = 3, 7, 9, 3, 4
    lr = torch.randint(0, 1 << 16, (n, h, w), generator=g, dtype=torch.int32)
    hr = torch.randint(0, 1 << 16, (n, h * scale, w * scale), generator=g, dtype=torch.int32)
    bank = SliceBank(hr.to(torch.int16), lr.to(torch.int16), CropSpec(p * scale, scale))
    idx = torch.arange(400) % n
    lq, gt = bank.sample(idx, generator=g)
    assert lq.shape == (400, 1, p, p) and gt.shape == (400, 1, p * scale, p * scale)
    assert lq.dtype == gt.dtype == torch.float32 and 0 <= float(lq.min()) and float(gt.max()) <= 1
    tops, lefts, flags = [], [], []
    for b in range(400):
        hits = _recover(_as_u16(lq[b, 0]), _as_u16(gt[b, 0]), lr[idx[b]].numpy(), hr[idx[b]].numpy(), scale)
        assert len(hits) == 1, f"sample {b}: {len(hits)} matching crops"
        tops.append(hits[0][0])
        lefts.append(hits[0][1])
        flags.append(hits[0][2])
    # top and left uniform over every valid LR position, each flip with probability 1/2
    for values, n_pos in ((tops, h - p + 1), (lefts, w - p + 1)):
        counts = np.bincount(values, minlength=n_pos)
        assert len(counts) == n_pos and counts.min() > 400 / n_pos * 0.5
    rates = np.mean(np.array(flags, dtype=float), axis=0)
    assert np.all(np.abs(rates - 0.5) < 0.1), rates


def test_switches_off_flips_and_rotations():
    g = torch.Generator().manual_seed(1)
    lr = torch.randint(0, 1 << 15, (1, 6, 6), generator=g, dtype=torch.int32).to(torch.int16)
    hr = torch.randint(0, 1 << 15, (1, 12, 12), generator=g, dtype=torch.int32).to(torch.int16)
    bank = SliceBank(hr, lr, CropSpec(12, 2, use_hflip=False, use_rot=False))
    lq, gt = bank.sample(torch.zeros(16, dtype=torch.long), generator=g)
    assert torch.equal(lq[:, 0], (lr.to(torch.float32) / 65535).expand(16, 6, 6))  # whole slice, no flip
    with pytest.raises(ValueError, match="not 2x"):
        SliceBank(hr[:, :10], lr, CropSpec(12, 2))
    with pytest.raises(ValueError, match="fits"):
        SliceBank(hr, lr, CropSpec(14, 2))


@pytest.fixture(scope="module")
def dbs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ixi")
    make_fake_ixi_tree(root, 3, ("T1",), shape=(64, 72, 12))
    out = tmp_path_factory.mktemp("lmdb")
    make_ixi_lmdb(PrepConfig(ixi_root=root, modality="T1", out=out, scales=(SCALE,), n_train=2,
                             n_test=1, n_val=0, crop=(48, 48, DEPTH), workers=1, progress=False),
                  log=lambda m: None)
    return out


def _opt(dbs: Path, **kw) -> dict:
    opt = dict(name="ixi", type="IXIPairedDataset", phase="train", scale=SCALE,
               dataroot_gt=str(dbs / "IXI_T1_train_HR.lmdb"),
               dataroot_lq=str(dbs / f"IXI_T1_train_LR_bicubic_X{SCALE}.lmdb"),
               io_backend={"type": "lmdb"}, gt_size=8 * SCALE, use_hflip=True, use_rot=True)
    opt.update(kw)
    return opt


def test_bank_holds_the_decoded_slices_and_the_dataset_yields_indices(dbs: Path):
    plain = IXIPairedDataset(_opt(dbs, phase="val"))
    banked = IXIPairedDataset(_opt(dbs, on_device=True))
    bank = get_bank(banked.bank_id)
    hr, lr = _bank_arrays(bank)
    assert len(bank) == len(plain) == 2 * DEPTH
    for i in range(len(plain)):
        item = plain[i]
        assert np.array_equal(hr[i], _as_u16(item["gt"][0])) and np.array_equal(lr[i], _as_u16(item["lq"][0]))
    assert banked[3] == {"bank": banked.bank_id, "bank_index": 3}
    assert IXIPairedDataset(_opt(dbs, on_device="auto")).bank_id == banked.bank_id  # fits; shared
    assert IXIPairedDataset(_opt(dbs)).bank_id is None  # default: off
    with pytest.raises(ValueError, match="on_device must be"):
        IXIPairedDataset(_opt(dbs, on_device="yes"))


def test_bank_and_dataset_crops_have_the_same_statistics(dbs: Path):
    """IXIPairedDataset (paired_random_crop + augment) and the bank sample the same set of aligned
    crops with the same probabilities: recovered top/left cover every position, flips at 1/2."""
    random.seed(0)
    plain = IXIPairedDataset(_opt(dbs))
    bank = get_bank(IXIPairedDataset(_opt(dbs, on_device=True)).bank_id)
    hr, lr = _bank_arrays(bank)
    n = 160
    idx = torch.arange(n) % len(plain)
    lq_b, gt_b = bank.sample(idx, generator=torch.Generator().manual_seed(0))
    stats = {}
    def from_dataset(b: int) -> tuple[torch.Tensor, torch.Tensor]:
        item = plain[int(idx[b])]
        return item["lq"][0], item["gt"][0]

    for name, get in (("dataset", from_dataset), ("bank", lambda b: (lq_b[b, 0], gt_b[b, 0]))):
        tops, flags = [], []
        for b in range(n):
            lq, gt = get(b)
            hits = _recover(_as_u16(lq), _as_u16(gt), lr[idx[b]], hr[idx[b]], SCALE)
            assert hits, f"{name} sample {b} is not an aligned augmented crop"
            tops.append(hits[0][0])
            flags.append(hits[0][2])
        stats[name] = (np.bincount(tops, minlength=lr.shape[1] - 8 + 1),
                       np.mean(np.array(flags, float), axis=0))
    for name, (counts, rates) in stats.items():
        assert counts.min() > 0, f"{name}: some LR positions never sampled"
        assert np.all(np.abs(rates - 0.5) < 0.15), (name, rates)


def test_basicsr_trains_through_the_bank(dbs: Path, tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    net = {"type": "W2AMSN", "num_in_ch": 1, "num_out_ch": 1, "num_feat": 8, "num_block": 1,
           "upscale": SCALE}
    opt = {"name": "bank_train", "model_type": "MRSRModel", "scale": SCALE, "num_gpu": 0, "manual_seed": 0,
           "datasets": {"train": {**_opt(dbs, on_device=True), "num_worker_per_gpu": 0,
                                  "batch_size_per_gpu": 4, "dataset_enlarge_ratio": 2}},
           "network_g": net,
           "path": {"pretrain_network_g": None, "strict_load_g": True, "resume_state": None},
           "train": {"ema_decay": 0, "optim_g": {"type": "Adam", "lr": 1e-3},
                     "scheduler": {"type": "MultiStepLR", "milestones": [100], "gamma": 0.5},
                     "total_iter": 3, "warmup_iter": -1,
                     "pixel_opt": {"type": "L1Loss", "loss_weight": 1.0, "reduction": "mean"}},
           "logger": {"print_freq": 1, "save_checkpoint_freq": 3, "use_tb_logger": False}}
    path = tmp_path / "train.yml"
    path.write_text(yaml.safe_dump(opt, sort_keys=False))
    assert basicsr_main(["train", "-opt", str(path)]) == 0
    run = tmp_path / "experiments" / "bank_train"  # (BasicSR's logger is per process: no log check)
    assert (run / "models" / "net_g_3.pth").is_file() and (run / "training_states" / "3.state").is_file()
