"""The one place that makes BasicSR 1.4.2 (the PyPI release) work on current torch and on CPU.

Each patch names the BasicSR file/line it works around and is covered by a test in
``tests/test_compat.py`` that fails without it. Patches 1-4 are installed only where the problem
they fix is present (:func:`applied_patches` lists what this process installed); patch 5 is
installed always, because its problem depends on the model, not the machine (see below), and
its wrapper calls BasicSR's own method unless that problem is there. Patches from 6 on fix
BasicSR 1.4.2's own behaviour, the same on every machine (the package pins ``basicsr==1.4.2``),
so they are installed always. :func:`apply` is idempotent and runs on ``import w2amsn_plugin``.
It imports neither torch nor BasicSR (``w2amsn --help`` stays instant): patches 1-2 are installed as
torchvision is first imported and patches 3 on as BasicSR is, by an import hook
(:class:`_ImportHook`), or at once when they already are; :func:`after_basicsr` runs a function at
that moment (the plugin fills BasicSR's registries then, :mod:`w2amsn_plugin.registration`).

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
6. ``force_yml_values``: ``basicsr/utils/options.py:59-79`` reads ``--force_yml key=null`` as the
   string ``'null'`` (``path:pretrain_network_g=null`` then opens a file named ``null``) and a list
   with ``eval`` (``[unclosed`` is a ``SyntaxError`` traceback). ``null`` is None and a list is
   read with ``ast.literal_eval`` (a one-line ``ValueError``) (test: ``test_force_yml_values``).
7. ``atomic_checkpoints``: ``basicsr/models/base_model.py:229,327`` write ``net_*_<iter>.pth``
   and ``<iter>.state`` in place; a kill during the write leaves a truncated newest state. They are
   written to a temporary file, fsynced and renamed (:func:`w2amsn_plugin.checkpoints.
   atomic_torch_save`); a write that fails stops the run (:class:`~w2amsn_plugin.run_guard.
   SaveFailed`) where BasicSR logged "Just ignore it" and trained on without checkpoints
   (tests: ``test_checkpoints_are_written_atomically``, ``test_faults.py::test_failed_save_...``).
8. ``resume_newest_intact``: ``basicsr/train.py:70-77`` resumes from the highest-numbered state
   whatever its condition. With ``--auto_resume`` the newest state that loads (and whose network
   files load) is used; each newer damaged one is named in one line, and when none is intact one
   line says training starts from iteration 0 (test: ``test_auto_resume_skips_a_damaged_state``).
9. ``keep_unwritten_folders``: ``basicsr/utils/misc.py:24-34`` renames an existing
   ``experiments/<name>`` or ``results/<name>`` to ``<name>_archived_<time>`` at every fresh start,
   also when that folder holds only the logs of runs that failed before writing anything. Such a
   folder is kept and reused; one with results is still archived, and :func:`restore_archived`
   (called by ``basicsr train|test`` when the run fails before writing a result) renames it back
   (test: ``test_run_folders_are_kept_or_restored``).
10. ``val_suffix_default``: ``basicsr/models/sr_model.py:177`` (and ``hifacegan_model.py:259``,
    ``video_base_model.py:79``) read ``opt['val']['suffix']``: saving test images without a
    ``suffix:`` key is a ``KeyError``. A missing ``suffix`` means none
    (test: ``test_val_suffix_is_optional``).
11. ``stop_between_steps``: BasicSR's training loop (``basicsr/train.py:154-200``) has no place to
    stop cleanly on SIGTERM. Each model it builds for training tells
    :mod:`w2amsn_plugin.run_guard` when a step starts and ends, with the loop's ``epoch``, so a
    SIGTERM saves the state of the last finished step before the run ends
    (test: ``test_faults.py::test_sigterm_during_training_saves_and_resumes``).
12. ``time_budget``: BasicSR's training loop (``basicsr/train.py:153-160``) ends only after
    ``total_iter`` iterations. With ``train: scheduler: type: TimedCosineLR`` (a wall-time budget,
    :mod:`w2amsn_plugin.time_budget`) the training loader is wrapped so that it ends once
    the budget is spent; the loop then saves the latest weights and validates as after its last
    iteration (test: ``tests/test_time_budget.py::test_training_ends_when_its_seconds_are_spent``).
"""
from __future__ import annotations

