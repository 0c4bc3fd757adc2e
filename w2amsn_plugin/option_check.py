"""Check an options YAML before BasicSR sees it, so a user's mistake gets one clear line.

BasicSR 1.4.2 reports these deep inside its pipeline: a missing file is a ``FileNotFoundError``
from ``options.py:94``, an unknown ``type:`` a ``KeyError`` after a misleading
"use name: X_basicsr" hint (``registry.py:65-69``), a misspelt network argument a ``TypeError``
from the constructor, and ``num_gpu: 1`` on a machine without CUDA an assertion in torch. A
value of the wrong type (``total_iter: abc``; ``lr: 1e-4``, which YAML reads as a string), a
checkpoint that is missing, damaged or of another network, and a database that is not an LMDB, of
another split or scale, or smaller than the training patch fail only after BasicSR has archived
the experiment folder; all are checked here first (:func:`check_run_inputs`, docs/reliability.md).
"""
from __future__ import annotations

import difflib
import importlib.util
import math
import inspect
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator

import yaml

from .protocol import IXI_DATASET, parse_database_name

__all__ = ["OptionsError", "check_options_file", "check_options", "check_data_paths",
           "check_run_inputs", "check_experiment_name", "check_run_folders", "unknown_keys",
           "ALLOW_UNTRAINED", "ALLOW_UNTRAINED_KEY"]

_OPTIMIZERS = ("Adam",)  # basicsr/models/base_model.py:103-108
_SCHEDULERS = ("MultiStepLR", "MultiStepRestartLR", "CosineAnnealingRestartLR",  # :110-121
               "TimedCosineLR")  # MRSRModel's (w2amsn_plugin.time_budget.TIMED_SCHEDULER)

#: ``val:`` key that lets ``basicsr test`` run a network without weights (random initialisation);
#: not under ``path:``, whose every other key BasicSR makes a folder of (misc.py:45-49)
ALLOW_UNTRAINED_KEY = "allow_untrained"
ALLOW_UNTRAINED = f"val:{ALLOW_UNTRAINED_KEY}"
# The longest suffix BasicSR adds to an experiment name in one file name: the log
# 'train_<name>_<YYYYmmdd_HHMMSS>.log' (26 bytes), the archive '<name>_archived_<time>' (25), and
# 'debug_' before it with --debug.
_NAME_EXTRA = len("train_") + len("_20260101_000000.log") + len("debug_")

# Option keys BasicSR 1.4.2 reads (train.py, test.py, utils/options.py, models/*, data/*:
# every opt[...] / opt.get(...) at that level) and the plugin's, for :func:`unknown_keys`.
_DEGRADATION_KEYS = {f"{k}{n}" for n in ("", "2") for k in (
    "resize_prob", "resize_range", "gaussian_noise_prob", "noise_range", "poisson_scale_range",
    "gray_noise_prob", "jpeg_range", "blur_kernel_size", "kernel_list", "kernel_prob", "blur_sigma",
    "betag_range", "betap_range", "sinc_prob")} | {"second_blur_prob", "final_sinc_prob"}
