"""Each compat patch fixes something that is broken without it (w2amsn_plugin/compat.py)."""
from __future__ import annotations

import collections
import inspect
import subprocess
import sys
import textwrap

import pytest
import torch

import w2amsn_plugin  # noqa: F401  (installs the patches, each as its package is imported)
from w2amsn_plugin import compat


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=180)


def test_basicsr_imports_only_with_the_shim():
    """Patches 1-2: on this torch/torchvision, `import basicsr` works after compat.apply()."""
    out = _python("import w2amsn_plugin.compat as c; c.apply(); import basicsr.data.degradations")
    assert out.returncode == 0, out.stderr[-2000:]
    if "torchvision_ops" in compat.applied_patches() or "functional_tensor" in compat.applied_patches():
        plain = _python("import basicsr")
        assert plain.returncode != 0, "BasicSR imports without the shim: drop the patch"


def test_functional_tensor_alias():
    import torchvision.transforms.functional_tensor as ft
    assert hasattr(ft, "rgb_to_grayscale")


def test_resume_state_loads_on_cpu(tmp_path):
    """Patch 3: BasicSR's resume state (with a Counter, as its scheduler writes) loads on CPU."""
    import basicsr.train as bs_train

    path = tmp_path / "4.state"
    torch.save({"epoch": 1, "iter": 4, "optimizers": [{"x": torch.ones(2)}],
                "schedulers": [{"milestones": collections.Counter([100])}]}, path)
    opt = {"auto_resume": False, "path": {"resume_state": str(path)}}
    state = bs_train.load_resume_state(opt)
    assert state["iter"] == 4
    if "resume_on_cpu" not in compat.applied_patches():  # CUDA, and torch.load accepts the state
        return
    assert state["optimizers"][0]["x"].device.type == "cpu"
    # the original, unpatched function fails on this state on a CPU-only machine
    original = inspect.unwrap(bs_train.load_resume_state)
    if not torch.cuda.is_available():
        try:
            original(opt)
        except Exception:  # noqa: BLE001  (CUDA error or weights_only refusal)
            pass
        else:
            raise AssertionError("unpatched load_resume_state worked: drop the patch")


def test_dist_init_and_ddp_wrap_without_cuda(tmp_path):
    """Patches 4-5 in a single-rank gloo group (a subprocess: init_dist sets the spawn method)."""
    code = """
    import os, socket
    s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
    os.environ.update(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    import torch, torch.distributed as dist
    import w2amsn_plugin
    import basicsr.utils.options as o
    from basicsr.models.base_model import BaseModel
    from torch.nn.parallel import DistributedDataParallel
    if torch.cuda.is_available():
        print("SKIP"); raise SystemExit(0)
    o.init_dist("pytorch")
    assert dist.get_backend() == "gloo"
    model = BaseModel({"num_gpu": 0, "is_train": False, "dist": True})
    net = model.model_to_device(torch.nn.Conv2d(1, 1, 3))
    assert isinstance(net, DistributedDataParallel) and net.device_ids is None
    try:
        BaseModel.model_to_device.__wrapped__(model, torch.nn.Conv2d(1, 1, 3))
    except (AssertionError, RuntimeError):
        print("UNPATCHED-FAILS")
    try:
        o.init_dist.__wrapped__("pytorch")
    except ZeroDivisionError:
        print("UNPATCHED-INIT-FAILS")
    dist.destroy_process_group()
    print("OK")
    """
    out = _python(code)
    assert out.returncode == 0, out.stderr[-3000:]
    if "SKIP" not in out.stdout:
        assert "OK" in out.stdout and "UNPATCHED-FAILS" in out.stdout
        assert "UNPATCHED-INIT-FAILS" in out.stdout


def test_patches_installed_where_their_problem_is():
    import basicsr  # noqa: F401  (patched as it is imported)

    applied = compat.applied_patches()
    assert ("dist_init_without_cuda" in applied) is not torch.cuda.is_available()
    if not torch.cuda.is_available():
        assert "resume_on_cpu" in applied
    assert "ddp_device_ids" in applied  # decided per model: a CPU model under DDP on any machine


