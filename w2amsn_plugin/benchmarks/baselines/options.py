"""Options of a benchmark run, derived from the user's files: the budgeted training options
(schedule compressed to the budget) and the test options derived from them."""
from __future__ import annotations

import copy
import os
import re
from pathlib import Path
from typing import Any, Sequence

import yaml

from ...experiments import metrics_options
from ...protocol import database_name, parse_database_name

from .method import BenchmarkError
__all__ = ['method_labels', 'scale_schedule', 'budget_train_options', 'derive_test_options']

#: dataset keys that only make sense in training (dropped when a test set is derived)
_TRAIN_ONLY_KEYS = ("gt_size", "use_hflip", "use_rot", "on_device", "num_worker_per_gpu",
                    "batch_size_per_gpu", "dataset_enlarge_ratio", "prefetch_mode", "pin_memory",
                    "persistent_workers")
_SECTION_ORDER = ("name", "model_type", "scale", "num_gpu", "manual_seed", "datasets", "network_g",
                  "path", "train", "val", "logger", "dist_params")
def method_labels(paths: Sequence[str | os.PathLike]) -> list[str]:
    """Labels from options file names: the stem without ``train_`` and without the suffix all
    stems share, e.g. ``train_W2AMSN_S_T1_x2.yml``, ``train_EDSR_T1_x2.yml`` -> ``W2AMSN_S``,
    ``EDSR``. Raises :class:`BenchmarkError` if two labels are equal."""
    stems = [Path(p).name.split(".")[0].removeprefix("train_") for p in paths]
    if len(stems) > 1:
        common = os.path.commonprefix([s[::-1] for s in stems])[::-1]
        common = common[common.find("_"):] if "_" in common else ""  # whole "_"-parts only
        if common and all(len(s) > len(common) for s in stems):
            stems = [s[: -len(common)] for s in stems]
    seen: dict[str, str] = {}
    for label, path in zip(stems, paths):
        if label in seen:
            raise BenchmarkError(f"{path} and {seen[label]} give the same label {label!r}; "
                                 "name the methods with --labels")
        seen[label] = str(path)
    return stems


def scale_schedule(train: dict[str, Any], iters: int) -> None:
    """Set ``train.total_iter`` to ``iters`` and compress the learning-rate schedule with it:
    ``milestones`` (MultiStepLR), ``periods`` (CosineAnnealingRestartLR; the last one is set
    so they add up to ``iters``) and ``warmup_iter`` scaled by ``iters / total_iter``."""
    factor = iters / int(train["total_iter"])
    train["total_iter"] = iters
    sched = train.get("scheduler") or {}
    if "milestones" in sched:
        sched["milestones"] = sorted({m for m in (round(x * factor) for x in sched["milestones"])
                                      if 0 < m < iters})
    if "periods" in sched:
        periods = [max(1, round(p * factor)) for p in sched["periods"]]
        periods[-1] = max(1, iters - sum(periods[:-1]))
        sched["periods"] = periods
    if (train.get("warmup_iter") or -1) > 0:
        train["warmup_iter"] = max(1, round(train["warmup_iter"] * factor))


def budget_train_options(opt: dict[str, Any], iters: int, name: str, *, print_freq: int | None = None
                         ) -> dict[str, Any]:
    """Training options of one benchmark run (module doc, step 2): ``name``, ``iters``
    iterations with the schedule compressed, one checkpoint at the end, no validation set."""
    out = copy.deepcopy(opt)
    out["name"] = name
    scale_schedule(out["train"], iters)
    out["datasets"].pop("val", None)
    out.setdefault("path", {})["resume_state"] = None
    logger = out.setdefault("logger", {})
    logger["save_checkpoint_freq"] = iters
    logger["print_freq"] = print_freq or min(int(logger.get("print_freq", 100)), iters)
    if out.get("val") is not None:
        out["val"]["val_freq"] = iters
    return out


def _test_root(path: str, split: str, where: str) -> str:
    head, tail = os.path.split(path.rstrip("/"))
    parsed = parse_database_name(tail)
    if parsed is None:
        raise BenchmarkError(f"{where}: cannot derive the {split} set from {path} (not a database "
                             "name <dataset>_<modality>_<split>_<kind>.lmdb); pass --test-opts")
    return os.path.join(head, database_name(parsed.modality, split, parsed.kind, parsed.dataset))