import ast
import collections
import contextlib
import functools
import importlib
import importlib.abc
import importlib.machinery
import io
import os
import pickle
import shutil
import sys
import types
from typing import Any, Callable, Iterator

__all__ = ["apply", "after_basicsr", "applied_patches", "restore_archived"]

_APPLIED: list[str] = []
_AFTER_BASICSR: list[Callable[[], None]] = []


def applied_patches() -> list[str]:
    """Names of the patches :func:`apply` has installed in this process."""
    return list(_APPLIED)


def apply() -> None:
    """Install every needed patch once, each when the package it fixes is imported (at once if it
    already is); safe to call repeatedly."""
    if _HOOK in sys.meta_path or "done" in _APPLIED:
        return
    if "basicsr" in sys.modules:
        _patch_functional_tensor()
        _patch_basicsr()
        return
    if "torchvision" in sys.modules:
        _patch_functional_tensor()
    sys.meta_path.insert(0, _HOOK)


def after_basicsr(function: Callable[[], None]) -> None:
    """Call ``function`` once BasicSR is imported and patched (now, if it is)."""
    if "done" in _APPLIED:
        function()
    else:
        _AFTER_BASICSR.append(function)


class _HookedLoader(importlib.abc.Loader):
    """A package's own loader, with code run around its ``exec_module``."""

    def __init__(self, loader: Any, run: Callable[[Any, types.ModuleType], None]) -> None:
        self._loader, self._run = loader, run

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: types.ModuleType) -> None:
        module.__loader__ = module.__spec__.loader = self._loader
        self._run(self._loader, module)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)


class _ImportHook(importlib.abc.MetaPathFinder):
    """Patches torchvision (1-2) and BasicSR (3 on) as each is first imported."""

    def find_spec(self, fullname: str, path: Any, target: Any = None
                  ) -> importlib.machinery.ModuleSpec | None:
        runs = {"torchvision": _exec_torchvision, "basicsr": _exec_basicsr}
        if fullname not in runs:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path, target)
        if spec is not None and spec.loader is not None:
            spec.loader = _HookedLoader(spec.loader, runs[fullname])
        return spec


_HOOK = _ImportHook()


def _exec_torchvision(loader: Any, module: types.ModuleType) -> None:
    _patch_torchvision_ops(loader, module)
    _patch_functional_tensor()


def _exec_basicsr(loader: Any, module: types.ModuleType) -> None:
    import torchvision  # noqa: F401  (patches 1-2 first)

    loader.exec_module(module)
    _patch_basicsr()


def _patch_basicsr() -> None:
    _patch_resume_on_cpu()
    _patch_dist_init()
    _patch_ddp_device_ids()
    _patch_force_yml_values()
    _patch_atomic_checkpoints()
    _patch_resume_newest_intact()
    _patch_keep_unwritten_folders()
    _patch_val_suffix_default()
    _patch_stop_between_steps()
    _patch_time_budget()
    _APPLIED.append("done")
    while _AFTER_BASICSR:
        _AFTER_BASICSR.pop(0)()


