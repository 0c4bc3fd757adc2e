"""MRSRModel: float metrics, x8 self-ensemble, per-volume tables, best checkpoint by foreground PSNR.

Data: slices of the shipped real MR sample (two volumes, one slice above the head with no
foreground), served by a tiny in-memory dataset that yields IXIPairedDataset's item fields.
Network: W2AMSN with 4 features and 1 block.
"""
from __future__ import annotations

import copy
import csv
import functools
import logging
import math
import re
import warnings
from pathlib import Path

import cv2
import nibabel as nib
import numpy as np
import pytest
import torch
import yaml

import w2amsn_plugin  # noqa: F401  (registers the plugin)
from basicsr.data import build_dataloader, build_dataset
from basicsr.models import build_model
from basicsr.utils.matlab_functions import imresize
from basicsr.utils.registry import DATASET_REGISTRY
from torch.utils.data import Dataset
from w2amsn_plugin.cli import basicsr_main
from w2amsn_plugin.data.normalization import normalize_intensity
from w2amsn_plugin.data.png16 import to_uint16
from w2amsn_plugin.data.samples import sample_path
from w2amsn_plugin.metrics import calculate_psnr_fg, calculate_psnr_mr
from w2amsn_plugin.results.tables import table_iii_from_csvs
from w2amsn_plugin.archs.self_ensemble import self_ensemble

# volume -> axial slices; colin27 slice 180 is above the head (no foreground)
VOLUMES = {"colin27_t1": (60, 100, 180), "mni152_2009a_t1": (80, 120)}
NET = {"type": "W2AMSN", "num_in_ch": 1, "num_out_ch": 1, "num_feat": 4, "num_block": 1, "upscale": 2}
METRICS = {"psnr_fg": {"type": "calculate_psnr_fg", "crop_border": 2, "fg_threshold": 0.05,
                       "better": "higher"},
           "ssim_fg": {"type": "calculate_ssim_fg", "crop_border": 2},
           "psnr": {"type": "calculate_psnr_mr", "crop_border": 2},
           "ssim": {"type": "calculate_ssim_mr", "crop_border": 2}}


@functools.lru_cache(maxsize=None)
def _slices(name: str) -> dict[int, np.ndarray]:
    """44x52 GT slices (every 4th voxel of the normalised volume) keyed by slice index."""
    vol = np.asarray(nib.as_closest_canonical(nib.load(sample_path(name))).dataobj)
    norm, _, _ = normalize_intensity(vol)
    return {z: np.ascontiguousarray(norm[::4, ::4, z][:44, :52]) for z in VOLUMES[name]}


class MRSRModelTestSlices(Dataset):
    """Items as IXIPairedDataset yields them; ``with_fields: false`` leaves out key/subject/
    modality/slice_index (then MRSRModel parses them from the LQ file name)."""

    def __init__(self, opt: dict) -> None:
        self.opt = opt
        self.items = [(name, z) for name in VOLUMES for z in VOLUMES[name]]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict:
        name, z = self.items[index]
        gt = _slices(name)[z]
        lq = imresize(gt, 0.5).clip(0, 1)
        key = f"{name.replace('_', '-')}_T1_s{z:03d}"
        item = {"lq": torch.from_numpy(lq)[None].float(), "gt": torch.from_numpy(gt)[None].float(),
                "lq_path": f"/lq/{key}.png", "gt_path": f"/gt/{key}.png"}
        if self.opt.get("with_fields", True):
            item.update(key=key, subject=name.replace("_", "-"), modality="T1", slice_index=z)
        return item


if "MRSRModelTestSlices" not in DATASET_REGISTRY:
    DATASET_REGISTRY.register(MRSRModelTestSlices)


