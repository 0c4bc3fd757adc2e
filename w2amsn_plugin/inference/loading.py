"""Loading a trained model for inference in two steps: :func:`read_model` reads the experiment's
options YAML (found beside a BasicSR checkpoint when not given) and the checkpoint's
``params_ema``/``params`` (torch and YAML only: what ``w2amsn infer --dry-run`` needs);
:func:`build_model` builds ``network_g`` through BasicSR's registry and loads the weights into it.
Every problem is one line naming the file at fault."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Union

import torch
import yaml
from torch import Tensor, nn

from .errors import InferenceError

__all__ = ["InferenceError", "PathLike", "ModelSpec", "LoadedModel", "read_model", "build_model",
           "load_model", "load_model_info"]


PathLike = Union[str, os.PathLike]


@dataclass(frozen=True)
class ModelSpec:
    """A checkpoint and its options, read but not yet built into a network."""

    scale: int
    options: Mapping[str, Any]
    options_path: Path | None  # None when the options were given as a mapping
    params: str  # the checkpoint key the weights came from
    network_type: str
    weights: Path
    state: Mapping[str, Tensor]

    @property
    def values(self) -> int:
        """Numbers in the checkpoint's state dict (the network's parameters and buffers)."""
        return sum(int(t.numel()) for t in self.state.values())


@dataclass(frozen=True)
class LoadedModel:
    """A network ready for inference and where it came from."""

    net: nn.Module
    scale: int
    options: Mapping[str, Any]
    options_path: Path | None  # None when the options were given as a mapping
    params: str  # the checkpoint key the weights came from
    network_type: str
    weights: Path

    @property
    def values(self) -> int:
        """Numbers in the network's state dict (its parameters and buffers)."""
        return sum(int(t.numel()) for t in self.net.state_dict().values())


def _find_options(weights: Path) -> Path:
    """The experiment YAML BasicSR copies into ``experiments/<name>/`` (``models/..`` of the
    checkpoint), or one beside the checkpoint."""
    for folder in (weights.parent, weights.parent.parent):
        found = sorted(p for pattern in ("*.yml", "*.yaml") for p in folder.glob(pattern))
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            names = ", ".join(p.name for p in found)
            raise InferenceError(f"{folder}: several options files ({names}); pass --opt")
    raise InferenceError(f"{weights}: no options YAML beside it or in {weights.parent.parent}; "
                         "pass --opt")


def _read_options(weights: Path, opt: PathLike | Mapping[str, Any] | None
                  ) -> tuple[Path | None, Mapping[str, Any]]:
    if isinstance(opt, Mapping):
        return None, opt
    path = Path(opt) if opt is not None else _find_options(weights)
    try:
        with open(path, encoding="utf-8") as f:
            options = yaml.safe_load(f)
    except OSError as err:
        raise InferenceError(f"{path}: cannot read options ({err.strerror})") from err
    except yaml.YAMLError as err:
        raise InferenceError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from err
    if not isinstance(options, Mapping):
        raise InferenceError(f"{path}: not an options mapping")
    return path, options


def _scale_of(options: Mapping[str, Any], net_opt: Mapping[str, Any], where: str) -> int:
    found = {k: v for k, v in (("scale", options.get("scale")), ("network_g.upscale",
                                                                   net_opt.get("upscale")))
             if v is not None}
    values = set(found.values())
    if not values:
        raise InferenceError(f"{where}: neither scale nor network_g.upscale is set")
    if len(values) > 1:
        raise InferenceError(f"{where}: scale and network_g.upscale disagree ({found})")
    scale = values.pop()
    if not isinstance(scale, int) or scale < 1:
        raise InferenceError(f"{where}: scale must be a positive integer, got {scale!r}")
    return scale


def _state_dict(weights: Path) -> tuple[dict[str, Tensor], str]:
    """The generator's parameters and the checkpoint key they came from."""
    try:
        ckpt = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for non-checkpoint files
        if weights.stat().st_size == 0:
            raise InferenceError(f"{weights}: weights file is empty (0 bytes)") from err
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]  # EOFError: no text
        raise InferenceError(f"{weights}: not a PyTorch checkpoint, or truncated "
                             f"({first[:120]})") from err
    if not isinstance(ckpt, Mapping):
        raise InferenceError(f"{weights}: checkpoint is a {type(ckpt).__name__}, not a dict")
    for key in ("params_ema", "params"):  # BasicSR: net_g_ema is saved as params_ema
        if isinstance(ckpt.get(key), Mapping):
            state, source = ckpt[key], key
            break
    else:
        if not ckpt or not all(isinstance(v, Tensor) for v in ckpt.values()):
            raise InferenceError(f"{weights}: no 'params_ema' or 'params' state dict in it")
        state, source = ckpt, "state dict"
    return {k[7:] if k.startswith("module.") else k: v for k, v in state.items()}, source


