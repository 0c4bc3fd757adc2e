"""``w2amsn baselines --methods NAME ...``: the options of each registered network on one dataset
and one recipe. The recipe is a training options file (``--like``; e.g. the README demo's or a
generated ``options/train/...`` file): its data, patch, batch, schedule and logger are kept and
only ``network_g`` becomes the method's preset (:data:`w2amsn_plugin.archs.PRESETS`, at the
file's scale; with ``small``, cut by the arch's ``SMALL`` entry). The test options come from
``--like-test`` the same way, or are derived by the runner as for ``--train-opts``."""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Sequence

import yaml

from .method import BenchmarkError
from .options import dump_options

__all__ = ["method_options", "write_method_options"]


def _load(path: Path, what: str) -> dict[str, Any]:
    if not path.is_file():
        raise BenchmarkError(f"{path}: {what} not found")
    try:
        opt = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise BenchmarkError(f"{path}: not valid YAML: {str(err).splitlines()[0]}") from None
    if not isinstance(opt, dict) or not isinstance(opt.get("network_g"), dict) or "scale" not in opt:
        raise BenchmarkError(f"{path}: no network_g or scale: not a BasicSR options file")
    return opt


def method_options(methods: Sequence[str], like: dict[str, Any], like_test: dict[str, Any] | None,
                   small: bool = False) -> list[tuple[str, dict[str, Any], dict[str, Any] | None]]:
    """(label, training options, test options or None) of each method on the recipe ``like``."""
    from ...archs.presets import PRESETS, preset, small_preset

    unknown = [m for m in methods if m not in PRESETS]
    if unknown:
        raise BenchmarkError(f"--methods: unknown network {unknown[0]!r}; registered: {', '.join(PRESETS)}")
    if len(set(methods)) != len(methods):
        raise BenchmarkError(f"--methods: a method is named twice in {list(methods)}")
    scale = int(like["scale"])
    out = []
    for name in methods:
        net = (small_preset if small else preset)(name, scale)
        train = copy.deepcopy(like)
        train["name"] = f"{name.replace('-', '_')}{'_small' if small else ''}_{like['name']}"
        train["network_g"] = net
        test = None
        if like_test is not None:
            test = copy.deepcopy(like_test)
            test["network_g"] = copy.deepcopy(net)
        out.append((name, train, test))
    return out


def write_method_options(methods: Sequence[str], like: Path, like_test: Path | None, folder: Path,
                         small: bool = False) -> tuple[list[Path], list[Path], list[str]]:
    """Write :func:`method_options` under ``folder``; returns the training files, the test files
    (empty without ``like_test``) and the labels, for the runner's ``--train-opts`` path."""
    base = _load(like, "--like options file")
    base_test = _load(like_test, "--like-test options file") if like_test else None
    if base_test is not None and int(base_test["scale"]) != int(base["scale"]):
        raise BenchmarkError(f"{like_test}: scale {base_test['scale']} differs from {like}'s {base['scale']}")
    trains, tests, labels = [], [], []
    for name, train, test in method_options(methods, base, base_test, small):
        tag = name.replace("-", "_")
        trains.append(dump_options(folder / f"method_train_{tag}.yml", train,
                                   f"{name} on the recipe of {like}"))
        if test is not None:
            tests.append(dump_options(folder / f"method_test_{tag}.yml", test,
                                      f"{name} on the test set of {like_test}"))
        labels.append(name)
    return trains, tests, labels
