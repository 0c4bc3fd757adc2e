"""Shared fixtures: a tiny paired image folder and tiny BasicSR options, built with BasicSR's own
registered components (SRVGGNetCompact, PairedImageDataset), so the trainer can be exercised in
subprocesses that only import the plugin."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import pytest
import torch
import yaml

# in-process tests on 2 shared cores: one thread avoids oversubscription (measured 6x faster)
torch.set_num_threads(1)

BIN = Path(sys.executable).parent
#: num_gpu of the tiny trainer tests: 0 (CPU) by default; set W2AMSN_TEST_NUM_GPU=1 on a CUDA
#: machine to run the same tests on the GPU (DDP then uses nccl, one rank per GPU)
NUM_GPU = int(os.environ.get("W2AMSN_TEST_NUM_GPU", "0"))


def run_cmd(args: list[str], cwd: Path, timeout: int = 300, env: dict | None = None
            ) -> subprocess.CompletedProcess:
    """Run a console script of this virtualenv (``basicsr``, ``w2amsn``, ...) and capture output."""
    exe = [str(BIN / args[0])] + args[1:] if (BIN / args[0]).exists() else args
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run(exe, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=full_env)


@pytest.fixture(scope="session")
def tiny_pairs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six 32x32 GT / 16x16 LQ PNG pairs of smooth synthetic structure (3 channels, as BasicSR's
    PairedImageDataset reads colour PNGs)."""
    root = tmp_path_factory.mktemp("tiny_pairs")
    (root / "gt").mkdir()
    (root / "lq").mkdir()
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:32, 0:32] / 32.0
    for i in range(6):
        f1, f2, ph = rng.uniform(1, 4, 3)
        base = 0.5 + 0.4 * np.sin(2 * np.pi * (f1 * xx + f2 * yy) + ph)
        img = np.stack([base, base ** 2, 1 - base], axis=-1)
        gt = np.clip(img * 255, 0, 255).astype(np.uint8)
        lq = cv2.resize(gt, (16, 16), interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(root / "gt" / f"img{i}.png"), gt)
        cv2.imwrite(str(root / "lq" / f"img{i}.png"), lq)
    return root


@pytest.fixture
def tiny_options(tiny_pairs: Path, tmp_path: Path) -> Callable[..., Path]:
    """Write a tiny train or test options YAML into ``tmp_path``; return its path."""

    def write(name: str = "tiny", *, phase: str = "train", total_iter: int = 4,
              checkpoint_freq: int = 2, val_freq: int = 2, pretrain: str | None = None) -> Path:
        net = {"type": "SRVGGNetCompact", "num_in_ch": 3, "num_out_ch": 3, "num_feat": 8,
               "num_conv": 2, "upscale": 2, "act_type": "prelu"}
        data = {"type": "PairedImageDataset", "dataroot_gt": str(tiny_pairs / "gt"),
                "dataroot_lq": str(tiny_pairs / "lq"), "io_backend": {"type": "disk"}}
        val = {"save_img": False, "metrics": {"psnr": {"type": "calculate_psnr", "crop_border": 2,
                                                      "test_y_channel": False}}}
        opt: dict = {"name": name, "model_type": "SRModel", "scale": 2, "num_gpu": NUM_GPU,
                     "manual_seed": 0}
        if phase == "train":
            opt["datasets"] = {
                "train": {**data, "name": "tiny_train", "gt_size": 16, "use_hflip": True,
                          "use_rot": True, "num_worker_per_gpu": 0, "batch_size_per_gpu": 2,
                          "dataset_enlarge_ratio": 4},
                "val": {**data, "name": "tiny_val"}}
            opt["network_g"] = net
            opt["path"] = {"pretrain_network_g": None, "strict_load_g": True, "resume_state": None}
            opt["train"] = {"ema_decay": 0, "optim_g": {"type": "Adam", "lr": 1e-3, "betas": [0.9, 0.99]},
                            "scheduler": {"type": "MultiStepLR", "milestones": [100], "gamma": 0.5},
                            "total_iter": total_iter, "warmup_iter": -1,
                            "pixel_opt": {"type": "L1Loss", "loss_weight": 1.0, "reduction": "mean"}}
            opt["val"] = {**val, "val_freq": val_freq}
            opt["logger"] = {"print_freq": 1, "save_checkpoint_freq": checkpoint_freq,
                             "use_tb_logger": False}
            opt["dist_params"] = {"backend": "nccl" if NUM_GPU else "gloo", "port": 29500}
        else:
            opt["datasets"] = {"test_1": {**data, "name": "tiny_test"}}
            opt["network_g"] = net
            opt["path"] = {"pretrain_network_g": pretrain, "strict_load_g": True}
            opt["val"] = {**val, "save_img": True, "suffix": None}
        path = tmp_path / f"{name}_{phase}.yml"
        path.write_text(yaml.safe_dump(opt, sort_keys=False))
        return path

    return write


@pytest.fixture
def run() -> Callable[..., subprocess.CompletedProcess]:
    """:func:`run_cmd` as a fixture."""
    return run_cmd
