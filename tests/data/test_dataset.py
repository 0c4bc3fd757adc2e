"""IXIPairedDataset on databases built by make_ixi_lmdb from the shipped real MR samples."""
from __future__ import annotations

import random
from pathlib import Path

import cv2
import lmdb
import numpy as np
import pytest
import torch

import w2amsn_plugin  # noqa: F401  (registers IXIPairedDataset)
from basicsr.data import build_dataset
from w2amsn_plugin.data import IXIPairedDataset
from w2amsn_plugin.data.degradations import bicubic_downscale
from w2amsn_plugin.data.fake_ixi import make_fake_ixi_tree
from w2amsn_plugin.data.lmdb_io import readonly_env
from w2amsn_plugin.data.prepare import PrepConfig, make_ixi_lmdb

DEPTH = 4


@pytest.fixture(scope="module")
def dbs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ixi")
    make_fake_ixi_tree(root, 3, ("PD",), shape=(112, 128, 24))
    out = tmp_path_factory.mktemp("lmdb")
    make_ixi_lmdb(PrepConfig(ixi_root=root, modality="PD", out=out, scales=(2, 3, 4), n_train=2,
                             n_test=1, n_val=0, crop=(96, 96, DEPTH), workers=1, progress=False),
                  log=lambda m: None)
    return out


def _opt(dbs: Path, scale: int = 4, phase: str = "train", **kw) -> dict:
    opt = dict(name="ixi", type="IXIPairedDataset", phase=phase, scale=scale,
               dataroot_gt=str(dbs / "IXI_PD_train_HR.lmdb"),
               dataroot_lq=str(dbs / f"IXI_PD_train_LR_bicubic_X{scale}.lmdb"),
               io_backend={"type": "lmdb"}, gt_size=32 * scale, use_hflip=True, use_rot=True)
    opt.update(kw)
    return opt


