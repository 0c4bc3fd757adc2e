"""Check an options YAML before BasicSR sees it, so a user's mistake gets one clear line.

BasicSR 1.4.2 reports these deep inside its pipeline: a missing file is a ``FileNotFoundError``
from ``options.py:94``, an unknown ``type:`` a ``KeyError`` after a misleading
"use name: X_basicsr" hint (``registry.py:65-69``), a misspelt network argument a ``TypeError``
from the constructor, and ``num_gpu: 1`` on a machine without CUDA an assertion in torch.
"""
from __future__ import annotations

import difflib
import inspect
import os
from typing import Any, Iterable, Iterator

import yaml

__all__ = ["OptionsError", "check_options_file", "check_options", "check_data_paths"]

_OPTIMIZERS = ("Adam",)  # basicsr/models/base_model.py:103-108
_SCHEDULERS = ("MultiStepLR", "MultiStepRestartLR", "CosineAnnealingRestartLR")  # :110-121


class OptionsError(ValueError):
    """A problem in an options file that the user can fix; the message is one line."""


def _close(name: str, choices: Iterable[str]) -> str:
    near = difflib.get_close_matches(name, list(choices), n=4, cutoff=0.5)
    return f" (did you mean {', '.join(repr(n) for n in near)}?)" if near else ""


def _apply_force_yml(opt: dict, entries: Iterable[str], path: str) -> None:
    """Apply ``--force_yml key:sub=value`` as BasicSR's ``options.py:118-129`` will."""
    for entry in entries:
        if "=" not in entry:
            raise OptionsError(f"--force_yml {entry!r}: expected key[:subkey...]=value")
        keys, value = (s.strip() for s in entry.split("=", 1))
        node = opt
        *parents, last = keys.split(":")
        for key in parents:
            if not isinstance(node.get(key), dict):
                raise OptionsError(f"--force_yml {entry!r}: {path} has no section {key!r}")
            node = node[key]
        if last not in node:
            raise OptionsError(f"--force_yml {entry!r}: {path} has no key {keys!r} "
                               "(BasicSR cannot create new keys)")
        node[last] = yaml.safe_load(value)


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
        from .models.mr_sr_model import VAL_OPTIONS

        for key in val:
            if key not in VAL_OPTIONS:
                raise OptionsError(f"{path}: val: MRSRModel has no option {key!r}"
                                   f"{_close(key, VAL_OPTIONS)}")
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
    num_gpu = opt["num_gpu"]
    if num_gpu != "auto":
        if not isinstance(num_gpu, int) or num_gpu < 0:
            raise OptionsError(f"{path}: num_gpu must be 'auto' or an integer >= 0, not {num_gpu!r}")
        if num_gpu > 0 and not torch.cuda.is_available():
            raise OptionsError(f"{path}: num_gpu: {num_gpu} but this machine has no CUDA device; "
                               "use num_gpu: 0 (CPU), e.g. --force_yml num_gpu=0")


def check_data_paths(opt: dict, path: str = "<options>") -> None:
    """Raise :class:`OptionsError` for a dataset ``dataroot_*`` that does not exist (relative
    paths are relative to the current directory, as BasicSR reads them)."""
    for phase, section in (opt.get("datasets") or {}).items():
        if not isinstance(section, dict):
            continue
        for key in ("dataroot_gt", "dataroot_lq"):
            root = section.get(key)
            if root is not None and not os.path.exists(os.path.expanduser(str(root))):
                hint = ""
                if "IXI_" in str(root):
                    hint = (f"; build it with scripts/make_ixi_lmdb.py --out "
                            f"{os.path.dirname(str(root)) or '.'}")
                raise OptionsError(f"{path}: datasets:{phase}:{key}: {root} not found (relative to "
                                   f"{os.getcwd()}){hint}")


def check_options_file(path: str, *, force_yml: Iterable[str] | None = None,
                       is_train: bool = True, check_paths: bool = True) -> dict:
    """Read ``path`` like BasicSR does, apply ``--force_yml``, check it and (``check_paths``)
    that its datasets exist relative to the current directory; return the dict."""
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
