"""Training for a wall time (``train: scheduler: type: TimedCosineLR``): the schedule follows the
seconds spent (or the iterations, whichever is further), the seconds survive a resume, and
BasicSR's loop ends when they are spent, saving the latest weights and validating."""
from __future__ import annotations

import math
import os
import re
import subprocess
from pathlib import Path

import pytest
import torch
import yaml

from conftest import BIN
from w2amsn_plugin.data.fake_ixi import make_fake_ixi_tree
from w2amsn_plugin.data.prepare import PrepConfig, make_ixi_lmdb
from w2amsn_plugin import time_budget
from w2amsn_plugin.time_budget import SPENT_MESSAGE, SPENT_PATTERN, TimedCosineLR, UntilSpent
from w2amsn_plugin.option_check import OptionsError, check_options


class Clock:
    """A stand-in for ``time.monotonic`` that moves only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(time_budget.time, "monotonic", fake)
    return fake


def _scheduler(seconds: float = 100.0, total_iter: int = 1000, lr: float = 1e-3) -> TimedCosineLR:
    net = torch.nn.Linear(2, 2)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    return TimedCosineLR(opt, seconds=seconds, total_iter=total_iter, eta_min=lr * 0.01)


def _lr(s: TimedCosineLR) -> float:
    return s.optimizer.param_groups[0]["lr"]


def _iteration(s: TimedCosineLR, clock: Clock, seconds: float) -> None:
    """One training iteration of ``seconds``: the optimiser's step, then the scheduler's."""
    clock.now += seconds
    s.optimizer.step()
    s.step()


def test_learning_rate_follows_the_seconds_spent(clock):
    s = _scheduler()
    assert _lr(s) == pytest.approx(1e-3)
    for expected_fraction in (0.25, 0.5, 0.75):
        _iteration(s, clock, 25.0)
        cosine = 1e-5 + (1e-3 - 1e-5) * 0.5 * (1 + math.cos(math.pi * expected_fraction))
        assert _lr(s) == pytest.approx(cosine) and not s.spent
    _iteration(s, clock, 30.0)
    assert s.spent and _lr(s) == pytest.approx(1e-5) and s.progress == 1.0


def test_iterations_end_the_schedule_when_they_run_out_first(clock):
    s = _scheduler(seconds=1e6, total_iter=10)
    for _ in range(5):
        _iteration(s, clock, 1.0)
    assert s.progress == pytest.approx(0.5) and _lr(s) == pytest.approx(1e-5 + (1e-3 - 1e-5) * 0.5)
    for _ in range(5):
        _iteration(s, clock, 0.0)
    assert _lr(s) == pytest.approx(1e-5) and not s.spent and s.iterations == 11


def test_seconds_spent_survive_a_resume_but_the_time_between_runs_does_not(clock):
    s = _scheduler()
    _iteration(s, clock, 40.0)
    state = s.state_dict()
    assert state["elapsed"] == pytest.approx(40.0) and "_tick" not in state
    clock.now += 5000.0  # the run was down for a while
    resumed = _scheduler(seconds=200.0)  # the options now give it more time
    resumed.load_state_dict(state)
    _iteration(resumed, clock, 10.0)
    assert resumed.elapsed == pytest.approx(50.0) and resumed.last_epoch == 2
    assert resumed.seconds == 200.0 and resumed.progress == pytest.approx(0.25)


def test_loader_ends_once_the_seconds_are_spent(clock):
    """BasicSR's order: the loader is made first, then the model's scheduler; each iteration
    from the second steps the scheduler before its work (1 s here)."""
    loader = UntilSpent(range(100))
    s = _scheduler(seconds=3.0)
    seen = []
    for i, batch in enumerate(loader):
        if i:
            s.optimizer.step()
            s.step()
        seen.append(batch)
        clock.now += 1.0
    assert seen == [0, 1, 2] and s.iterations == 3
    assert list(loader) == []  # the next epoch: nothing fetched
    line = SPENT_MESSAGE.format(seconds=s.spent_seconds, iterations=s.iterations)
    assert line == "Training time budget spent: 3 s, 3 iterations."
    assert SPENT_PATTERN.search(f"2026-12-03 INFO: {line}").group(1) == "3"
    # a loader made after a spent scheduler (the next run in this process) is not ended by it
    assert list(UntilSpent(range(3))) == [0, 1, 2]


def test_a_validation_after_the_last_step_counts(clock):
    """The budget is checked against the time up to now, not to the last scheduler step."""
    loader = UntilSpent(range(100))
    s = _scheduler(seconds=10.0)
    seen = []
    for batch in loader:
        seen.append(batch)
        clock.now += 60.0  # the first iteration's validation overruns the budget
    assert seen == [0] and s.spent


@pytest.mark.parametrize("seconds", [0, -5, "ten", None])
def test_options_check_wants_positive_seconds(seconds, tmp_path):
    opt = yaml.safe_load(_timed_options(tmp_path, tmp_path / "db", seconds=seconds).read_text())
    with pytest.raises(OptionsError, match=r"^run.yml: train:scheduler:seconds"):
        check_options(opt, "run.yml")
    opt["train"]["scheduler"]["seconds"] = 10
    check_options(opt, "run.yml")


@pytest.mark.parametrize("change,match", [
    ({"model_type": "SRModel"}, "MRSRModel's; model_type is 'SRModel'"),
    ({"periods": [100]}, "takes seconds and eta_min, not periods"),
    ({"eta_min": "small"}, "train:scheduler:eta_min"),
])
def test_options_check_refuses_what_the_scheduler_cannot_take(change, match, tmp_path):
    opt = yaml.safe_load(_timed_options(tmp_path, tmp_path / "db", seconds=10).read_text())
    if "model_type" in change:
        opt.update(change)
    else:
        opt["train"]["scheduler"].update(change)
    with pytest.raises(OptionsError, match=re.escape(match)):
        check_options(opt, "run.yml")


@pytest.fixture(scope="module")
def db(tmp_path_factory) -> Path:
    """x2 IXI-layout LMDBs of 48x48 slices (4 per volume)."""
    root = tmp_path_factory.mktemp("timed_db")
    make_fake_ixi_tree(root / "ixi", 3, ("T1",), shape=(70, 80, 12))
    make_ixi_lmdb(PrepConfig(ixi_root=root / "ixi", out=root / "db", modality="T1", scales=(2,), n_train=1,
                             n_test=1, n_val=1, crop=(48, 48, 4), plane="axial", workers=1,
                             progress=False), log=lambda _m: None)
    return root / "db"


def _timed_options(tmp_path: Path, db: Path, seconds: float) -> Path:
    def split(s: str) -> dict:
        return {"type": "IXIPairedDataset", "io_backend": {"type": "lmdb"}, "name": f"IXI_T1_{s}",
                "dataroot_gt": str(db / f"IXI_T1_{s}_HR.lmdb"),
                "dataroot_lq": str(db / f"IXI_T1_{s}_LR_bicubic_X2.lmdb")}

    opt = {"name": "timed", "model_type": "MRSRModel", "scale": 2, "num_gpu": 0, "manual_seed": 0,
           "network_g": {"type": "W2AMSN", "num_in_ch": 1, "num_out_ch": 1, "num_feat": 4,
                         "num_block": 1, "upscale": 2},
           "datasets": {"train": {**split("train"), "gt_size": 16, "use_hflip": True, "use_rot": True,
                                  "num_worker_per_gpu": 0, "batch_size_per_gpu": 2,
                                  "dataset_enlarge_ratio": 1},
                        "val": split("val")},
           "path": {"pretrain_network_g": None, "strict_load_g": True, "resume_state": None},
           "train": {"ema_decay": 0, "optim_g": {"type": "Adam", "lr": 1e-3},
                     "scheduler": {"type": "TimedCosineLR", "seconds": seconds, "eta_min": 1e-5},
                     "total_iter": 100_000, "warmup_iter": -1,
                     "pixel_opt": {"type": "L1Loss", "loss_weight": 1.0}},
           "val": {"save_img": False, "val_freq": 100_000,
                   "metrics": {"psnr_fg": {"type": "calculate_psnr_fg", "crop_border": 2}}},
           "logger": {"print_freq": 1, "save_checkpoint_freq": 20, "use_tb_logger": False}}
    path = tmp_path / "timed.yml"
    path.write_text(yaml.safe_dump(opt, sort_keys=False))
    return path


def _train(tmp_path: Path, opt: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "basicsr"), "train", "-opt", str(opt), "--auto_resume"], cwd=tmp_path,
                          env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
                          timeout=300)


def _iterations(exp: Path) -> list[int]:
    return [int(m.group(1)) for p in sorted(exp.glob("train_*.log"))
            for m in SPENT_PATTERN.finditer(p.read_text())]


def test_training_ends_when_its_seconds_are_spent(db, tmp_path):
    """100000 iterations (50000 epochs) allowed, 4 seconds given: the run stops after about 4 s of training,
    with the latest weights saved and validated; a resume goes on with the seconds left."""
    opt = _timed_options(tmp_path, db, seconds=4.0)
    out = _train(tmp_path, opt)
    assert out.returncode == 0, out.stderr[-3000:]
    exp = tmp_path / "experiments" / "timed"
    (first,) = _iterations(exp)
    assert 20 <= first < 100_000
    assert first == _last_logged_iteration(exp)  # the log line counts what BasicSR trained
    assert (exp / "models" / "net_g_latest.pth").is_file()
    log = "".join(p.read_text() for p in exp.glob("train_*.log"))
    assert "End of training" in log and "Validation IXI_T1_val" in log
    states = sorted(int(p.stem) for p in (exp / "training_states").glob("*.state"))
    newest = torch.load(exp / "training_states" / f"{states[-1]}.state", weights_only=False)
    elapsed = newest["schedulers"][0]["elapsed"]
    assert 0 < elapsed < 4.0 + 1.0
    # the resumed run starts from the newest state and trains only the seconds it has left
    out = _train(tmp_path, opt)
    assert out.returncode == 0, out.stderr[-3000:]
    _, second = _iterations(exp)
    assert states[-1] <= second and second - states[-1] < first
    if elapsed >= 4.0:  # the newest state was the last iteration: nothing left to train
        assert second == states[-1]


def _last_logged_iteration(exp: Path) -> int:
    found = [int(m.group(1).replace(",", "")) for p in exp.glob("train_*.log")
             for m in re.finditer(r"iter:\s*([\d,]+),", p.read_text())]
    return max(found)


def test_distributed_training_is_refused(db, tmp_path, capsys, monkeypatch):
    """Each rank would stop on its own clock (a hang in the next all-reduce): `basicsr train
    --launcher ...` refuses in one line before anything starts; the model refuses too."""
    from types import SimpleNamespace

    from w2amsn_plugin.cli import basicsr_main

    monkeypatch.chdir(tmp_path)
    opt = _timed_options(tmp_path, db, seconds=5.0)
    assert basicsr_main(["train", "-opt", str(opt), "--launcher", "pytorch"]) == 2
    err = capsys.readouterr().err
    assert "TimedCosineLR" in err and "distributed" in err and err.count("\n") == 1
    assert not (tmp_path / "experiments").exists()

    from w2amsn_plugin.models import MRSRModel

    model = SimpleNamespace(opt={"dist": True, "train": {"total_iter": 10, "scheduler": {
        "type": "TimedCosineLR", "seconds": 5.0}}}, optimizers=[], schedulers=[])
    with pytest.raises(ValueError, match="distributed"):
        MRSRModel.setup_schedulers(model)
    model.opt["dist"] = False
    model.optimizers = [torch.optim.Adam(torch.nn.Linear(2, 2).parameters(), lr=1e-3)]
    MRSRModel.setup_schedulers(model)
    assert isinstance(model.schedulers[0], TimedCosineLR) and model.schedulers[0].total_iter == 10