_KNOWN_KEYS: dict[str, frozenset[str]] = {
    "": frozenset({"name", "model_type", "scale", "num_gpu", "manual_seed", "datasets", "network_g",
                   "network_d", "path", "train", "val", "logger", "dist_params",
                   "find_unused_parameters", "is_train", "dist", "rank", "world_size", "auto_resume",
                   "root_path", "high_order_degradation", "queue_size", "gt_usm", "l1_gt_usm",
                   "percep_gt_usm", "gan_gt_usm", *_DEGRADATION_KEYS}),
    "train": frozenset({"ema_decay", "optim_g", "optim_d", "scheduler", "total_iter", "warmup_iter",
                        "net_d_iters", "net_d_init_iters", "r1_reg_weight", "path_reg_weight",
                        "net_g_reg_every", "net_d_reg_every", "mixing_prob", "lr_flow", "fix_flow",
                        "flow_lr_mul", "dcn_lr_mul", "tsa_iter", "path_batch_shrink",
                        "bf16", "compile"}),  # the last two: MRSRModel's
    "logger": frozenset({"print_freq", "save_checkpoint_freq", "use_tb_logger", "wandb"}),
    "path": frozenset({"pretrain_network_g", "pretrain_network_d", "strict_load_g", "strict_load_d",
                       "param_key_g", "param_key_d", "resume_state", "ignore_resume_networks",
                       "experiments_root", "models", "training_states", "log", "visualization",
                       "results_root"}),
    "val": frozenset({"val_freq", "save_img", "suffix", "pbar", "metrics", "num_val_samples",
                      "flip_seq", "center_frame_only", ALLOW_UNTRAINED_KEY}),
}
# keys of any name a section accepts: losses ('*_opt'), per-network path entries
_KEY_PATTERNS = {"train": re.compile(r".+_opt$"),
                 "path": re.compile(r"^(pretrain_network|strict_load|param_key)_.+$")}


class OptionsError(ValueError):
    """A problem in an options file that the user can fix; the message is one line."""


def _close(name: str, choices: Iterable[str]) -> str:
    near = difflib.get_close_matches(name, list(choices), n=4, cutoff=0.5)
    return f" (did you mean {', '.join(repr(n) for n in near)}?)" if near else ""


def _apply_force_yml(opt: dict, entries: Iterable[str], path: str) -> None:
    """Apply ``--force_yml key:sub=value`` as BasicSR's ``options.py:118-129`` will."""
    import w2amsn_plugin  # noqa: F401  (compat: BasicSR's value parser reads 'null' as None)
    from basicsr.utils.options import _postprocess_yml_value

    for entry in entries:
        if entry.count("=") != 1:  # BasicSR: keys, value = entry.split('=')
            raise OptionsError(f"--force_yml {entry!r}: expected key[:subkey...]=value "
                               "(one '=')")
        keys, value = (s.strip() for s in entry.split("="))
        node = opt
        *parents, last = keys.split(":")
        for key in parents:
            if not isinstance(node.get(key), dict):
                raise OptionsError(f"--force_yml {entry!r}: {path} has no section {key!r}")
            node = node[key]
        if last not in node:
            raise OptionsError(f"--force_yml {entry!r}: {path} has no key {keys!r} "
                               "(BasicSR cannot create new keys)")
        try:
            node[last] = _postprocess_yml_value(value)
        except ValueError as err:
            raise OptionsError(f"--force_yml {entry!r}: {err}") from None


def _typed_sections(opt: dict) -> Iterator[tuple[str, str, dict]]:
    """(where, registry, section) for every ``type:``-selected section of an options dict."""
    if "model_type" in opt:
        yield "model_type", "model", {"type": opt["model_type"]}
    for key in ("network_g", "network_d"):
        if isinstance(opt.get(key), dict):
            yield key, "arch", opt[key]
    for phase, section in (opt.get("datasets") or {}).items():
        if isinstance(section, dict):
            yield f"datasets:{phase}", "dataset", section
    for key, section in (opt.get("train") or {}).items():
        if key.endswith("_opt") and isinstance(section, dict):
            yield f"train:{key}", "loss", section
    for key, section in ((opt.get("val") or {}).get("metrics") or {}).items():
        if isinstance(section, dict):
            yield f"val:metrics:{key}", "metric", section


def _check_network_kwargs(where: str, cls: Any, section: dict, path: str) -> None:
    params = inspect.signature(cls.__init__).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return
    allowed = [n for n in params if n != "self"]
    for key in section:
        if key != "type" and key not in allowed:
            raise OptionsError(f"{path}: {where}: {section['type']} has no argument {key!r}"
                               f"{_close(key, allowed)}")