def test_items_follow_the_contract(dbs: Path):
    ds = build_dataset(_opt(dbs, phase="val"))  # through BasicSR's registry
    assert isinstance(ds, IXIPairedDataset) and len(ds) == 2 * DEPTH
    item = ds[DEPTH + 2]
    assert item["lq"].shape == (1, 24, 24) and item["gt"].shape == (1, 96, 96)
    assert item["lq"].dtype == item["gt"].dtype == torch.float32
    assert 0 <= float(item["gt"].min()) and float(item["gt"].max()) <= 1
    key = item["key"]
    assert item["lq_path"] == item["gt_path"] == key == \
        f"{item['subject']}_PD_s{item['slice_index']:03d}"
    assert item["modality"] == "PD" and item["slice_index"] == 2
    assert item["subject"].startswith("IXI") and "-" in item["subject"]
    # 16-bit precision survives: many more levels than 8 bit
    assert len(torch.unique(item["gt"])) > 300


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_training_crops_stay_aligned(dbs: Path, scale: int):
    ds = IXIPairedDataset(_opt(dbs, scale=scale, gt_size=48 if scale == 3 else 64))
    random.seed(scale)
    border = 2  # the bicubic kernel reaches 2 LR pixels across a crop edge
    checked = 0
    for index in range(len(ds)):
        item = ds[index]
        gt, lq = item["gt"][0].numpy(), item["lq"][0].numpy()
        assert lq.shape == (gt.shape[0] // scale, gt.shape[1] // scale)
        if gt.max() < 0.05:
            continue  # empty background crop
        down = bicubic_downscale(gt[None].astype(np.float64), scale)[0]
        inner = (slice(border, -border),) * 2
        assert np.abs(down[inner] - lq[inner]).max() < 2e-4
        shifted = np.roll(lq, 1, axis=1)  # a crop off by one LR pixel is clearly detected
        assert np.abs(down[inner] - shifted[inner]).max() > 20 * 2e-4
        checked += 1
    assert checked >= len(ds) // 2


def test_augmentation_happens_and_keeps_pairs(dbs: Path):
    ds = IXIPairedDataset(_opt(dbs, scale=2, gt_size=96))  # whole slice: only augmentation
    plain = IXIPairedDataset(_opt(dbs, scale=2, phase="val"))
    random.seed(0)
    seen = set()
    for _ in range(12):
        item = ds[1]
        ref_gt = plain[1]["gt"][0]
        variants = {
            "id": ref_gt, "hflip": ref_gt.flip(-1), "vflip": ref_gt.flip(-2),
            "t": ref_gt.T, "hflip+t": ref_gt.flip(-1).T, "vflip+t": ref_gt.flip(-2).T,
            "hv": ref_gt.flip(-1).flip(-2), "hv+t": ref_gt.flip(-1).flip(-2).T,
        }
        match = [n for n, v in variants.items() if torch.equal(item["gt"][0], v)]
        assert match, "GT is not a flip/rotation of the slice"
        seen.add(match[0])
        down = bicubic_downscale(item["gt"][0].numpy()[None].astype(np.float64), 2)[0]
        assert np.abs(down - item["lq"][0].numpy()).max() < 2e-4  # whole slice: exact pairing
    assert len(seen) >= 3


def test_lmdb_is_opened_once_per_process(dbs: Path, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch):
    import shutil

    for name in ("IXI_PD_train_HR.lmdb", "IXI_PD_train_LR_bicubic_X4.lmdb"):
        shutil.copytree(dbs / name, tmp_path / name)  # not yet opened by this process
    dbs = tmp_path
    opened: list[str] = []
    real_open = lmdb.open

    def counting_open(path, *args, **kwargs):
        opened.append(Path(path).name)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(lmdb, "open", counting_open)
    ds = IXIPairedDataset(_opt(dbs, phase="val"))
    assert opened == []  # nothing opened in the parent before workers exist
    for index in range(len(ds)):
        ds[index]
    assert sorted(opened) == ["IXI_PD_train_HR.lmdb", "IXI_PD_train_LR_bicubic_X4.lmdb"]
    train = IXIPairedDataset(_opt(dbs, gt_size=64))  # same databases: shares the environments
    train[0]
    assert len(opened) == 2
    loader = torch.utils.data.DataLoader(train, batch_size=4)
    batch = next(iter(loader))
    assert batch["lq"].shape == (4, 1, 16, 16) and batch["gt"].shape == (4, 1, 64, 64)
    assert len(batch["subject"]) == 4 and batch["slice_index"].dtype == torch.int64


def test_folder_of_16bit_pngs_gives_the_same_items(dbs: Path, tmp_path: Path):
    for name, sub in (("IXI_PD_train_HR.lmdb", "gt"), ("IXI_PD_train_LR_bicubic_X3.lmdb", "lq")):
        (tmp_path / sub).mkdir()
        with readonly_env(dbs / name).begin() as txn:
            for key, value in txn.cursor():
                (tmp_path / sub / f"{key.decode()}.png").write_bytes(bytes(value))
    from_lmdb = IXIPairedDataset(_opt(dbs, scale=3, phase="val"))
    from_disk = IXIPairedDataset(_opt(dbs, scale=3, phase="val", io_backend={"type": "disk"},
                                      dataroot_gt=str(tmp_path / "gt"),
                                      dataroot_lq=str(tmp_path / "lq")))
    assert len(from_disk) == len(from_lmdb)
    for index in (0, 5):
        a, b = from_lmdb[index], from_disk[index]
        assert torch.equal(a["gt"], b["gt"]) and torch.equal(a["lq"], b["lq"])
        assert (a["key"], a["subject"], a["slice_index"]) == \
            (b["key"], b["subject"], b["slice_index"])
        assert b["gt_path"].endswith(f"{b['key']}.png")
    # an 8-bit PNG in the folder is read as /255, not /65535
    gt8 = (np.arange(96 * 96) % 256).astype(np.uint8).reshape(96, 96)
    cv2.imwrite(str(tmp_path / "gt" / f"{from_disk.keys[0]}.png"), gt8)
    assert torch.allclose(from_disk[0]["gt"][0], torch.from_numpy(gt8 / 255.0).float())


def test_bad_options_and_paths_are_reported(dbs: Path, tmp_path: Path):
    with pytest.raises(ValueError, match="gt_size 50 is not a multiple of scale 4"):
        IXIPairedDataset(_opt(dbs, gt_size=50))
    with pytest.raises(ValueError, match=r"LQ slices are 32x32 and GT slices 96x96: not scale 4"):
        IXIPairedDataset(_opt(dbs, dataroot_lq=str(dbs / "IXI_PD_train_LR_bicubic_X3.lmdb")))
    with pytest.raises(FileNotFoundError, match="does_not_exist.lmdb: dataset folder"):
        IXIPairedDataset(_opt(dbs, dataroot_gt=str(tmp_path / "does_not_exist.lmdb")))
    (tmp_path / "gt").mkdir()
    (tmp_path / "lq").mkdir()
    for sub in ("gt", "lq"):
        cv2.imwrite(str(tmp_path / sub / "slice1.png"), np.zeros((8, 8), np.uint16))
    with pytest.raises(ValueError, match="'slice1' is not a slice key"):
        IXIPairedDataset(_opt(dbs, phase="val", io_backend={"type": "disk"},
                              dataroot_gt=str(tmp_path / "gt"), dataroot_lq=str(tmp_path / "lq")))


def test_slice_step_keeps_every_nth_slice(dbs: Path):
    full = IXIPairedDataset(_opt(dbs, phase="test"))
    every2 = IXIPairedDataset(_opt(dbs, phase="test", slice_step=2))
    assert every2.keys == full.keys[::2] and len(every2) == (len(full) + 1) // 2
    with pytest.raises(ValueError, match="slice_step"):
        IXIPairedDataset(_opt(dbs, phase="test", slice_step=0))


def test_dataloader_worker_forked_after_the_parent_read(dbs: Path):
    """A worker forked after the main process opened the LMDB must open its own environment
    (py-lmdb refuses a second open of a path it still counts as open in the process)."""
    from torch.utils.data import DataLoader

    ds = IXIPairedDataset(_opt(dbs, phase="val"))
    first = ds[0]["gt"]  # opens the environment in this process
    loader = DataLoader(ds, batch_size=2, num_workers=1,
                        multiprocessing_context="fork")
    batch = next(iter(loader))
    assert torch.equal(batch["gt"][0], first)


def test_databases_of_another_protocol_or_scale_are_refused(dbs: Path, tmp_path: Path):
    """The manifest and the databases' protocol stamps are checked when a dataset opens."""
    import json
    import shutil

    manifest = json.loads((dbs / "IXI_PD_split.json").read_text())
    assert manifest["protocol"]["plane"] == "acquisition"
    axis = {v["plane_axis_ras"] for v in manifest["volumes"].values()}
    assert axis == {2}  # PD is stored axially
    IXIPairedDataset(_opt(dbs, phase="val", plane="axial"))  # acquisition = axial here: fine
    with pytest.raises(ValueError, match="slices of the acquisition plane, the options ask for "
                                         "plane: sagittal"):
        IXIPairedDataset(_opt(dbs, phase="val", plane="sagittal"))
    with pytest.raises(ValueError, match="not scale 4"):
        IXIPairedDataset(_opt(dbs, phase="val", dataroot_lq=str(dbs / "IXI_PD_train_LR_bicubic_X2.lmdb")))
    # GT from this run, LQ from a run of another protocol (percentile 100): refused
    root = tmp_path / "ixi"
    make_fake_ixi_tree(root, 3, ("PD",), shape=(112, 128, 24))
    other = tmp_path / "other"
    make_ixi_lmdb(PrepConfig(ixi_root=root, modality="PD", out=other, scales=(4,), n_train=2,
                             n_test=1, n_val=0, crop=(96, 96, DEPTH), percentile=100.0, workers=1,
                             progress=False), log=lambda m: None)
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    shutil.copytree(dbs / "IXI_PD_train_HR.lmdb", mixed / "IXI_PD_train_HR.lmdb")
    shutil.copytree(other / "IXI_PD_train_LR_bicubic_X4.lmdb", mixed / "IXI_PD_train_LR_bicubic_X4.lmdb")
    with pytest.raises(ValueError, match="databases of different runs do not mix"):
        IXIPairedDataset(_opt(mixed, phase="val"))
    shutil.copy(other / "IXI_PD_split.json", mixed / "IXI_PD_split.json")
    with pytest.raises(ValueError, match="IXI_PD_train_HR.lmdb: built with data protocol"):
        IXIPairedDataset(_opt(dbs, phase="val", dataroot_gt=str(mixed / "IXI_PD_train_HR.lmdb")))