def test_apply_is_idempotent():
    before = compat.applied_patches()
    compat.apply()
    assert compat.applied_patches() == before


def test_force_yml_values():
    """Patch 6: `--force_yml key=null` is None and a bad list is one ValueError, not eval's."""
    import basicsr.utils.options as bs_options

    parse = bs_options._postprocess_yml_value
    assert parse("null") is None and parse("~") is None and parse("None") is None
    assert parse("[1, 2]") == [1, 2] and parse("['a']") == ["a"]
    assert parse("0.5") == 0.5 and parse("true") is True and parse("12") == 12 and parse("x") == "x"
    with pytest.raises(ValueError, match="unclosed"):
        parse("[unclosed")
    original = compat._ORIGINAL_FORCE_YML_VALUE[0]
    assert original("null") == "null", "BasicSR reads null as None: drop the patch"
    with pytest.raises(SyntaxError):
        original("[unclosed")


class _Unpicklable:
    def __reduce__(self):
        raise TypeError("cannot pickle this")


class _Optimizer:
    def __init__(self, good: bool):
        self.good = good

    def state_dict(self) -> dict:
        return {"x": torch.ones(4)} if self.good else {"x": torch.ones(4), "bad": _Unpicklable()}


def _state_saver(tmp_path, good: bool):
    from basicsr.models.base_model import BaseModel

    model = BaseModel.__new__(BaseModel)
    model.opt = {"path": {"training_states": str(tmp_path)}}
    model.optimizers, model.schedulers = [_Optimizer(good)], []
    return model


def test_checkpoints_are_written_atomically(tmp_path, monkeypatch):
    """Patch 7: a save that fails half-way (here: an object that cannot be pickled; in life a
    kill or a full disk) stops the run, leaves no partial file and keeps the previous one of that
    name; BasicSR's own retries ("Just ignore it") would train on."""
    import basicsr.models.base_model as bs_base_model

    from w2amsn_plugin.run_guard import SaveFailed

    monkeypatch.setattr(bs_base_model.time, "sleep", lambda _s: None)  # BasicSR retries 3 times
    _state_saver(tmp_path, good=True).save_training_state(0, 2)
    for iteration in (2, 4):
        with pytest.raises(SaveFailed, match=f"{iteration}.state: cannot be saved"):
            _state_saver(tmp_path, good=False).save_training_state(0, iteration)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["2.state"], "no partial or temporary file"
    assert torch.load(tmp_path / "2.state", weights_only=False)["iter"] == 2
    monkeypatch.setattr(bs_base_model, "torch", torch)  # BasicSR's own in-place torch.save
    _state_saver(tmp_path, good=False).save_training_state(0, 4)
    assert (tmp_path / "4.state").is_file(), "BasicSR writes in place: it leaves a partial file"
    with pytest.raises(Exception):  # noqa: B017  (torch's error for a damaged file)
        torch.load(tmp_path / "4.state", weights_only=False)


def _experiment(root, iters=(2, 4)) -> tuple:
    states, models = root / "experiments" / "x" / "training_states", root / "experiments" / "x" / "models"
    states.mkdir(parents=True)
    models.mkdir(parents=True)
    for it in iters:
        torch.save({"epoch": 0, "iter": it, "optimizers": [], "schedulers": []}, states / f"{it}.state")
        torch.save({"params": {"w": torch.ones(1)}}, models / f"net_g_{it}.pth")
    return states, models