def check_options(opt: dict, path: str = "<options>", *, is_train: bool = True) -> None:
    """Raise :class:`OptionsError` for unknown registry names, bad network arguments,
    unsupported optimizer/scheduler names, or ``num_gpu > 0`` without CUDA."""
    import torch

    import w2amsn_plugin  # noqa: F401  (fills the registries)
    from basicsr.utils import registry

    if not isinstance(opt, dict):
        raise OptionsError(f"{path}: expected a mapping of options at the top level")
    for key in ("name", "num_gpu", "datasets"):
        if key not in opt:
            raise OptionsError(f"{path}: missing required key {key!r}")
    check_experiment_name(opt, path)
    registries = {"model": registry.MODEL_REGISTRY, "arch": registry.ARCH_REGISTRY,
                  "dataset": registry.DATASET_REGISTRY, "loss": registry.LOSS_REGISTRY,
                  "metric": registry.METRIC_REGISTRY}
    for where, kind, section in _typed_sections(opt):
        name = section.get("type")
        if name is None:
            raise OptionsError(f"{path}: {where} has no 'type:'")
        reg = registries[kind]
        # Registry.get also accepts BasicSR's own entries under '<name>_basicsr' (registry.py:65)
        entry = next((reg._obj_map[n] for n in (name, f"{name}_basicsr") if n in reg), None)
        if entry is None:
            known = {k.removesuffix("_basicsr") for k in reg.keys()}
            raise OptionsError(f"{path}: {where}: no {kind} named {name!r} is registered"
                               f"{_close(str(name), known)}")
        if kind == "arch":
            _check_network_kwargs(where, entry, section, path)
    val = opt.get("val") or {}
    if opt.get("model_type") == "MRSRModel" and isinstance(val, dict):
        from .models.mr_sr_model import VAL_OPTIONS, MRSRModel

        for key in val:
            if key not in VAL_OPTIONS:
                raise OptionsError(f"{path}: val: MRSRModel has no option {key!r}"
                                   f"{_close(key, VAL_OPTIONS)}")
        try:
            MRSRModel.check_options(opt)
        except ValueError as err:
            raise OptionsError(f"{path}: {err}") from None
    train = opt.get("train") or {}
    if is_train and train:
        optim = (train.get("optim_g") or {}).get("type")
        if optim is not None and optim not in _OPTIMIZERS:
            raise OptionsError(f"{path}: train:optim_g: BasicSR 1.4.2 supports only "
                               f"{', '.join(_OPTIMIZERS)}, not {optim!r}")
        sched = (train.get("scheduler") or {}).get("type")
        if sched is not None and sched not in _SCHEDULERS:
            raise OptionsError(f"{path}: train:scheduler: unknown type {sched!r}"
                               f"{_close(str(sched), _SCHEDULERS)}")
    _check_values(opt, path, is_train)
    num_gpu = opt["num_gpu"]
    if num_gpu != "auto":
        if not isinstance(num_gpu, int) or num_gpu < 0:
            raise OptionsError(f"{path}: num_gpu must be 'auto' or an integer >= 0, not {num_gpu!r}")
        if num_gpu > 0 and not torch.cuda.is_available():
            raise OptionsError(f"{path}: num_gpu: {num_gpu} but this machine has no CUDA device; "
                               "use num_gpu: 0 (CPU), e.g. --force_yml num_gpu=0")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _want(ok: bool, path: str, where: str, value: Any, what: str) -> None:
    if not ok:
        number = isinstance(value, str) and re.fullmatch(r"[-+]?\d+(\.\d*)?[eE][-+]?\d+", value)
        hint = (f" ({value} is read as text: write {float(value):g} or, in the YAML file, "
                f"{float(value):.1e})") if number else ""
        raise OptionsError(f"{path}: {where} must be {what}, not {value!r}{hint}")


