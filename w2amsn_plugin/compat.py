"""The one place that makes BasicSR 1.4.2 (the PyPI release) work on current torch and on CPU.

Each patch names the BasicSR file/line it works around and is covered by a test in
``tests/test_compat.py`` that fails without it. Patches 1-4 are installed only where the problem
they fix is present (:func:`applied_patches` lists what this process installed); patch 5 is
installed always, because its problem depends on the model, not the machine (see below), and
its wrapper calls BasicSR's own method unless that problem is there. :func:`apply` is
idempotent and runs on ``import w2amsn_plugin`` before BasicSR is imported.

Patches (BasicSR 1.4.2 line numbers):

1. ``torchvision_ops``: a torchvision wheel whose C++ ops do not load beside the installed torch
   fails at ``import torchvision`` (``operator torchvision::nms does not exist``); BasicSR imports
   torchvision everywhere. Declaring the two ops' schemas makes the import work; training never
   calls them. Only done when the import fails (test: ``test_basicsr_imports_only_with_the_shim``).
2. ``functional_tensor``: ``basicsr/data/degradations.py:8`` imports
   ``torchvision.transforms.functional_tensor``, removed in torchvision 0.17; alias it to
   ``torchvision.transforms._functional_tensor``. Only done when that module is missing
   (tests: ``test_basicsr_imports_only_with_the_shim``, ``test_functional_tensor_alias``).
3. ``resume_on_cpu``: ``basicsr/train.py:84-85`` loads the resume state with
   ``torch.cuda.current_device()`` and ``storage.cuda(...)``; without CUDA this raises. The resume
   state is loaded on the CPU (BasicSR moves it to the model's device afterwards) and with
   ``weights_only=False``. Installed without CUDA, or where ``torch.load``'s ``weights_only``
   default refuses the scheduler state BasicSR writes (a ``collections.Counter``; torch 2.13
   accepts it) (test: ``test_resume_state_loads_on_cpu``).
4. ``dist_init_without_cuda``: ``basicsr/utils/dist_util.py:10,23-24`` hard-codes nccl and calls
   ``torch.cuda.set_device(rank % num_gpus)``: ``ZeroDivisionError`` without GPUs. The process
   group uses gloo and no device is set. Installed only without CUDA
   (test: ``test_dist_init_and_ddp_wrap_without_cuda``).
5. ``ddp_device_ids``: ``basicsr/models/base_model.py:97-98`` wraps the net in DDP with
   ``device_ids=[torch.cuda.current_device()]``; for a model on the CPU DDP needs
   ``device_ids=None``. Installed always: a model is on the CPU with ``num_gpu: 0`` on a GPU
   machine too, so the wrapper decides per model (``dist`` and a CPU device) and otherwise calls
   BasicSR's own ``model_to_device`` (test: ``test_dist_init_and_ddp_wrap_without_cuda``).
"""
from __future__ import annotations

import collections
import contextlib
import functools
import importlib
import io
import pickle
import sys
from typing import Any, Callable, Iterator

import torch

__all__ = ["apply", "applied_patches"]

_APPLIED: list[str] = []


def applied_patches() -> list[str]:
    """Names of the patches :func:`apply` has installed in this process."""
    return list(_APPLIED)


def apply() -> None:
    """Install every needed patch once; safe to call repeatedly."""
    if "done" in _APPLIED:
        return
    _patch_torchvision_ops()
    _patch_functional_tensor()
    _patch_resume_on_cpu()
    _patch_dist_init()
    _patch_ddp_device_ids()
    _APPLIED.append("done")


