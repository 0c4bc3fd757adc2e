"""options/: generated from one table, each file parses with BasicSR's own parser, passes the
plugin's checks and builds its network, dataset and model (issue 8)."""
from __future__ import annotations

import copy
import importlib.util
import sys
from pathlib import Path

import pytest
import yaml

from w2amsn_plugin import experiments as ex
from w2amsn_plugin.option_check import check_options

REPO = Path(__file__).resolve().parent.parent
OPTIONS = sorted((REPO / "options").rglob("*.yml"))


def _make_options_module():
    spec = importlib.util.spec_from_file_location("make_options", REPO / "scripts" / "make_options.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_options_equal_the_table():
    assert _make_options_module().main(["--check"]) == 0


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
    for group in ("ablation_TableI", "ablation_Fig6", "ablation_TableIV", "ablation_TableV",
                  "ablation_TableVI", "ablation_depth"):
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
    assert next(iter(opt["val"]["metrics"].values()))["type"] == "calculate_psnr_fg"


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
