"""The network configurations used everywhere (options generator, ``w2amsn stats``, ``bench``,
``baselines``): the single source of truth for "as configured in our options".

Each architecture module (``*_arch.py``, or a ``*_presets.py`` beside it; see
:mod:`.discovery`) may define

- ``PRESETS``: model name -> BasicSR ``network_g`` dict (``type`` + kwargs, no ``upscale``);
- ``TABLE_II``: model name -> the paper's Table II (parameters, mult-adds), where it has a row;
- ``TABLE_II_NOTES``: model name -> a reading of the Table II figures ours differ from by more
  than 5% (or the statement that none was found);
- ``SMALL``: model name -> the kwargs that cut the preset to a few hundred thousand parameters
  for comparisons on a CPU (:func:`small_preset`; networks without an entry stay as they are);
- ``EXPERIMENT_TAGS``: arch type -> the size part of experiment names, a format string over the
  ``network_g`` dict (default ``b{num_block}f{num_feat}`` when both keys exist, else none).

This module merges them in discovery order: a new network is one file. :func:`preset` adds the
``upscale``; a name defined twice is an error naming both files.
"""
from __future__ import annotations

import copy
import functools
import string
from typing import Any

from .discovery import import_arch_modules
from .w2amsn_presets import ABLATIONS, Ablation, ablation

__all__ = ["ABLATIONS", "PRESETS", "TABLE_II", "TABLE_II_NOTES", "Ablation", "ablation", "experiment_tag",
           "preset", "preset_source", "SMALL", "small_preset", "trainable"]

PRESETS: dict[str, dict[str, Any]] = {}
TABLE_II: dict[str, tuple[float, float]] = {}
TABLE_II_NOTES: dict[str, str] = {}
SMALL: dict[str, dict[str, Any]] = {}
_TAGS: dict[str, str] = {}
_SOURCE: dict[str, str] = {}


def _merge() -> None:
    for module in import_arch_modules():
        for name, opt in getattr(module, "PRESETS", {}).items():
            if name in PRESETS:
                raise ValueError(f"{module.__file__}: preset {name!r} is also defined in "
                                 f"{_SOURCE[name]}")
            PRESETS[name], _SOURCE[name] = opt, str(module.__file__)
        TABLE_II.update(getattr(module, "TABLE_II", {}))
        TABLE_II_NOTES.update(getattr(module, "TABLE_II_NOTES", {}))
        SMALL.update(getattr(module, "SMALL", {}))
        _TAGS.update(getattr(module, "EXPERIMENT_TAGS", {}))


_merge()


def preset(name: str, upscale: int) -> dict[str, Any]:
    """A deep copy of ``PRESETS[name]`` with ``upscale`` set, ready for ``build_network``."""
    if name not in PRESETS:
        raise KeyError(f"unknown network preset {name!r}; known: {', '.join(PRESETS)}")
    return {**copy.deepcopy(PRESETS[name]), "upscale": upscale}


def small_preset(name: str, upscale: int) -> dict[str, Any]:
    """:func:`preset` with the arch's ``SMALL`` cut applied (module doc)."""
    return {**preset(name, upscale), **copy.deepcopy(SMALL.get(name, {}))}


def preset_source(name: str) -> str:
    """The file that defines preset ``name``."""
    return _SOURCE[name]


def experiment_tag(net: dict[str, Any]) -> str:
    """The size part of an experiment name for the ``network_g`` dict ``net`` (module doc)."""
    fmt = _TAGS.get(net["type"])
    if fmt is None:
        fmt = "b{num_block}f{num_feat}" if {"num_block", "num_feat"} <= set(net) else ""
    keys = {field for _, field, _, _ in string.Formatter().parse(fmt) if field}
    return fmt.format(**net) if keys <= set(net) else ""


@functools.lru_cache(maxsize=None)
def trainable(name: str) -> bool:
    """Whether preset ``name`` has weights to train (NLM, a classical method, has none)."""
    import torch
    from basicsr.utils.registry import ARCH_REGISTRY

    opt = preset(name, 2)
    with torch.device("meta"):
        net = ARCH_REGISTRY.get(opt.pop("type"))(**opt)
    return any(True for _ in net.parameters())