def read_model(weights: PathLike, opt: PathLike | Mapping[str, Any] | None = None) -> ModelSpec:
    """The options (``opt``: a YAML path, a parsed mapping, or None for the experiment's YAML
    beside the checkpoint), scale, network type and state dict of ``weights``, checked for what
    can be checked without building the network; one-line :class:`InferenceError` otherwise."""
    weights = Path(weights)
    if weights.is_dir():
        raise InferenceError(f"{weights}: is a folder, not a weights file")
    if not weights.is_file():
        raise InferenceError(f"{weights}: weights file not found")
    options_path, options = _read_options(weights, opt)
    where = str(options_path) if options_path is not None else "options"
    net_opt = options.get("network_g")
    if not isinstance(net_opt, Mapping) or "type" not in net_opt:
        raise InferenceError(f"{where}: no network_g section with a type")
    scale = _scale_of(options, net_opt, where)
    state, source = _state_dict(weights)
    return ModelSpec(scale=scale, options=options, options_path=options_path, params=source,
                     network_type=str(net_opt["type"]), weights=weights, state=state)


def build_model(spec: ModelSpec) -> LoadedModel:
    """``network_g`` of ``spec`` built through BasicSR's registry (with the plugin's
    architectures registered) and its weights loaded, in eval mode on the CPU."""
    import w2amsn_plugin.archs  # noqa: F401  (registers the plugin's architectures)
    from basicsr.archs import build_network
    from basicsr.utils.registry import ARCH_REGISTRY

    where = str(spec.options_path) if spec.options_path is not None else "options"
    net_opt = spec.options["network_g"]
    if spec.network_type not in ARCH_REGISTRY:
        raise InferenceError(f"{where}: network_g type {spec.network_type!r} is not a registered "
                             "architecture")
    try:
        net = build_network(dict(net_opt))
    except (TypeError, ValueError) as err:
        raise InferenceError(f"{where}: cannot build network_g ({err})") from err
    try:
        missing, unexpected = net.load_state_dict(spec.state, strict=False)
    except RuntimeError as err:  # shape mismatches; the first detail line names a tensor
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        raise InferenceError(f"{spec.weights}: weights do not fit network_g of {where} "
                             f"({lines[-1] if len(lines) == 1 else lines[1]})") from err
    if missing or unexpected:
        raise InferenceError(
            f"{spec.weights}: weights do not fit network_g of {where} ({len(missing)} missing, "
            f"{len(unexpected)} unexpected keys, e.g. {(missing + unexpected)[0]!r})")
    net.eval().requires_grad_(False)
    return LoadedModel(net=net, scale=spec.scale, options=spec.options,
                       options_path=spec.options_path, params=spec.params,
                       network_type=spec.network_type, weights=spec.weights)


def load_model_info(weights: PathLike, opt: PathLike | Mapping[str, Any] | None = None
                    ) -> LoadedModel:
    """:func:`load_model` with where everything came from (options, checkpoint key)."""
    return build_model(read_model(weights, opt))


def load_model(weights: PathLike, opt: PathLike | Mapping[str, Any] | None = None
               ) -> tuple[nn.Module, int]:
    """Build ``network_g`` from the experiment's options and load a BasicSR checkpoint into it.

    ``opt`` is an options YAML path or an already-parsed options dict; ``None`` takes the YAML
    BasicSR copied into the experiment folder (``experiments/<name>/*.yml`` for
    ``experiments/<name>/models/net_g_*.pth``) or the one beside the checkpoint. The weights are
    ``params_ema`` when present, else ``params`` (or a bare state dict). Returns the network in
    eval mode on the CPU, and the scale (``scale`` / ``network_g.upscale``).
    Raises :class:`InferenceError` with one line naming the file at fault.
    """
    loaded = load_model_info(weights, opt)
    return loaded.net, loaded.scale