def _opt(tmp_path: Path, **val) -> dict:
    """Options as BasicSR's parse_options returns them for a test run (no YAML round trip)."""
    return {"name": "mr_test", "model_type": "MRSRModel", "scale": 2, "num_gpu": 0, "is_train": False,
            "dist": False, "rank": 0, "world_size": 1, "network_g": dict(NET),
            "path": {"pretrain_network_g": None, "strict_load_g": True,
                     "results_root": str(tmp_path / "results"),
                     "visualization": str(tmp_path / "results" / "visualization"), "log": str(tmp_path),
                     "models": str(tmp_path / "models")},
            "val": {"save_img": False, "suffix": None, "metrics": copy.deepcopy(METRICS), **val}}


def _loader(**extra):
    dataset = build_dataset({"type": "MRSRModelTestSlices", "name": "toy", "phase": "val", **extra})
    return build_dataloader(dataset, {"phase": "val"}, num_gpu=0, dist=False)


def _model(tmp_path: Path, **val):
    torch.manual_seed(0)
    return build_model(_opt(tmp_path, **val))


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny convolutions on 2 shared cores: torch's thread pool costs ~7x here."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def basicsr_log():
    """Messages of BasicSR's logger (it does not propagate, so caplog cannot see them)."""
    logger = logging.getLogger("basicsr")
    records: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: records.append(record.getMessage())
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield records
    logger.removeHandler(handler)
    logger.setLevel(old_level)


def test_tables_per_volume_with_bicubic_and_skipped_slices(tmp_path, basicsr_log):
    model = _model(tmp_path)
    model.validation(_loader(), current_iter="mr_test", tb_logger=None)
    results = tmp_path / "results"
    volumes = _read_csv(results / "toy_volumes.csv")
    slices = _read_csv(results / "toy_slices.csv")
    assert [v["subject"] for v in volumes] == ["colin27-t1", "mni152-2009a-t1"]
    assert [int(v["n_slices"]) for v in volumes] == [3, 2] and len(slices) == 5
    assert {v["method"] for v in volumes} == {"W2AMSN"}
    colin = volumes[0]
    assert colin["skipped_psnr_fg"] == colin["skipped_ssim_fg"] == "1" and colin["skipped_psnr"] == "0"
    empty = next(s for s in slices if s["slice_index"] == "180")
    assert empty["psnr_fg"] == empty["bicubic_psnr_fg"] == ""  # skipped, not NaN
    for row in slices + volumes:
        assert "nan" not in ",".join(row.values()).lower() and "inf" not in ",".join(row.values()).lower()
    # per volume: mean over its slices (skipped ones left out); per set: mean over volumes
    colin_fg = [float(s["psnr_fg"]) for s in slices if s["subject"] == "colin27-t1" and s["psnr_fg"]]
    assert float(colin["psnr_fg"]) == pytest.approx(np.mean(colin_fg))
    assert model.metric_results["psnr_fg"] == pytest.approx(np.mean([float(v["psnr_fg"]) for v in volumes]))
    assert set(model.metric_results) == set(METRICS)
    table = (results / "toy_table.md").read_text()
    assert "| Data | Scale | Bicubic | W2AMSN |" in table
    bicubic_fg = np.mean([float(v["bicubic_psnr_fg"]) for v in volumes])
    bicubic_ssim = np.mean([float(v["bicubic_ssim_fg"]) for v in volumes])
    mean_fg = model.metric_results["psnr_fg"]
    assert f"| T1 | ×2 | {bicubic_fg:.2f}/{bicubic_ssim:.4f} | {mean_fg:.2f}/" in table
    assert "### psnr / ssim" in table and "nan" not in table.lower()
    assert "slices without foreground (skipped): psnr_fg 1, ssim_fg 1" in table
    log = "\n".join(basicsr_log)
    assert "# psnr_fg:" in log and "2 volumes, 5 slices" in log and "bicubic: psnr_fg" in log


