"""``w2amsn make-options --data``: options for a dataset ``w2amsn prepare`` wrote (a tiny BIDS tree)
that ``basicsr train -opt FILE.yml`` and ``basicsr test`` run as written; without ``--data`` the
paper's options are unchanged (tests/test_options.py)."""
from __future__ import annotations

import copy
import sys
from pathlib import Path

import pytest
import yaml

import w2amsn_plugin  # noqa: F401  (compat before basicsr)
from conftest import run_cmd
from w2amsn_plugin.cli import w2amsn_main
from w2amsn_plugin.data.fake_bids import make_fake_bids_tree
from w2amsn_plugin.data.fake_ixi import make_fake_ixi_tree


def _write(tmp_path: Path) -> Path:
    """Prepare a tiny BIDS tree and write SRCNN x2 options (2 iterations) for it."""
    vols = make_fake_ixi_tree(tmp_path / "src", 8, ("T1",), shape=(64, 60, 20), seed=3)
    root = make_fake_bids_tree(tmp_path / "mybids", vols)
    data = tmp_path / "datasets" / "mybids"
    assert w2amsn_main(["prepare", "--root", str(root), "--out", str(data), "--workers", "1",
                        "--crop", "48", "48", "4", "--scales", "2", "--no-progress"]) == 0
    opt_file = tmp_path / "options" / "train_mine.yml"
    assert w2amsn_main(["make-options", "--data", str(data), "--arch", "SRCNN", "--scale", "2",
                        "--iters", "2", "--batch", "2", "--out", str(opt_file), "--test"]) == 0
    return opt_file


def test_written_options_pass_basicsr_parsing_and_build_their_datasets(tmp_path, monkeypatch):
    from basicsr.data import build_dataset
    from basicsr.utils.options import parse_options
    from w2amsn_plugin.option_check import check_options

    opt_file = _write(tmp_path)
    for path, is_train in ((opt_file, True), (opt_file.with_name("test_mine.yml"), False)):
        monkeypatch.setattr(sys, "argv", ["basicsr", "-opt", str(path)])
        opt, _ = parse_options(str(tmp_path), is_train=is_train)
        check_options(copy.deepcopy(opt), str(path), is_train=is_train)
        for dopt in opt["datasets"].values():
            ds = build_dataset(dopt)
            assert ds.slices[0][0].startswith("sub-") and ds.slices[0][1] == "T1w"
    assert yaml.safe_load(opt_file.with_name("test_mine.yml").read_text())["path"][
        "pretrain_network_g"].startswith("experiments/SRCNN_mybids_T1w_x2_2it_B2/")


@pytest.mark.slow
def test_options_for_a_prepared_bids_dataset_train_and_test_as_written(tmp_path):
    opt_file = _write(tmp_path)
    train = yaml.safe_load(opt_file.read_text())
    ds = train["datasets"]["train"]
    assert ds["type"] == "MRSliceDataset" and ds["plane"] == "acquisition"
    assert ds["dataroot_gt"].endswith("mybids_T1w_train_HR.lmdb") and ds["gt_size"] == 48
    assert train["train"]["total_iter"] == 2 and train["network_g"]["type"] == "SRCNN"
    proc = run_cmd(["basicsr", "train", "-opt", str(opt_file)], cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    weights = tmp_path / "experiments" / train["name"] / "models" / "net_g_latest.pth"
    assert weights.is_file()
    test_file = opt_file.with_name("test_mine.yml")
    proc = run_cmd(["basicsr", "test", "-opt", str(test_file)], cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "mybids_T1w_test" in proc.stdout + proc.stderr


def test_make_options_data_errors_are_one_line(tmp_path, capsys):
    assert w2amsn_main(["make-options", "--data", str(tmp_path), "--scale", "2", "--out",
                        str(tmp_path / "x.yml")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no manifest" in err[0]
    assert w2amsn_main(["make-options", "--data", str(tmp_path), "--out", str(tmp_path)]) == 2
    assert "--data needs --scale S and --out FILE.yml" in capsys.readouterr().err
    assert not Path(tmp_path / "x.yml").exists()
