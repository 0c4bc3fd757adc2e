"""Checkpoint and training-state files of a BasicSR run: atomic writes, load checks whose error
names the file, and the newest intact training state of an experiment (docs/reliability.md).

BasicSR 1.4.2 writes ``models/net_<label>_<iter>.pth`` and ``training_states/<iter>.state`` in
place (``basicsr/models/base_model.py:229,327``): a kill during the write leaves a truncated file
that ``--auto_resume`` then picks and dies on. :func:`atomic_torch_save` is what
:mod:`w2amsn_plugin.compat` makes BasicSR write with; :func:`newest_intact_state` is what it
resumes from.
"""
from __future__ import annotations

import copy
import os
import re
from pathlib import Path
from typing import Any, Iterable

import torch

from .results.files import TEMP_MARK, atomic_write

__all__ = ["CheckpointError", "atomic_torch_save", "save_or_stop", "load_checkpoint", "network_params",
           "check_network_checkpoint", "newest_intact_state", "TMP_MARK"]

#: part of the name of a file being written by :func:`atomic_torch_save`
#: (``.<stem>.w2amsn-partial-<pid><suffix>``, :func:`w2amsn_plugin.results.files.temp_path`)
TMP_MARK = TEMP_MARK
_STATE = re.compile(r"^(\d+)\.state$")


class CheckpointError(ValueError):
    """A checkpoint or training state that cannot be used; the message is one line naming it."""


def atomic_torch_save(obj: Any, path: str | os.PathLike, *args: Any, **kwargs: Any) -> None:
    """``torch.save(obj, path)`` that never leaves a partial ``path``: the plugin's one atomic
    writer (:func:`~w2amsn_plugin.results.files.atomic_write`: hidden temporary file in the same
    folder, fsync, ``os.replace``, fsync of the folder)."""
    atomic_write(path, lambda tmp: torch.save(obj, tmp, *args, **kwargs))


def save_or_stop(obj: Any, path: str | os.PathLike, *args: Any, **kwargs: Any) -> None:
    """:func:`atomic_torch_save`, and when it fails (disk full, read-only folder, an object that
    cannot be pickled) :class:`~w2amsn_plugin.run_guard.SaveFailed` naming the file and why: the
    run stops with its earlier checkpoints intact instead of training on without any."""
    from .run_guard import SaveFailed

    try:
        atomic_torch_save(obj, path, *args, **kwargs)
    except Exception as err:  # noqa: BLE001  (OSError, pickling errors: all stop the run)
        reason = getattr(err, "strerror", None) or str(err).strip().splitlines()[0][:160] or \
            type(err).__name__
        raise SaveFailed(f"{path}: cannot be saved ({reason}); the run stops here, earlier "
                         "checkpoints are intact: fix that, then resume with --auto_resume") from None


def _reason(err: BaseException) -> str:
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    if "weights_only" in str(err) or "Unpickl" in text:
        return "not a PyTorch checkpoint of tensors"
    if "central directory" in text or "zip archive" in text or isinstance(err, EOFError):
        return "truncated or damaged"
    return text[:120]


def load_checkpoint(path: str | os.PathLike, *, weights_only: bool = True) -> Any:
    """``torch.load`` on the CPU; :class:`CheckpointError` naming ``path`` if it is missing,
    empty, truncated or not a checkpoint."""
    p = Path(path)
    if not p.exists():
        raise CheckpointError(f"{path}: not found")
    if not p.is_file():
        raise CheckpointError(f"{path}: is not a file")
    size = p.stat().st_size
    if size == 0:
        raise CheckpointError(f"{path}: is empty (0 bytes)")
    try:
        return torch.load(p, map_location="cpu", weights_only=weights_only)
    except Exception as err:  # noqa: BLE001  (torch raises many types for a bad file)
        with open(p, "rb") as f:
            head = f.read(4)
        # torch.save writes a zip archive (PK..); the legacy format starts with a pickle opcode
        reason = _reason(err) if head == b"PK\x03\x04" or head[:1] == b"\x80" else \
            "not a PyTorch checkpoint of tensors"
        raise CheckpointError(f"{path}: cannot be loaded ({size} bytes): {reason}") from None