def test_metrics_use_the_float_output_unless_uint8_is_asked(tmp_path):
    model = _model(tmp_path, uint8_metrics=False)
    model.validation(_loader(), current_iter="mr_test", tb_logger=None)
    item = _loader().dataset[1]  # colin27 slice 100
    model.feed_data({k: (v[None] if torch.is_tensor(v) else [v]) for k, v in item.items()})
    model.test()
    sr = model.output[0, 0].clamp(0, 1).numpy()
    gt = item["gt"][0].numpy()
    row = next(s for s in _read_csv(tmp_path / "results" / "toy_slices.csv") if s["slice_index"] == "100")
    assert float(row["psnr_fg"]) == pytest.approx(calculate_psnr_fg(sr, gt, crop_border=2), abs=1e-9)
    bicubic = imresize(item["lq"], 2).clamp(0, 1)[0].numpy()
    assert float(row["bicubic_psnr"]) == pytest.approx(calculate_psnr_mr(bicubic, gt, crop_border=2),
                                                       abs=1e-9)

    model = _model(tmp_path, uint8_metrics=True)
    model.validation(_loader(), current_iter="mr_test", tb_logger=None)
    row8 = next(s for s in _read_csv(tmp_path / "results" / "toy_slices.csv") if s["slice_index"] == "100")
    to8 = lambda a: np.round(a * 255).astype(np.uint8)  # noqa: E731
    assert float(row8["psnr_fg"]) == pytest.approx(calculate_psnr_fg(to8(sr), to8(gt), crop_border=2),
                                                   abs=1e-9)
    assert abs(float(row8["psnr_fg"]) - float(row["psnr_fg"])) > 1e-4


def test_basicsr_metrics_still_get_uint8_images(tmp_path):
    model = _model(tmp_path, metrics={"psnr_basicsr": {"type": "calculate_psnr", "crop_border": 2},
                                      "psnr_mr": {"type": "calculate_psnr_mr", "crop_border": 2}},
                   uint8_metrics=True)
    model.validation(_loader(), current_iter="mr_test", tb_logger=None)
    assert model.metric_results["psnr_basicsr"] == pytest.approx(model.metric_results["psnr_mr"], abs=1e-9)


def test_self_ensemble_option(tmp_path):
    plain, ensemble = _model(tmp_path), _model(tmp_path, self_ensemble=True)
    lq = _loader().dataset[0]["lq"][None]
    plain.net_g.eval()
    for model in (plain, ensemble):
        mode = model.net_g.training
        model.feed_data({"lq": lq})
        model.test()
        assert model.net_g.training is mode  # test() restores the train/eval mode it found
    net = plain.get_bare_model(plain.net_g)
    with torch.no_grad():
        torch.testing.assert_close(ensemble.output, self_ensemble(net, lq))
        torch.testing.assert_close(plain.output, net(lq))
    assert (ensemble.output - plain.output).abs().max() > 1e-4
    ensemble.validation(_loader(), current_iter="mr_test", tb_logger=None)
    assert "| Bicubic | W2AMSN+ |" in (tmp_path / "results" / "toy_table.md").read_text()


def test_bf16_and_channels_last_options(tmp_path):
    lq = _loader().dataset[1]["lq"][None]
    outputs = {}
    for val in ({}, {"bf16": True}, {"channels_last": True}):
        model = _model(tmp_path, **val)
        model.feed_data({"lq": lq})
        with warnings.catch_warnings():  # "bf16 is emulated" on CPUs without native bf16
            warnings.simplefilter("ignore", RuntimeWarning)
            model.test()
        outputs[tuple(val)] = model.output
        assert model.output.dtype == torch.float32
    torch.testing.assert_close(outputs[("channels_last",)], outputs[()], atol=1e-5, rtol=0)
    bf16_error = (outputs[("bf16",)] - outputs[()]).abs().max()
    assert 0 < bf16_error < 0.05  # bf16 really ran, and stayed close


