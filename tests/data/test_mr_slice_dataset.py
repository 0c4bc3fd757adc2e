"""MRSliceDataset reads any prepared dataset (here a BIDS one) through BasicSR's build_dataset, its
checks read the manifest's protocol, and a database in the layout older versions wrote (unsorted
pages, a lock.mdb) still loads under the name older options use, IXIPairedDataset."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

import w2amsn_plugin  # noqa: F401  (compat before basicsr)
from basicsr.data import build_dataset
from w2amsn_plugin.cli import w2amsn_main
from w2amsn_plugin.data.fake_bids import make_fake_bids_tree
from w2amsn_plugin.data.fake_ixi import make_fake_ixi_tree
from w2amsn_plugin.data.lmdb_io import LmdbWriter, readonly_env
from w2amsn_plugin.protocol import database_path

SMALL = ["--crop", "48", "48", "4", "--scales", "2", "--no-progress"]



@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("mrds")
    vols = make_fake_ixi_tree(tmp / "src", 8, ("T1",), shape=(64, 60, 20), seed=3)
    root = make_fake_bids_tree(tmp / "toy", vols)
    out = tmp / "db"
    assert w2amsn_main(["prepare", "--root", str(root), "--out", str(out), "--workers", "1",
                        "--split", "4", "1", "1", *SMALL]) == 0
    return out


def _opt(out: Path, split: str = "val", type_: str = "MRSliceDataset", **kw) -> dict:
    return {"name": "x", "type": type_, "phase": "val", "scale": 2,
            "dataroot_gt": database_path(str(out), "T1w", split, dataset="toy"),
            "dataroot_lq": database_path(str(out), "T1w", split, 2, dataset="toy"),
            "io_backend": {"type": "lmdb"}} | kw


def test_registered_dataset_reads_a_bids_dataset(prepared):
    ds = build_dataset(_opt(prepared, "train", phase="train", gt_size=24))
    item = ds[0]
    assert item["gt"].shape == (1, 24, 24) and item["lq"].shape == (1, 12, 12)
    assert item["modality"] == "T1w" and item["subject"].startswith("sub-")
    assert len(ds) == 5 * 4  # 5 train volumes (sub-03 has two sessions) x 4 slices


def test_checks_read_the_manifest(prepared, tmp_path):
    build_dataset(_opt(prepared, plane="acquisition"))
    with pytest.raises(ValueError, match="slices of the acquisition plane, the options ask for "
                                         "plane: coronal"):
        build_dataset(_opt(prepared, plane="coronal"))
    other = tmp_path / "other"
    shutil.copytree(prepared, other)
    stamp = Path(database_path(str(other), "T1w", "val", 2, dataset="toy"), "w2amsn_protocol.json")
    stamp.write_text(stamp.read_text().replace(json.loads(stamp.read_text())["protocol_id"],
                                               "0123456789abcdef"))
    with pytest.raises(ValueError, match="built with data protocol 0123456789abcdef"):
        build_dataset(_opt(other))


def test_a_database_in_the_older_layout_loads_under_the_older_name(prepared, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(prepared, old)
    for kind in (None, 2):  # rewrite val's databases as older versions did: a lock.mdb, any order
        folder = Path(database_path(str(old), "T1w", "val", kind, dataset="toy"))
        with readonly_env(Path(database_path(str(prepared), "T1w", "val", kind,
                                             dataset="toy"))).begin() as txn:
            items = [(k.decode(), bytes(v)) for k, v in txn.cursor()][::-1]
        (folder / "data.mdb").unlink()
        writer = LmdbWriter(folder, 1 << 26)
        for key, value in items:
            writer.put_many([(key, value)])
        writer.close()
        assert (folder / "lock.mdb").is_file()
    new = build_dataset(_opt(prepared))
    legacy = build_dataset(_opt(old, type_="IXIPairedDataset"))
    assert type(legacy).__name__ == "IXIPairedDataset" and len(legacy) == len(new)
    for i in range(len(new)):
        assert torch.equal(new[i]["gt"], legacy[i]["gt"]) and new[i]["key"] == legacy[i]["key"]


def test_ixi_databases_keep_ixi_names(tmp_path):
    make_fake_ixi_tree(tmp_path / "ixi", 3, ("PD",), shape=(64, 60, 20))
    assert w2amsn_main(["prepare-ixi", "--ixi-root", str(tmp_path / "ixi"), "--modality", "PD",
                        "--out", str(tmp_path / "db"), "--n-train", "1", "--n-test", "1",
                        "--n-val", "1", "--workers", "1", *SMALL]) == 0
    assert sorted(p.name for p in (tmp_path / "db").iterdir() if not p.name.startswith(".")) == [
        "IXI_PD_split.json", "IXI_PD_test_HR.lmdb", "IXI_PD_test_LR_bicubic_X2.lmdb",
        "IXI_PD_train_HR.lmdb", "IXI_PD_train_LR_bicubic_X2.lmdb", "IXI_PD_val_HR.lmdb",
        "IXI_PD_val_LR_bicubic_X2.lmdb"]
    ds = build_dataset({"name": "x", "type": "IXIPairedDataset", "phase": "val", "scale": 2,
                        "dataroot_gt": database_path(str(tmp_path / "db"), "PD", "val"),
                        "dataroot_lq": database_path(str(tmp_path / "db"), "PD", "val", 2),
                        "io_backend": {"type": "lmdb"}})
    assert ds[0]["modality"] == "PD"
