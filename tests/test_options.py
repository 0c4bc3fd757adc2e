"""options/: generated from one table, each file parses with BasicSR's own parser, passes the
plugin's checks and builds its network, dataset and model."""
from __future__ import annotations

import copy
import sys
from pathlib import Path

import pytest
import yaml

from w2amsn_plugin import experiments as ex
from w2amsn_plugin.cli import w2amsn_main
from w2amsn_plugin.data.slice_bank import get_bank
from w2amsn_plugin.option_check import check_options

REPO = Path(__file__).resolve().parent.parent
OPTIONS = sorted((REPO / "options").rglob("*.yml"))


def test_committed_options_equal_the_table():
    assert w2amsn_main(["make-options", "--check", "--out", str(REPO / "options")]) == 0


def test_make_options_check_sees_a_changed_and_a_stray_file(tmp_path, capsys):
    out = tmp_path / "options"
    assert w2amsn_main(["make-options", "--out", str(out)]) == 0
    assert w2amsn_main(["make-options", "--check", "--out", str(out)]) == 0
    headline = out / "train_W2AMSN_T1_x2.yml"
    headline.write_text(headline.read_text().replace("total_iter: 500000", "total_iter: 5"))
    (out / "train" / "stray.yml").write_text("name: x\n")
    capsys.readouterr()
    assert w2amsn_main(["make-options", "--check", "--out", str(out)]) == 1
    printed = capsys.readouterr().out
    assert "train_W2AMSN_T1_x2.yml: differs" in printed and "stray.yml: not generated" in printed


def test_matrix_is_complete():
    rel = {str(p.relative_to(REPO / "options")) for p in OPTIONS}
    assert "train_W2AMSN_T1_x2.yml" in rel
    for arch in ("W2AMSN", "W2AMSN_S", "EDSR", "RCAN"):
        for mod in ex.MODALITIES:
            for s in ex.SCALES:
                assert f"train/{arch}/train_{arch}_{mod}_x{s}.yml" in rel
                assert f"test/{arch}/test_{arch}_{mod}_x{s}.yml" in rel
                assert f"test/{arch}/test_{arch}_plus_{mod}_x{s}.yml" in rel
    groups = {p.parent.name for p in OPTIONS}
    for group in ("ablation_tab1", "ablation_fig6", "ablation_tab4", "ablation_tab5",
                  "ablation_tab6", "ablation_depth"):
        assert group in groups


def test_paper_schedule():
    opt = yaml.safe_load((REPO / "options" / "train_W2AMSN_T1_x2.yml").read_text())
    train = opt["train"]
    assert opt["datasets"]["train"]["batch_size_per_gpu"] == 96
    assert opt["datasets"]["train"]["gt_size"] == 64  # 32x32 LR patches at x2
    assert train["optim_g"]["lr"] == 1e-4 and train["optim_g"]["betas"] == [0.9, 0.999]
    assert train["optim_g"]["eps"] == 1e-8 and train["pixel_opt"]["type"] == "L1Loss"
    assert train["total_iter"] == 500_000
    assert train["scheduler"] == {"type": "MultiStepLR", "gamma": 0.5,
                                  "milestones": [100_000, 200_000, 300_000, 400_000]}
    first = {"whole": "calculate_psnr_mr", "foreground": "calculate_psnr_fg"}[ex.METRICS_FIRST]
    assert next(iter(opt["val"]["metrics"].values()))["type"] == first


@pytest.mark.parametrize("path", OPTIONS, ids=lambda p: str(p.relative_to(REPO / "options")))
def test_options_parse_and_check(path, monkeypatch, tmp_path):
    """BasicSR's parse_options reads it (as `basicsr train|test -opt` will) and the plugin's
    checks (registry names, network arguments, optimizer, scheduler) accept it."""
    from basicsr.utils.options import parse_options

    is_train = "/train" in str(path) or path.name.startswith("train_")
    monkeypatch.setattr(sys, "argv", ["basicsr", "-opt", str(path)])
    opt, _ = parse_options(str(tmp_path), is_train=is_train)
    check_options(copy.deepcopy(opt), str(path), is_train=is_train)
    assert opt["network_g"]["upscale"] == opt["scale"]


@pytest.fixture(scope="module")
def small_lmdb(tmp_path_factory):
    """A small IXI-layout LMDB set (T1, x2/x3/x4, every split) from the real MR sample."""
    from w2amsn_plugin.data.fake_ixi import make_fake_ixi_tree
    from w2amsn_plugin.data.prepare import PrepConfig, make_ixi_lmdb

    root = tmp_path_factory.mktemp("opt_lmdb")
    make_fake_ixi_tree(root / "ixi", 3, modalities=["T1"], shape=(140, 150, 24))
    make_ixi_lmdb(PrepConfig(ixi_root=root / "ixi", modality="T1", out=root / "db", scales=(2, 3, 4),
                             n_train=1, n_test=1, n_val=1, crop=(132, 144, 2), workers=1,
                             progress=False), log=lambda _m: None)
    return root / "db"


def _redirect(opt: dict, db: Path) -> dict:
    """Point every dataset of ``opt`` at the small LMDBs (same split and scale)."""
    for d in opt["datasets"].values():
        for key in ("dataroot_gt", "dataroot_lq"):
            name = Path(d[key]).name
            d[key] = str(db / ("IXI_T1_" + name.split("_", 2)[2]))
    return opt


def test_every_options_file_builds_network_dataset_and_model(small_lmdb, monkeypatch, tmp_path):
    """For each distinct network and phase in options/: BasicSR's build_network, build_dataset
    (on small LMDBs of the same layout) and build_model (MRSRModel with its optimizer)."""
    import torch
    from basicsr.archs import build_network
    from basicsr.data import build_dataset
    from basicsr.models import build_model
    from basicsr.utils.options import parse_options

    built_nets, built_models = set(), set()
    for path in OPTIONS:
        is_train = "/train" in str(path) or path.name.startswith("train_")
        monkeypatch.setattr(sys, "argv", ["basicsr", "-opt", str(path)])
        opt, _ = parse_options(str(tmp_path), is_train=is_train)
        _redirect(opt, small_lmdb)
        for dopt in opt["datasets"].values():
            ds = build_dataset(dopt)
            item = ds[0]
            if "bank_index" in item:  # on_device: the batch comes from the slice bank
                lq, gt = get_bank(item["bank"]).sample([item["bank_index"]])
                item = {"lq": lq[0], "gt": gt[0]}
            assert item["lq"].shape[0] == 1 and item["gt"].shape[-1] == item["lq"].shape[-1] * opt["scale"]
        net_key = repr(sorted(opt["network_g"].items()))
        if net_key not in built_nets:
            built_nets.add(net_key)
            with torch.device("meta"):  # shapes only: no weight init, no arithmetic
                net = build_network(dict(opt["network_g"]))
                out = net(torch.empty(1, 1, 12, 12))
            assert out.shape[-2:] == (12 * opt["scale"], 12 * opt["scale"])
        model_key = (opt["model_type"], opt["network_g"]["type"], is_train)
        if model_key not in built_models:
            built_models.add(model_key)
            opt["path"]["pretrain_network_g"] = None
            model = build_model(opt)
            assert type(model).__name__ == "MRSRModel"
    assert len(built_nets) >= 20