def test_tables_of_several_runs_merge_into_one_table_iii(tmp_path):
    runs = []
    for i, val in enumerate(({}, {"self_ensemble": True})):
        _model(tmp_path, **val).validation(_loader(), current_iter="mr_test", tb_logger=None)
        runs.append(tmp_path / f"run{i}.csv")
        (tmp_path / "results" / "toy_volumes.csv").rename(runs[-1])
    table = table_iii_from_csvs(runs)
    assert "| Data | Scale | Bicubic | W2AMSN | W2AMSN+ |" in table
    assert "- T1 ×2: 2 volumes, 5 slices" in table  # the shared bicubic volumes count once
    assert table.count("| T1 | ×2 |") == 2  # one row in the foreground and the whole-slice table


def test_with_ixi_paired_dataset_folders(tmp_path):
    for side in ("gt", "lq"):
        (tmp_path / side).mkdir()
    for name, zs in VOLUMES.items():
        for z in zs:
            gt = _slices(name)[z]
            key = f"{name.replace('_', '-')}_T1_s{z:03d}"
            cv2.imwrite(str(tmp_path / "gt" / f"{key}.png"), to_uint16(gt))
            cv2.imwrite(str(tmp_path / "lq" / f"{key}.png"), to_uint16(imresize(gt, 0.5)))
    dataset = build_dataset({"type": "IXIPairedDataset", "name": "ixi", "phase": "val", "scale": 2,
                             "dataroot_gt": str(tmp_path / "gt"), "dataroot_lq": str(tmp_path / "lq"),
                             "io_backend": {"type": "disk"}})
    model = _model(tmp_path)
    model.validation(build_dataloader(dataset, {"phase": "val"}, num_gpu=0, dist=False), "mr_test", None)
    volumes = _read_csv(tmp_path / "results" / "ixi_volumes.csv")
    assert [(v["subject"], v["modality"], v["n_slices"]) for v in volumes] == [
        ("colin27-t1", "T1", "3"), ("mni152-2009a-t1", "T1", "2")]
    assert volumes[0]["skipped_psnr_fg"] == "1"


def test_missing_item_fields_fall_back_to_the_key(tmp_path):
    model = _model(tmp_path, save_img=True)
    model.validation(_loader(with_fields=False), current_iter="mr_test", tb_logger=None, save_img=True)
    slices = _read_csv(tmp_path / "results" / "toy_slices.csv")
    assert {s["subject"] for s in slices} == {"colin27-t1", "mni152-2009a-t1"}
    assert {s["modality"] for s in slices} == {"T1"} and "180" in {s["slice_index"] for s in slices}
    png = tmp_path / "results" / "visualization" / "toy" / "colin27-t1_T1_s100_mr_test.png"
    img = cv2.imread(str(png), cv2.IMREAD_UNCHANGED)
    assert img.dtype == np.uint16 and img.shape == (44, 52)


def test_best_checkpoint_follows_foreground_psnr(tmp_path, basicsr_log):
    opt = _opt(tmp_path)
    opt.update(is_train=True, train={"ema_decay": 0, "optim_g": {"type": "Adam", "lr": 1e-3},
                                     "scheduler": {"type": "MultiStepLR", "milestones": [10], "gamma": 0.5},
                                     "pixel_opt": {"type": "L1Loss", "loss_weight": 1.0}})
    model = build_model(opt)
    best = tmp_path / "models" / "net_g_best.pth"
    model._initialize_best_metric_results("toy")
    for it, value, saved in ((1, 30.0, True), (2, 29.0, False), (3, 31.0, True)):
        before = best.stat().st_mtime_ns if best.exists() else None
        model._update_best_metric_result("toy", "psnr_fg", value, it)
        model._update_best_metric_result("toy", "psnr", 99.0 - it, it)  # other metrics: no checkpoint
        assert torch.load(best, weights_only=True)["best"]["iter"] == (it if saved else it - 1)
        assert (best.stat().st_mtime_ns != before) == saved or before is None
    state = torch.load(best, weights_only=True)
    assert state["best"] == {"dataset": "toy", "metric": "psnr_fg", "val": 31.0, "iter": 3}
    model.load_network(model.net_g, str(best))  # BasicSR can load it (key 'params')
    assert not list(best.parent.glob("*.tmp"))
    resumed = build_model(opt)  # after a resume, the stored best is the value to beat
    resumed._initialize_best_metric_results("toy")
    assert resumed.best_metric_results["toy"]["psnr_fg"] == {"better": "higher", "val": 31.0, "iter": 3}
    assert any("Saved" in m and "psnr_fg 31.0000 @ iter 3" in m for m in basicsr_log)