def _check_values(opt: dict, path: str, is_train: bool) -> None:
    """Types and ranges of the values BasicSR computes with (it fails on them only after creating
    the experiment folder: ``int(total_iter)`` at ``train.py:47``, ``%`` at ``train.py:176-189``)."""
    from .time_budget import TIMED_SCHEDULER, is_timed

    required = ("path", "train", "logger") if is_train else ("path",)
    for key in required:
        if not isinstance(opt.get(key), dict):
            raise OptionsError(f"{path}: missing section {key!r} (BasicSR needs it to "
                               f"{'train' if is_train else 'test'})")
    scale = opt.get("scale", 1)
    _want(_is_int(scale) and scale >= 1, path, "scale", scale, "a positive integer")
    for key in ("network_g", "network_d"):
        net = opt.get(key)
        if isinstance(net, dict) and "upscale" in net and "scale" in opt and net["upscale"] != scale:
            raise OptionsError(f"{path}: {key}:upscale is {net['upscale']!r} but scale is {scale!r}")
    seed = opt.get("manual_seed")
    _want(seed is None or _is_int(seed), path, "manual_seed", seed, "an integer")
    datasets = opt["datasets"]
    if not isinstance(datasets, dict) or not datasets:
        raise OptionsError(f"{path}: datasets: expected phases such as train:, val:, test_1:")
    for phase, section in datasets.items():
        where = f"datasets:{phase}"
        if not isinstance(section, dict):
            raise OptionsError(f"{path}: {where}: expected a mapping")
        if is_train and phase != "train" and str(phase).split("_")[0] != "val":
            raise OptionsError(f"{path}: {where}: training datasets are 'train' and 'val[_N]'")
        if is_train and phase == "train":
            batch = section.get("batch_size_per_gpu")
            _want(_is_int(batch) and batch >= 1, path, f"{where}:batch_size_per_gpu", batch,
                  "a positive integer")
            ratio = section.get("dataset_enlarge_ratio", 1)
            _want(_is_int(ratio) and ratio >= 1, path, f"{where}:dataset_enlarge_ratio", ratio,
                  "a positive integer")
            gt_size = section.get("gt_size")
            _want(gt_size is None or (_is_int(gt_size) and gt_size >= 1), path, f"{where}:gt_size",
                  gt_size, "a positive integer")
            if gt_size is not None and gt_size % scale:
                raise OptionsError(f"{path}: {where}:gt_size {gt_size} is not a multiple of "
                                   f"scale {scale}")
        workers = section.get("num_worker_per_gpu", 0)
        _want(_is_int(workers) and workers >= 0, path, f"{where}:num_worker_per_gpu", workers,
              "an integer >= 0")
    if not is_train:
        return
    if "train" not in datasets:
        raise OptionsError(f"{path}: datasets has no 'train' phase")
    train, logger = opt["train"], opt["logger"]
    total = train.get("total_iter")
    _want((_is_number(total) and total == int(total) and total >= 1), path, "train:total_iter",
          total, "a positive integer")
    _want(_is_int(train.get("warmup_iter", -1)), path, "train:warmup_iter",
          train.get("warmup_iter"), "an integer (-1: none)")
    ema = train.get("ema_decay", 0)
    _want(_is_number(ema) and 0 <= ema < 1, path, "train:ema_decay", ema, "a number in [0, 1)")
    for key in ("optim_g", "optim_d"):
        optim = train.get(key)
        if isinstance(optim, dict):
            lr = optim.get("lr")
            _want(_is_number(lr) and lr > 0, path, f"train:{key}:lr", lr, "a positive number")
            for name in ("weight_decay", "eps"):
                if name in optim:
                    _want(_is_number(optim[name]), path, f"train:{key}:{name}", optim[name], "a number")
            betas = optim.get("betas", [0.9, 0.999])
            _want(isinstance(betas, (list, tuple)) and len(betas) == 2
                  and all(_is_number(b) for b in betas), path, f"train:{key}:betas", betas,
                  "two numbers")
    sched = train.get("scheduler")
    if isinstance(sched, dict):
        milestones = sched.get("milestones", [])
        _want(isinstance(milestones, list) and all(_is_int(m) for m in milestones), path,
              "train:scheduler:milestones", milestones, "a list of integers")
        if "gamma" in sched:
            _want(_is_number(sched["gamma"]), path, "train:scheduler:gamma", sched["gamma"], "a number")
        if is_timed(opt):
            if opt.get("model_type") != "MRSRModel":
                raise OptionsError(f"{path}: train:scheduler: {TIMED_SCHEDULER} is MRSRModel's; "
                                   f"model_type is {opt.get('model_type')!r}")
            extra = sorted(set(sched) - {"type", "seconds", "eta_min"})
            if extra:
                raise OptionsError(f"{path}: train:scheduler: {TIMED_SCHEDULER} takes seconds and "
                                   f"eta_min, not {', '.join(extra)}")
            seconds = sched.get("seconds")
            _want(_is_number(seconds) and seconds > 0, path, "train:scheduler:seconds", seconds,
                  "a positive number")
            eta_min = sched.get("eta_min", 0.0)
            _want(_is_number(eta_min) and eta_min >= 0, path, "train:scheduler:eta_min", eta_min,
                  "a number >= 0")
    for key in ("print_freq", "save_checkpoint_freq"):
        value = logger.get(key)
        _want(_is_int(value) and value >= 1, path, f"logger:{key}", value, "a positive integer")
    wandb = (logger.get("wandb") or {}).get("project") is not None
    for module, wanted, off in (("tensorboard", logger.get("use_tb_logger") or wandb,
                                 "logger:use_tb_logger=false"),
                                ("wandb", wandb, "logger:wandb:project=null")):
        # train.py:17-26: imported only after the experiment folder is made
        if wanted and "debug" not in str(opt.get("name")) and importlib.util.find_spec(module) is None:
            raise OptionsError(f"{path}: logger: needs the {module} package, which is not installed "
                               f"(pip install {module}, or --force_yml {off})")
    val = opt.get("val")
    if isinstance(val, dict):
        _want(_is_int(val.get("val_freq")) and val["val_freq"] >= 1, path, "val:val_freq",
              val.get("val_freq"), "a positive integer")