# 1 ------------------------------------------------------------------------------------------
def _patch_torchvision_ops() -> None:
    try:
        import torchvision  # noqa: F401
        return
    except RuntimeError as err:
        if "torchvision::" not in str(err):
            raise
    for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        del sys.modules[name]
    lib = torch.library.Library("torchvision", "FRAGMENT")  # noqa: TOR901 (schema only)
    for op in ("nms", "qnms"):
        lib.define(f"{op}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _patch_torchvision_ops.library = lib  # keep the fragment alive
    import torchvision  # noqa: F401,F811
    _APPLIED.append("torchvision_ops")


# 2 ------------------------------------------------------------------------------------------
def _patch_functional_tensor() -> None:
    try:
        importlib.import_module("torchvision.transforms.functional_tensor")
    except ModuleNotFoundError:
        sys.modules["torchvision.transforms.functional_tensor"] = importlib.import_module(
            "torchvision.transforms._functional_tensor")
        _APPLIED.append("functional_tensor")


# 3 ------------------------------------------------------------------------------------------
@contextlib.contextmanager
def _resume_state_loading() -> Iterator[None]:
    """Within the block, ``torch.load`` maps to the CPU and unpickles BasicSR's own state."""
    original_load, original_device = torch.load, torch.cuda.current_device

    def load(*args: Any, **kwargs: Any) -> Any:
        kwargs["map_location"] = "cpu"
        kwargs["weights_only"] = False
        return original_load(*args, **kwargs)

    torch.load = load
    if not torch.cuda.is_available():
        torch.cuda.current_device = lambda: 0
    try:
        yield
    finally:
        torch.load, torch.cuda.current_device = original_load, original_device


def _plain_load_refuses_scheduler_state() -> bool:
    """Whether ``torch.load`` with its defaults refuses a ``collections.Counter`` (the
    milestones of BasicSR's MultiStepRestartLR state)."""
    buffer = io.BytesIO()
    torch.save({"milestones": collections.Counter([1])}, buffer)
    buffer.seek(0)
    try:
        torch.load(buffer)
    except pickle.UnpicklingError:
        return True
    return False


def _patch_resume_on_cpu() -> None:
    if torch.cuda.is_available() and not _plain_load_refuses_scheduler_state():
        return
    import basicsr.train as bs_train

    original: Callable[[dict], Any] = bs_train.load_resume_state

    @functools.wraps(original)
    def load_resume_state(opt: dict) -> Any:
        with _resume_state_loading():
            return original(opt)

    bs_train.load_resume_state = load_resume_state
    _APPLIED.append("resume_on_cpu")


# 4 ------------------------------------------------------------------------------------------
def _patch_dist_init() -> None:
    if torch.cuda.is_available():
        return
    import basicsr.utils.options as bs_options
    import torch.distributed as dist

    original: Callable[..., None] = bs_options.init_dist

    @functools.wraps(original)
    def init_dist(launcher: str, backend: str = "nccl", **kwargs: Any) -> None:
        if launcher == "pytorch":
            dist.init_process_group(backend="gloo", **kwargs)
            return None
        # slurm: keep BasicSR's environment set-up, minus the CUDA device selection
        set_device, device_count = torch.cuda.set_device, torch.cuda.device_count
        torch.cuda.set_device, torch.cuda.device_count = (lambda _d: None), (lambda: 1)
        try:
            return original(launcher, "gloo", **kwargs)
        finally:
            torch.cuda.set_device, torch.cuda.device_count = set_device, device_count

    bs_options.init_dist = init_dist
    _APPLIED.append("dist_init_without_cuda")


# 5 ------------------------------------------------------------------------------------------
def _patch_ddp_device_ids() -> None:
    from basicsr.models.base_model import BaseModel
    from torch.nn.parallel import DistributedDataParallel

    original: Callable[[Any, torch.nn.Module], torch.nn.Module] = BaseModel.model_to_device

    @functools.wraps(original)
    def model_to_device(self: BaseModel, net: torch.nn.Module) -> torch.nn.Module:
        if not (self.opt["dist"] and self.device.type == "cpu"):
            return original(self, net)
        return DistributedDataParallel(
            net.to(self.device), device_ids=None,
            find_unused_parameters=self.opt.get("find_unused_parameters", False))

    BaseModel.model_to_device = model_to_device
    _APPLIED.append("ddp_device_ids")