def derive_test_options(train_opt: dict[str, Any], label: str, weights: str | None, *, split: str = "test",
                        self_ensemble: bool = False, test_opt: dict[str, Any] | None = None,
                        where: str = "<options>") -> dict[str, Any]:
    """Test options of one method (module doc, step 3): ``test_opt`` (a ``--test-opts`` file)
    or options derived from ``train_opt``, with the run's ``weights`` and ``label``."""
    plus = "plus_" if self_ensemble else ""
    if test_opt is not None:
        out = copy.deepcopy(test_opt)
    else:
        datasets = train_opt["datasets"]
        base = copy.deepcopy(datasets.get("val") or datasets["train"])
        for key in _TRAIN_ONLY_KEYS:
            base.pop(key, None)
        base.pop("phase", None)
        for key in ("dataroot_gt", "dataroot_lq"):
            base[key] = _test_root(str(base[key]), split, f"{where}: datasets")
        old = str(base.get("name", "data"))
        base["name"] = (re.sub(r"(train|val)$", split, old) if re.search(r"(train|val)$", old)
                        else f"{old}_{split}")
        metrics = (train_opt.get("val") or {}).get("metrics")
        if not metrics:
            metrics = metrics_options(train_opt["scale"])
        out = {key: copy.deepcopy(train_opt[key]) for key in ("model_type", "scale", "num_gpu",
                                                             "manual_seed") if key in train_opt}
        out["datasets"] = {"test_1": base}
        out["network_g"] = copy.deepcopy(train_opt["network_g"])
        out["val"] = {"save_img": False, "suffix": None, "metrics": copy.deepcopy(metrics)}
    out["name"] = f"test_{plus}{train_opt['name']}"
    out["path"] = {**(out.get("path") or {}), "pretrain_network_g": weights, "strict_load_g": True,
                   "param_key_g": "params"}
    val = out.setdefault("val", {})
    val.update(self_ensemble=self_ensemble, results_table=True,
               method_name=label + ("+" if self_ensemble else ""))
    if weights is None:  # a method without weights (NLM)
        val["allow_untrained"] = True
    return out


def has_key(opt: dict[str, Any], entry: str) -> bool:
    node: Any = opt
    for key in entry.split("=", 1)[0].strip().split(":"):
        if not isinstance(node, dict) or key not in node:
            return False
        node = node[key]
    return True


def load_options(path: Path, force_yml: Sequence[str], *, is_train: bool, only_existing: bool = False
                  ) -> dict[str, Any]:
    """Options file with ``--force-yml`` applied and checked (one-line errors)."""
    from ...option_check import OptionsError, check_options_file

    if not path.is_file():
        raise BenchmarkError(f"{path}: options file not found")
    if only_existing:
        with open(path, encoding="utf-8") as f:
            raw = yaml.safe_load(f)
        force_yml = [e for e in force_yml if isinstance(raw, dict) and has_key(raw, e)]
    try:
        # data paths are checked relative to --workdir (check_data), not the current directory
        opt = check_options_file(str(path), force_yml=list(force_yml), is_train=is_train,
                                 check_paths=False)
    except OptionsError as err:
        raise BenchmarkError(str(err)) from None
    if is_train:
        for key in ("train", "network_g"):
            if not isinstance(opt.get(key), dict):
                raise BenchmarkError(f"{path}: no {key!r} section: not a training options file")
        if "train" not in opt["datasets"]:
            raise BenchmarkError(f"{path}: no datasets:train section: not a training options file")
    return opt


def check_data(opt: dict[str, Any], where: str, workdir: Path) -> None:
    for phase, section in opt["datasets"].items():
        for key in ("dataroot_gt", "dataroot_lq"):
            if key in section and not (workdir / section[key]).exists():
                raise BenchmarkError(f"{where}: datasets:{phase}:{key}: {section[key]} not found "
                                     f"(relative paths are taken from --workdir {workdir})")


def dump_options(path: Path, opt: dict[str, Any], note: str) -> Path:
    """Write ``opt`` as YAML in BasicSR's section order (general, datasets, network_g, path,
    train, val, logger, dist_params), atomically, under a one-line comment."""
    from ...results.files import write_text

    ordered = {k: opt[k] for k in _SECTION_ORDER if k in opt}
    ordered.update({k: v for k, v in opt.items() if k not in ordered})
    write_text(path, f"# {note}\n" + yaml.safe_dump(ordered, sort_keys=False, allow_unicode=True,
                                                    default_flow_style=None, width=120))
    return path