def unknown_keys(opt: dict) -> list[str]:
    """One warning per option key that neither BasicSR 1.4.2 nor the plugin reads (at the top
    level and under ``train:``, ``val:``, ``logger:`` and ``path:``), naming the nearest known
    key: BasicSR ignores such keys silently (``vall:`` trains without validation)."""
    from .models.mr_sr_model import VAL_OPTIONS

    found = []
    for section, known in _KNOWN_KEYS.items():
        node = opt.get(section) if section else opt
        if not isinstance(node, dict):
            continue
        if section == "val":
            known = known | VAL_OPTIONS
        pattern = _KEY_PATTERNS.get(section)
        for key in node:
            if key in known or not isinstance(key, str) or (pattern and pattern.match(key)):
                continue
            near = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.0)
            where = f"{section}:{key}" if section else key
            found.append(f"unknown option {where!r}, which BasicSR ignores (nearest known: "
                         f"{(section + ':' if section else '') + near[0]!r})")
    return found


def check_experiment_name(opt: dict, path: str = "<options>") -> None:
    """Raise :class:`OptionsError` unless ``name`` is one safe folder name: BasicSR joins it to
    ``experiments/``, ``results/`` and ``tb_logger/`` and archives (renames) what is there, so
    ``../x``, ``.``, an empty name or one with a slash would write or rename outside them; spaces
    around it would make a second experiment that looks like the first; and a name too long
    for a file name fails only after folders were made."""
    name = opt.get("name")
    if not isinstance(name, str):
        raise OptionsError(f"{path}: name must be text (one folder name), not {name!r}")
    problem = None
    if name.strip() in ("", ".", ".."):
        problem = "is not a folder name"
    elif "/" in name or "\\" in name or "\0" in name:
        problem = "must be one folder name, without '/' or '\\'"
    elif name != name.strip():
        problem = "has spaces at its start or end"
    elif any(not ch.isprintable() for ch in name):
        problem = "holds control characters"
    else:
        limit = os.pathconf(".", "PC_NAME_MAX") - _NAME_EXTRA
        if len(name.encode("utf-8")) > limit:
            problem = (f"is {len(name.encode('utf-8'))} bytes long; experiment names can have at most "
                       f"{limit} (BasicSR adds up to {_NAME_EXTRA} to it in file names)")
    if problem:
        raise OptionsError(f"{path}: name {name!r} {problem}")