# 1 ------------------------------------------------------------------------------------------
def _patch_torchvision_ops(loader: Any, module: types.ModuleType) -> None:
    """Run torchvision's ``__init__``; if it fails on the missing ops, declare them and rerun it."""
    try:
        loader.exec_module(module)
        return
    except RuntimeError as err:
        if "torchvision::" not in str(err):
            raise
    import torch

    for name in [m for m in sys.modules if m.startswith("torchvision.")]:
        del sys.modules[name]
    lib = torch.library.Library("torchvision", "FRAGMENT")  # noqa: TOR901 (schema only)
    for op in ("nms", "qnms"):
        lib.define(f"{op}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _patch_torchvision_ops.library = lib  # keep the fragment alive
    loader.exec_module(module)
    _APPLIED.append("torchvision_ops")


# 2 ------------------------------------------------------------------------------------------
def _patch_functional_tensor() -> None:
    if "functional_tensor" in _APPLIED:
        return
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
    import torch

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
    import torch

    buffer = io.BytesIO()
    torch.save({"milestones": collections.Counter([1])}, buffer)
    buffer.seek(0)
    try:
        torch.load(buffer)
    except pickle.UnpicklingError:
        return True
    return False


def _patch_resume_on_cpu() -> None:
    import torch

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
    import torch

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

    original: Callable[[Any, Any], Any] = BaseModel.model_to_device

    @functools.wraps(original)
    def model_to_device(self: BaseModel, net: Any) -> Any:
        if not (self.opt["dist"] and self.device.type == "cpu"):
            return original(self, net)
        return DistributedDataParallel(
            net.to(self.device), device_ids=None,
            find_unused_parameters=self.opt.get("find_unused_parameters", False))

    BaseModel.model_to_device = model_to_device
    _APPLIED.append("ddp_device_ids")


# 6 ------------------------------------------------------------------------------------------
def _force_yml_value(value: str) -> Any:
    """``--force_yml`` value as BasicSR's ``_postprocess_yml_value``, except that ``null`` is None
    and a list is read with :func:`ast.literal_eval` (a ``ValueError`` naming it if it is not one)."""
    if value in ("~", "null", "Null", "NULL") or value.lower() == "none":
        return None
    if value.startswith("["):
        try:
            return ast.literal_eval(value)
        except (ValueError, SyntaxError):
            raise ValueError(f"{value!r} is not a list such as [1, 2] or ['a', 'b']") from None
    return _ORIGINAL_FORCE_YML_VALUE[0](value)


_ORIGINAL_FORCE_YML_VALUE: list[Callable[[str], Any]] = []


def _patch_force_yml_values() -> None:
    import basicsr.utils.options as bs_options

    _ORIGINAL_FORCE_YML_VALUE.append(bs_options._postprocess_yml_value)
    bs_options._postprocess_yml_value = _force_yml_value
    _APPLIED.append("force_yml_values")


# 7 ------------------------------------------------------------------------------------------
class _TorchWithAtomicSave(types.ModuleType):
    """``torch`` as ``basicsr/models/base_model.py`` sees it: ``save`` is atomic."""

    def __getattr__(self, name: str) -> Any:
        import torch

        return getattr(torch, name)


def _patch_atomic_checkpoints() -> None:
    import basicsr.models.base_model as bs_base_model

    from .checkpoints import save_or_stop

    proxy = _TorchWithAtomicSave("torch")
    proxy.save = save_or_stop
    bs_base_model.torch = proxy
    _APPLIED.append("atomic_checkpoints")


# 8 ------------------------------------------------------------------------------------------
def _say(opt: dict, message: str) -> None:
    """One line on stderr from rank 0 (BasicSR's logger does not exist yet at resume time)."""
    if opt.get("rank", 0) == 0:
        print(f"basicsr train: {message}", file=sys.stderr, flush=True)


def _patch_resume_newest_intact() -> None:
    import os.path as osp

    import basicsr.train as bs_train

    from .checkpoints import TMP_MARK, newest_intact_state

    original: Callable[[dict], Any] = bs_train.load_resume_state

    @functools.wraps(original)
    def load_resume_state(opt: dict) -> Any:
        if not opt.get("auto_resume"):
            return original(opt)
        root = osp.join("experiments", opt["name"])  # train.py:71 (relative to the cwd)
        labels = [k.removeprefix("network_") for k in opt if k.startswith("network_")]
        models = opt["path"].get("models", osp.join(root, "models"))  # where check_resume looks
        state, damaged = newest_intact_state(osp.join(root, "training_states"), models, labels)
        for err in damaged:
            _say(opt, f"warning: {err}; not resuming from it")
        if state is not None and damaged:
            _say(opt, f"resuming from {state}, the newest intact training state")
        elif damaged:
            _say(opt, f"no intact training state in {osp.join(root, 'training_states')}: "
                      "training starts from iteration 0")
        if opt.get("rank", 0) == 0:  # temporary files of a save that was killed
            for path in (osp.join(root, "training_states"), models):
                for name in os.listdir(path) if osp.isdir(path) else []:
                    if name.startswith(".") and TMP_MARK in name:
                        os.remove(osp.join(path, name))
        opt["auto_resume"] = False
        opt["path"]["resume_state"] = None if state is None else str(state)
        try:
            return original(opt)
        finally:
            opt["auto_resume"] = True

    bs_train.load_resume_state = load_resume_state
    _APPLIED.append("resume_newest_intact")


# 9 ------------------------------------------------------------------------------------------
#: (folder, its archive) pairs renamed by BasicSR in this process, for :func:`restore_archived`
_ARCHIVED: list[tuple[str, str]] = []
_RUN_RECORDS = (".log", ".yml", ".yaml")


def _holds_results(folder: str) -> bool:
    """Whether ``folder`` holds any file besides logs and option copies (checkpoints, states,
    images, tables, tensorboard events)."""
    for _dir, _subdirs, files in os.walk(folder):
        if any(not name.endswith(_RUN_RECORDS) for name in files):
            return True
    return False


def _patch_keep_unwritten_folders() -> None:
    import basicsr.train as bs_train
    import basicsr.utils as bs_utils
    import basicsr.utils.misc as bs_misc

    original: Callable[[str], None] = bs_misc.mkdir_and_rename

    @functools.wraps(original)
    def mkdir_and_rename(path: str) -> None:
        if os.path.isdir(path) and not _holds_results(path):
            os.makedirs(path, exist_ok=True)  # only logs of runs that failed early: keep it
            return
        before = set(os.listdir(os.path.dirname(path) or ".")) if os.path.exists(path) else None
        original(path)
        if before is not None:
            base = os.path.basename(path)
            new = sorted(set(os.listdir(os.path.dirname(path) or ".")) - before)
            archives = [n for n in new if n.startswith(base + "_archived_")]
            if archives:
                _ARCHIVED.append((path, os.path.join(os.path.dirname(path), archives[-1])))

    for module in (bs_misc, bs_utils, bs_train):
        module.mkdir_and_rename = mkdir_and_rename
    _APPLIED.append("keep_unwritten_folders")


def restore_archived() -> list[str]:
    """Undo BasicSR's archiving of this process's run folders that the run left without results
    (a failure before the first checkpoint or image): the run's logs move into the archived
    folder, which gets its name back. Returns the restored folders."""
    restored = []
    while _ARCHIVED:
        path, archive = _ARCHIVED.pop()
        if not os.path.isdir(archive) or (os.path.isdir(path) and _holds_results(path)):
            continue
        if os.path.isdir(path):
            for name in os.listdir(path):
                if name.endswith(".log") and os.path.isfile(os.path.join(path, name)):
                    os.replace(os.path.join(path, name), os.path.join(archive, name))
            shutil.rmtree(path)
        os.rename(archive, path)
        restored.append(path)
    return restored


# 10 -----------------------------------------------------------------------------------------
def _patch_val_suffix_default() -> None:
    from basicsr.models.hifacegan_model import HiFaceGANModel
    from basicsr.models.sr_model import SRModel
    from basicsr.models.video_base_model import VideoBaseModel

    for cls in (SRModel, HiFaceGANModel, VideoBaseModel):
        original = cls.nondist_validation

        def nondist_validation(self: Any, *args: Any, _original: Callable = original,
                               **kwargs: Any) -> Any:
            if isinstance(self.opt.get("val"), dict):
                self.opt["val"].setdefault("suffix", None)
            return _original(self, *args, **kwargs)

        functools.update_wrapper(nondist_validation, original)
        cls.nondist_validation = nondist_validation
    _APPLIED.append("val_suffix_default")


# 11 -----------------------------------------------------------------------------------------
def _patch_stop_between_steps() -> None:
    import basicsr.train as bs_train

    from . import run_guard

    original: Callable[[dict], Any] = bs_train.build_model

    @functools.wraps(original)
    def build_model(opt: dict) -> Any:
        model = original(opt)
        if not opt.get("is_train"):
            return model
        step = model.optimize_parameters

        def optimize_parameters(current_iter: int) -> None:
            run_guard.before_step()
            step(current_iter)
            # train.py's loop variable: the epoch BasicSR stores in the state it resumes from
            epoch = sys._getframe(1).f_locals.get("epoch", 0)
            run_guard.after_step(model, epoch if isinstance(epoch, int) else 0, current_iter)

        model.optimize_parameters = optimize_parameters
        return model

    bs_train.build_model = build_model
    _APPLIED.append("stop_between_steps")


# 12 -----------------------------------------------------------------------------------------
def _patch_time_budget() -> None:
    import basicsr.train as bs_train

    from .time_budget import UntilSpent, is_timed

    original: Callable[..., Any] = bs_train.create_train_val_dataloader

    @functools.wraps(original)
    def create_train_val_dataloader(opt: dict, logger: Any) -> Any:
        train_loader, *rest = original(opt, logger)
        if is_timed(opt):
            train_loader = UntilSpent(train_loader)
        return (train_loader, *rest)

    bs_train.create_train_val_dataloader = create_train_val_dataloader
    _APPLIED.append("time_budget")