def test_auto_resume_skips_a_damaged_state(tmp_path, monkeypatch, capsys):
    """Patch 8: --auto_resume uses the newest state that loads, names the damaged newer one, and
    says so in one line when none is intact."""
    import basicsr.train as bs_train

    monkeypatch.chdir(tmp_path)
    states, models = _experiment(tmp_path)
    (states / "4.state").write_bytes((states / "4.state").read_bytes()[:100])  # killed mid-write
    (states / ".6.w2amsn-partial-1.state").write_bytes(b"partial")  # a killed atomic save's temporary file

    def opt() -> dict:
        return {"name": "x", "auto_resume": True, "network_g": {}, "rank": 0,
                "path": {"resume_state": None, "models": str(models)}}

    state = bs_train.load_resume_state(opt())
    err = capsys.readouterr().err
    assert state["iter"] == 2
    assert "4.state" in err and "truncated" in err and "resuming from" in err and "2.state" in err
    assert not (states / ".6.w2amsn-partial-1.state").exists()
    without_patch = bs_train.load_resume_state.__wrapped__  # BasicSR's choice: the newest file
    with pytest.raises(Exception):  # noqa: B017
        without_patch(opt())
    (models / "net_g_2.pth").write_bytes(b"")  # the state's network file is damaged too
    assert bs_train.load_resume_state(opt()) is None
    err = capsys.readouterr().err.strip().splitlines()
    assert "net_g_2.pth" in err[1] and "starts from iteration 0" in err[-1]


def test_run_folders_are_kept_or_restored(tmp_path):
    """Patch 9: a run folder with only logs is reused, not archived; an archived folder is put back
    by restore_archived() when the new run wrote nothing but logs."""
    import basicsr.utils.misc as bs_misc

    logs_only = tmp_path / "logs_only"
    logs_only.mkdir()
    (logs_only / "train_x_1.log").write_text("failed early")
    bs_misc.mkdir_and_rename(str(logs_only))
    assert [p.name for p in tmp_path.iterdir()] == ["logs_only"]
    inspect.unwrap(bs_misc.mkdir_and_rename)(str(logs_only))
    assert len(list(tmp_path.glob("logs_only_archived_*"))) == 1, "BasicSR archives it: drop the patch"

    results = tmp_path / "results_run"
    (results / "models").mkdir(parents=True)
    (results / "models" / "net_g_4.pth").write_bytes(b"weights")
    bs_misc.mkdir_and_rename(str(results))
    archived = list(tmp_path.glob("results_run_archived_*"))
    assert len(archived) == 1 and results.is_dir() and not any(results.iterdir())
    (results / "train_x_2.log").write_text("the new run failed before its first checkpoint")
    assert compat.restore_archived() == [str(results)]
    assert (results / "models" / "net_g_4.pth").read_bytes() == b"weights"
    assert (results / "train_x_2.log").is_file() and not list(tmp_path.glob("results_run_archived_*"))


def test_val_suffix_is_optional(tmp_path):
    """Patch 10: SRModel saves test images without a `val: suffix:` key (BasicSR: KeyError)."""
    from basicsr.models.sr_model import SRModel
    from torch.utils.data import DataLoader, Dataset

    class Images(Dataset):
        opt = {"name": "toy"}

        def __len__(self) -> int:
            return 1

        def __getitem__(self, i: int) -> dict:
            return {"lq": torch.rand(3, 8, 8), "gt": torch.rand(3, 16, 16), "lq_path": "img.png"}

    opt = {"num_gpu": 0, "dist": False, "is_train": False, "name": "t", "scale": 2,
           "network_g": {"type": "SRVGGNetCompact", "num_in_ch": 3, "num_out_ch": 3, "num_feat": 4,
                         "num_conv": 1, "upscale": 2},
           "path": {"pretrain_network_g": None, "visualization": str(tmp_path)},
           "val": {"save_img": True}}
    model = SRModel(opt)
    model.nondist_validation(DataLoader(Images()), "t", None, save_img=True)
    assert (tmp_path / "toy" / "img_t.png").is_file()
    del opt["val"]["suffix"]
    with pytest.raises(KeyError):
        SRModel.nondist_validation.__wrapped__(model, DataLoader(Images()), "t", None, save_img=True)