def _writable_folder_problem(folder: Path) -> str | None:
    """Why files cannot be made in ``folder`` (or in the nearest existing folder above it)."""
    probe = folder
    while not probe.exists():
        if probe.is_symlink():
            return f"{probe} is a broken symbolic link"
        probe = probe.parent
    if not probe.is_dir():
        return f"{probe} is not a folder"
    try:
        fd, tmp = tempfile.mkstemp(prefix=".w2amsn-write-check-", dir=probe)
    except OSError as err:
        return f"cannot write in {probe} ({err.strerror or err})"
    os.close(fd)
    os.unlink(tmp)
    return None


def check_run_folders(opt: dict, path: str = "<options>", *, is_train: bool = True,
                      root: str | os.PathLike = ".", name: str | None = None) -> None:
    """Raise :class:`OptionsError` when a folder the run will write into (``experiments/<name>``
    and its ``models``, ``training_states`` and ``visualization``, or ``results/<name>``; and
    ``tb_logger/``) cannot be written, before BasicSR makes or renames any folder."""
    name = str(opt.get("name")) if name is None else name
    kind = "experiments" if is_train else "results"
    run = Path(root, kind, name)
    folders = [run] + [run / sub for sub in ("models", "training_states", "visualization")
                       if (run / sub).exists()]
    if is_train and (opt.get("logger") or {}).get("use_tb_logger") and "debug" not in name:
        folders.append(Path(root, "tb_logger"))
    if run.exists():  # BasicSR may rename it: that needs the folder above writable
        folders.append(run.parent)
    for folder in folders:
        problem = _writable_folder_problem(folder)
        if problem:
            raise OptionsError(f"{path}: the run writes into {folder}: {problem}")


def check_data_paths(opt: dict, path: str = "<options>") -> None:
    """Raise :class:`OptionsError` for a dataset ``dataroot_*`` that does not exist (relative
    paths are relative to the current directory, as BasicSR reads them)."""
    for phase, section in (opt.get("datasets") or {}).items():
        if not isinstance(section, dict):
            continue
        for key in ("dataroot_gt", "dataroot_lq"):
            root = section.get(key)
            if root is not None and not os.path.exists(os.path.expanduser(str(root))):
                hint, parsed = "", parse_database_name(str(root))
                if parsed is not None:
                    tool = ("scripts/make_ixi_lmdb.py" if parsed.dataset == IXI_DATASET
                            else "w2amsn prepare")
                    hint = f"; build it with {tool} --out {os.path.dirname(str(root)) or '.'}"
                raise OptionsError(f"{path}: datasets:{phase}:{key}: {root} not found (relative to "
                                   f"{os.getcwd()}){hint}")


def _checkpoint_of(opt: dict, net_key: str, resume_iter: int | None, models: Path
                   ) -> tuple[str | None, str, str | None]:
    """(file, where, param_key) BasicSR will load ``net_key`` from (``misc.py:101-124``: when
    resuming, ``models/net_<label>_<iter>.pth`` with ``params``)."""
    paths, label = opt.get("path") or {}, net_key.removeprefix("network_")
    param_key = paths.get(f"param_key_{label}", "params")
    if resume_iter is not None and net_key not in (paths.get("ignore_resume_networks") or []):
        return str(models / f"net_{label}_{resume_iter}.pth"), f"resumed {net_key}", "params"
    file = paths.get(f"pretrain_{net_key}")
    return file, f"path:pretrain_{net_key}", param_key


