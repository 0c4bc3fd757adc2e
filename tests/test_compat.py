"""Each compat patch fixes something that is broken without it (w2amsn_plugin/compat.py)."""
from __future__ import annotations

import collections
import inspect
import subprocess
import sys
import textwrap

import torch

import w2amsn_plugin  # noqa: F401  (applies the patches)
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
    applied = compat.applied_patches()
    assert ("dist_init_without_cuda" in applied) is not torch.cuda.is_available()
    if not torch.cuda.is_available():
        assert "resume_on_cpu" in applied
    assert "ddp_device_ids" in applied  # decided per model: a CPU model under DDP on any machine


def test_apply_is_idempotent():
    before = compat.applied_patches()
    compat.apply()
    assert compat.applied_patches() == before