def network_params(ckpt: Any, path: str | os.PathLike, param_key: str | None) -> dict:
    """The parameters BasicSR's ``load_network`` takes from a loaded checkpoint
    (``base_model.py:290-300``: ``params_ema`` falls back to ``params``; ``module.`` removed)."""
    if param_key is not None:
        if not isinstance(ckpt, dict):
            raise CheckpointError(f"{path}: holds a {type(ckpt).__name__}, not a dict of parameters")
        if param_key not in ckpt and "params" in ckpt:
            param_key = "params"
        if param_key not in ckpt:
            keys = ", ".join(repr(k) for k in list(ckpt)[:5]) or "nothing"
            raise CheckpointError(f"{path}: has no {param_key!r} entry (it has {keys})")
        ckpt = ckpt[param_key]
    if not isinstance(ckpt, dict) or not all(isinstance(v, torch.Tensor) for v in ckpt.values()):
        raise CheckpointError(f"{path}: {param_key or 'the file'} is not a dict of tensors")
    return {k.removeprefix("module."): v for k, v in ckpt.items()}


def _expected_shapes(net_opt: dict) -> dict[str, tuple[int, ...]]:
    """Parameter shapes of the network ``net_opt`` describes, built on the meta device (no
    weights are allocated; BasicSR's ``build_network`` is not used: it would start its logger)."""
    from basicsr.utils.registry import ARCH_REGISTRY

    opt = copy.deepcopy(net_opt)
    name = opt.pop("type")
    cls = next(ARCH_REGISTRY._obj_map[n] for n in (name, f"{name}_basicsr") if n in ARCH_REGISTRY)
    try:
        with torch.device("meta"):
            net = cls(**opt)
    except Exception:  # noqa: BLE001  (an arch that computes on init: build it for real)
        net = cls(**opt)
    return {k: tuple(v.shape) for k, v in net.state_dict().items()}


def check_network_checkpoint(path: str | os.PathLike, net_opt: dict, *, where: str = "network_g",
                             strict: bool = True, param_key: str | None = "params") -> None:
    """Raise :class:`CheckpointError` unless BasicSR can load ``path`` into the network of
    ``net_opt`` (with ``strict``: same parameter names and shapes)."""
    params = network_params(load_checkpoint(path), path, param_key)
    if not strict:
        return
    expected = _expected_shapes(net_opt)
    missing = sorted(set(expected) - set(params))
    unexpected = sorted(set(params) - set(expected))
    what = f"{where} ({net_opt.get('type')})"
    if missing or unexpected:
        example = (missing + unexpected)[0]
        raise CheckpointError(f"{path}: does not fit {what}: {len(missing)} parameters missing, "
                              f"{len(unexpected)} unexpected (e.g. {example}); weights of another "
                              "architecture?")
    for key, shape in expected.items():
        if tuple(params[key].shape) != shape:
            raise CheckpointError(f"{path}: does not fit {what}: {key} is "
                                  f"{tuple(params[key].shape)} in the file, {shape} in the "
                                  "network; trained with other options (num_feat, upscale, ...)?")


def newest_intact_state(states_dir: str | os.PathLike, models_dir: str | os.PathLike,
                        labels: Iterable[str]) -> tuple[Path | None, list[CheckpointError]]:
    """The newest ``<iter>.state`` of ``states_dir`` that loads and whose network files
    ``models_dir/net_<label>_<iter>.pth`` load too (BasicSR resumes the networks from them,
    ``basicsr/utils/misc.py:111-117``); and the problems of the newer ones, newest first."""
    states_dir, labels = Path(states_dir), list(labels)
    if not states_dir.is_dir():
        return None, []
    found = sorted(((int(m[1]), p) for p in states_dir.iterdir() if (m := _STATE.match(p.name))),
                   reverse=True)
    damaged: list[CheckpointError] = []
    for iteration, path in found:
        try:
            state = load_checkpoint(path, weights_only=False)  # BasicSR's own pickled state
            if not isinstance(state, dict) or state.get("iter") != iteration:
                raise CheckpointError(f"{path}: is not a training state of iteration {iteration}")
            for label in labels:
                network_params(load_checkpoint(Path(models_dir, f"net_{label}_{iteration}.pth")),
                               Path(models_dir, f"net_{label}_{iteration}.pth"), "params")
        except CheckpointError as err:
            damaged.append(err)
            continue
        return path, damaged
    return None, damaged