def _check_resume(opt: dict, path: str, state: dict, state_file: str | os.PathLike) -> list[str]:
    """Refuse a ``total_iter`` below the state's iteration (BasicSR would train nothing and say
    nothing); warn when ``lr`` differs from the one the state's optimizer holds (BasicSR restores
    the optimizer and scheduler, so the state's wins)."""
    total = (opt.get("train") or {}).get("total_iter")
    if _is_number(total) and total < state["iter"]:
        raise OptionsError(f"{path}: train:total_iter {int(total)} is below iteration {state['iter']} "
                           f"of {state_file}, which the run resumes from; raise total_iter "
                           f"(e.g. --force_yml train:total_iter={2 * state['iter']})")
    warnings = []
    for index, key in enumerate(k for k in ("optim_g", "optim_d") if k in (opt.get("train") or {})):
        lr = (opt["train"][key] or {}).get("lr")
        try:
            group = state["optimizers"][index]["param_groups"][0]
            stored = group.get("initial_lr", group["lr"])
        except (KeyError, IndexError, TypeError):
            continue
        if _is_number(lr) and _is_number(stored) and not math.isclose(lr, stored, rel_tol=1e-9):
            warnings.append(f"train:{key}:lr is {lr:g} but {state_file} was trained with {stored:g}; "
                            "resuming keeps the state's optimizer and schedule, so the lr stays "
                            f"{stored:g} (for a new lr, start a new experiment from its weights: "
                            "path:pretrain_network_g)")
    return warnings


def _check_checkpoints(opt: dict, path: str, *, is_train: bool, auto_resume: bool, name: str,
                       root: Path) -> list[str]:
    from .checkpoints import CheckpointError, check_network_checkpoint, load_checkpoint, \
        newest_intact_state

    paths = opt.get("path") or {}
    networks = [k for k in opt if k.startswith("network_") and isinstance(opt[k], dict)]
    exp = root / "experiments" / name
    resume_iter, warnings = None, []
    if is_train and auto_resume:
        state_file, _ = newest_intact_state(exp / "training_states", exp / "models",
                                            [k.removeprefix("network_") for k in networks])
        if state_file is not None:
            resume_iter = int(state_file.stem)
            warnings = _check_resume(opt, path, load_checkpoint(state_file, weights_only=False),
                                     state_file)
    elif is_train and paths.get("resume_state"):
        try:
            state = load_checkpoint(os.path.expanduser(str(paths["resume_state"])),
                                    weights_only=False)
        except CheckpointError as err:
            raise OptionsError(f"{path}: path:resume_state: {err}") from None
        if not isinstance(state, dict) or not _is_int(state.get("iter")):
            raise OptionsError(f"{path}: path:resume_state: {paths['resume_state']} is not a "
                               "BasicSR training state")
        resume_iter = state["iter"]
        warnings = _check_resume(opt, path, state, paths["resume_state"])
    for net_key in networks:
        file, where, param_key = _checkpoint_of(opt, net_key, resume_iter, exp / "models")
        if file is None:
            if not is_train and not (opt.get("val") or {}).get(ALLOW_UNTRAINED_KEY):
                raise OptionsError(f"{path}: {where} is empty: basicsr test would score a network "
                                   "with random weights; give the weights file, or set "
                                   f"{ALLOW_UNTRAINED}: true to test an untrained network")
            continue
        if not isinstance(file, str):
            raise OptionsError(f"{path}: {where} must be a file path or null, not {file!r}")
        label = net_key.removeprefix("network_")
        try:
            check_network_checkpoint(os.path.expanduser(file), opt[net_key], where=net_key,
                                     strict=paths.get(f"strict_load_{label}", True),
                                     param_key=param_key)
        except CheckpointError as err:
            raise OptionsError(f"{path}: {where}: {err}") from None
    return warnings