@pytest.mark.parametrize("val, message", [({"self_ensemble": "yes"}, "self_ensemble"),
                                          ({"bf16": "maybe"}, "bf16"),
                                          ({"best_metric": "psnr_typo"}, "best_metric: psnr_typo")])
def test_bad_val_options_raise_one_clear_error(tmp_path, val, message):
    with pytest.raises(ValueError, match=message):
        _model(tmp_path, **val)


def _yaml(tmp_path: Path, phase: str) -> Path:
    data = {"type": "MRSRModelTestSlices", "name": "toy"}
    opt = {"name": f"mr_{phase}", "model_type": "MRSRModel", "scale": 2, "num_gpu": 0, "manual_seed": 0,
           "network_g": NET, "val": {"save_img": False, "self_ensemble": phase == "test", "metrics": METRICS}}
    if phase == "train":
        opt["datasets"] = {"train": {**data, "num_worker_per_gpu": 0, "batch_size_per_gpu": 2,
                                     "dataset_enlarge_ratio": 1}, "val": data}
        opt["path"] = {"pretrain_network_g": None, "strict_load_g": True, "resume_state": None}
        opt["train"] = {"ema_decay": 0, "optim_g": {"type": "Adam", "lr": 1e-3},
                        "scheduler": {"type": "MultiStepLR", "milestones": [100], "gamma": 0.5},
                        "total_iter": 1, "warmup_iter": -1,
                        "pixel_opt": {"type": "L1Loss", "loss_weight": 1.0}}
        opt["val"]["val_freq"] = 1
        opt["logger"] = {"print_freq": 1, "save_checkpoint_freq": 100, "use_tb_logger": False}
    else:
        opt["datasets"] = {"test_1": data}
        best = tmp_path / "experiments" / "mr_train" / "models" / "net_g_best.pth"
        opt["path"] = {"pretrain_network_g": str(best),
                       "strict_load_g": True}
    path = tmp_path / f"{phase}.yml"
    path.write_text(yaml.safe_dump(opt, sort_keys=False))
    return path


def test_basicsr_train_then_test_commands(tmp_path, monkeypatch, basicsr_log):
    monkeypatch.chdir(tmp_path)
    assert basicsr_main(["train", "-opt", str(_yaml(tmp_path, "train"))]) == 0
    log = "\n".join(basicsr_log)
    logged = re.findall(r"# psnr_fg: [-\d.]+\tBest: ([-\d.]+) @ (\d+) iter", log)
    assert len(logged) >= 2  # at val_freq and BasicSR's final validation
    best = torch.load(tmp_path / "experiments" / "mr_train" / "models" / "net_g_best.pth", weights_only=True)
    assert best["best"]["metric"] == "psnr_fg"
    assert (f"{best['best']['val']:.4f}", str(best["best"]["iter"])) == logged[-1]
    assert basicsr_main(["test", "-opt", str(_yaml(tmp_path, "test"))]) == 0
    results = tmp_path / "results" / "mr_test"
    assert len(_read_csv(results / "toy_volumes.csv")) == 2
    assert "| T1 | ×2 |" in (results / "toy_table.md").read_text()
    assert all(math.isfinite(float(v["psnr_fg"])) for v in _read_csv(results / "toy_volumes.csv"))