def _check_not_truncated(root: str) -> None:
    """An LMDB's ``data.mdb`` must hold every page its header counts: reading a page past the end
    of a truncated copy is SIGBUS (exit 135, no message) in the middle of training."""
    from .data.lmdb_check import LmdbCheckError
    from .data.lmdb_io import readonly_env

    env = readonly_env(root)
    need = (env.info()["last_pgno"] + 1) * env.stat()["psize"]
    have = os.path.getsize(os.path.join(root, "data.mdb"))
    if have < need:
        raise LmdbCheckError(f"{root}: data.mdb is truncated ({have} bytes, its pages need {need}): "
                             "an interrupted copy? copy or build it again")


def _check_databases(opt: dict, path: str, *, is_train: bool) -> None:
    from .data.lmdb_check import LmdbCheckError, check_lmdb, check_paired_lmdbs

    scale = opt.get("scale", 1)
    for phase, section in opt["datasets"].items():
        if (section.get("io_backend") or {}).get("type") != "lmdb":
            continue
        roots = {k: os.path.expanduser(str(section[k])) for k in ("dataroot_gt", "dataroot_lq")
                 if section.get(k) is not None}
        gt_size = section.get("gt_size") if is_train and phase == "train" else None
        try:
            for key, root in roots.items():
                if not root.endswith(".lmdb"):  # basicsr/data/data_util.py:paired_paths_from_lmdb
                    raise LmdbCheckError(f"{key}: {root}: with io_backend lmdb, BasicSR needs a "
                                         "folder named *.lmdb")
            if len(roots) == 2:
                check_paired_lmdbs(roots["dataroot_gt"], roots["dataroot_lq"], scale, gt_size)
            else:
                for root in roots.values():
                    check_lmdb(root)
            for root in roots.values():
                _check_not_truncated(root)
        except LmdbCheckError as err:
            raise OptionsError(f"{path}: datasets:{phase}: {err}") from None


def check_run_inputs(opt: dict, path: str = "<options>", *, is_train: bool = True,
                     auto_resume: bool = False, debug: bool = False,
                     root: str | os.PathLike = ".") -> list[str]:
    """Check the files a ``basicsr train|test`` run will read, as BasicSR will use them, before it
    creates (or archives) any folder: each network's checkpoint (``pretrain_network_*``, or when
    resuming the newest intact state's networks) loads and fits its network, and each LMDB
    dataset is an LMDB whose GT/LQ keys and ``meta_info.txt`` shapes fit ``scale`` and the
    training patch; the run's folders can be written (:func:`check_run_folders`); a test has
    weights (or says ``val: allow_untrained: true``); and a resumed state fits ``total_iter``.
    ``root`` is where ``experiments/`` lives (the working directory). Returns warnings (one line
    each): unknown option keys, an ``lr`` that resuming will not apply."""
    name = str(opt.get("name"))
    if debug and not name.startswith("debug"):  # basicsr/utils/options.py:134-135
        name = "debug_" + name
    check_run_folders(opt, path, is_train=is_train, root=root, name=name)
    warnings = unknown_keys(opt)
    warnings += _check_checkpoints(opt, path, is_train=is_train, auto_resume=auto_resume, name=name,
                                   root=Path(root))
    _check_databases(opt, path, is_train=is_train)
    return warnings


def check_options_file(path: str, *, force_yml: Iterable[str] | None = None,
                       is_train: bool = True, check_paths: bool = True) -> dict:
    """Read ``path`` like BasicSR does, apply ``--force_yml``, check it and (``check_paths``)
    that its datasets exist relative to the current directory; return the dict."""
    if os.path.isdir(path):
        raise OptionsError(f"{path}: is a folder, not an options file")
    if not os.path.isfile(path):
        raise OptionsError(f"{path}: options file not found")
    try:
        with open(path, encoding="utf-8") as f:
            opt = yaml.safe_load(f)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise OptionsError(f"{path}: not valid YAML{where}: {problem}") from None
    if force_yml and isinstance(opt, dict):
        _apply_force_yml(opt, force_yml, path)
    check_options(opt, path, is_train=is_train)
    if check_paths:
        check_data_paths(opt, path)
    return opt
