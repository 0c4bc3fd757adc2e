"""Build the paper's IXI slice databases from IXI's NIfTI volumes (paper section IV-A;
docs/data.md). ``w2amsn prepare-ixi`` (``scripts/make_ixi_lmdb.py``) is its command
line (:mod:`w2amsn_plugin.commands.prepare_ixi`).

For one modality it writes, BasicSR-style, into ``OUT``:

- ``IXI_<MOD>_<split>_HR.lmdb`` and ``IXI_<MOD>_<split>_LR_<degradation>_X<s>.lmdb`` for split in
  train/val/test, keys ``<subject>_<MOD>_s<slice:03d>``, values 16-bit grayscale PNG;
- ``IXI_<MOD>_split.json``: the subjects of each split, the options, and per volume its file,
  intensity window (``lo``, ``hi``) and the canonical z index of slice 0 (``z_start``).

Per volume (:func:`process_volume`): read and reorient to RAS, normalise to [0, 1] with
:func:`~w2amsn_plugin.data.normalization.normalize_intensity`, crop/pad to the crop size
(:mod:`~w2amsn_plugin.data.ixi`), quantise to 16 bit; each LR image is the degradation of the
*quantised* HR slice (so decoding the HR database and degrading it reproduces the LR database up to
the LR's own 16-bit rounding), clipped to [0, 1] and quantised. The HR width and height are cut
down to a multiple of the least common multiple of the scales, so one HR database serves all
scales.

Robustness: volumes are processed in parallel worker processes; each finished volume is committed
to staging databases in ``OUT/.IXI_<MOD>_staging`` and recorded in its ``done.jsonl``, so a rerun
after Ctrl-C or a crash skips it. Databases are built as ``<name>.lmdb.tmp``, verified (key sets of
GT and every LQ database equal the expected keys, every value decodes to the expected shape) and
only then moved into place; ``IXI_<MOD>_split.json`` is written last.
"""
from __future__ import annotations

import json
import math
import multiprocessing
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from .degradations import DEGRADATIONS, degrade
from .ixi import (FOREGROUND_THRESHOLD, IXI_MODALITIES, IXIDataError, axial_stack, crop_axial_stack,
                  load_canonical, open_volume, scan_ixi_tree, slice_key)
from .lmdb_io import lmdb_map_size, read_meta_keys, verify_lmdb, write_meta_info
from .naming import database_name, lr_kind
from .normalization import DEFAULT_PERCENTILE, normalize_intensity
from .png16 import DEFAULT_COMPRESS_LEVEL, encode_png16, to_uint16
from .split import SPLITS, split_subjects
from .staging import Staging, file_stamp, write_json_atomic

__all__ = ["FORMAT_VERSION", "PrepConfig", "PrepResult", "VolumeResult", "process_volume",
           "make_ixi_lmdb"]

FORMAT_VERSION = 1
@dataclass(frozen=True)
class PrepConfig:
    """Options of :func:`make_ixi_lmdb` (defaults: the paper's set-up, docs/data.md).

    ``crop`` is ``(x, y, z)`` in canonical RAS voxels: slices are ``y`` high and ``x`` wide, ``z``
    slices per volume. ``workers`` processes volumes in parallel (1: in this process).
    """

    ixi_root: Path
    modality: str
    out: Path
    scales: tuple[int, ...] = (2, 3, 4)
    degradations: tuple[str, ...] = ("bicubic",)
    n_train: int = 500
    n_test: int = 70
    n_val: int = 6
    seed: int = 0
    crop: tuple[int, int, int] = (240, 240, 96)
    percentile: float = DEFAULT_PERCENTILE
    workers: int = 2
    compress_level: int = DEFAULT_COMPRESS_LEVEL
    overwrite: bool = False
    progress: bool = True


@dataclass
class PrepResult:
    """What a run did: the manifest path, every database of the modality, and the work done."""

    manifest_path: Path
    databases: list[Path]
    volumes_processed: int
    seconds: float
    manifest: dict = field(repr=False, default_factory=dict)


@dataclass
class VolumeResult:
    """Encoded slices of one volume (``values[kind][slice]``) and how they were made: the
    canonical z index of slice 0, the normalisation window, the file's axis codes (e.g. ``PSR``)
    and the volume's shape after reorientation to RAS (before cropping)."""

    z_start: int
    lo: float
    hi: float
    source_axcodes: str
    ras_shape: tuple[int, ...]
    values: dict[str, list[bytes]]


def process_volume(path: str | os.PathLike, crop: tuple[int, int, int], percentile: float,
                   lr_specs: Iterable[tuple[str, int]], encode_hr: bool = True,
                   compress_level: int = DEFAULT_COMPRESS_LEVEL) -> VolumeResult:
    """Read one volume and encode its HR slices and its LR slices for each ``(degradation, s)``.

    Raises :class:`IXIDataError` (one line naming the file) for unreadable or invalid volumes.
    """
    data, codes = load_canonical(path)
    try:
        norm, lo, hi = normalize_intensity(data, percentile)
    except ValueError as err:
        raise IXIDataError(f"{path}: {err}") from None
    x, y, z = crop
    hr, z_start = crop_axial_stack(axial_stack(norm), height=y, width=x, depth=z)
    hr_q = to_uint16(hr)
    values: dict[str, list[bytes]] = {}
    if encode_hr:
        values["HR"] = [encode_png16(s, compress_level) for s in hr_q]
    hr_f = hr_q.astype(np.float64) / 65535.0
    for degradation, scale in lr_specs:
        lr_q = to_uint16(np.clip(degrade(hr_f, scale, degradation), 0.0, 1.0))
        values[lr_kind(degradation, scale)] = [encode_png16(s, compress_level) for s in lr_q]
    return VolumeResult(z_start=z_start, lo=lo, hi=hi, source_axcodes="".join(codes),
                        ras_shape=tuple(int(n) for n in data.shape), values=values)


# ------------------------------------------------------------------------------------ planning
def _check_options(cfg: PrepConfig) -> None:
    if cfg.modality not in IXI_MODALITIES:
        raise IXIDataError(f"--modality must be one of {IXI_MODALITIES}, got {cfg.modality!r}")
    if not cfg.scales or any(int(s) != s or s < 2 for s in cfg.scales):
        raise IXIDataError(f"--scales must be integers >= 2, got {list(cfg.scales)}")
    if len(set(cfg.scales)) != len(cfg.scales):
        raise IXIDataError(f"--scales has duplicates: {list(cfg.scales)}")
    if not cfg.degradations or any(d not in DEGRADATIONS for d in cfg.degradations):
        raise IXIDataError(f"--degradation must be among {DEGRADATIONS}, "
                           f"got {list(cfg.degradations)}")
    if len(cfg.crop) != 3 or any(int(c) != c or c < 1 for c in cfg.crop):
        raise IXIDataError(f"--crop needs three positive integers X Y Z, got {list(cfg.crop)}")
    if not 0 < cfg.percentile <= 100:
        raise IXIDataError(f"--percentile must be in (0, 100], got {cfg.percentile}")
    if cfg.workers < 1:
        raise IXIDataError(f"--workers must be >= 1, got {cfg.workers}")
    if not 0 <= cfg.compress_level <= 9:
        raise IXIDataError(f"--compress-level must be 0..9, got {cfg.compress_level}")
    if min(cfg.n_train, cfg.n_test, cfg.n_val) < 0 or cfg.n_train + cfg.n_test + cfg.n_val == 0:
        raise IXIDataError("--n-train/--n-test/--n-val must be >= 0 and not all 0")


def _effective_crop(cfg: PrepConfig, log: Callable[[str], None]) -> tuple[int, int, int]:
    """The crop with x and y cut down to a multiple of lcm(scales) (one HR set for all scales)."""
    multiple = math.lcm(*cfg.scales)
    x, y, z = (int(c) for c in cfg.crop)
    ex, ey = x - x % multiple, y - y % multiple
    if ex == 0 or ey == 0:
        raise IXIDataError(f"--crop {x} {y} {z} is smaller than lcm(scales) = {multiple}")
    if (ex, ey) != (x, y):
        log(f"note: crop {x}x{y} cut to {ex}x{ey}, a multiple of lcm(scales) = {multiple}")
    return ex, ey, z


def _kinds(cfg: PrepConfig) -> list[str]:
    return ["HR"] + [lr_kind(d, s) for d in cfg.degradations for s in cfg.scales]


def _kind_shape(kind: str, crop: tuple[int, int, int]) -> tuple[int, int]:
    scale = 1 if kind == "HR" else int(kind.rsplit("_X", 1)[1])
    return crop[1] // scale, crop[0] // scale


def _lr_spec(kind: str) -> tuple[str, int]:
    _, degradation, scale = kind.split("_")
    return degradation, int(scale[1:])


def _precheck_headers(paths: Iterable[Path]) -> None:
    """Read every header once (fast) so a bad file is reported before any work is done."""
    for path in paths:
        open_volume(path)


def _fingerprint(manifest: dict) -> dict:
    return {k: manifest.get(k) for k in ("format_version", "modality", "options", "splits")}


# ------------------------------------------------------------------------------------- staging
# ------------------------------------------------------------------------------------- workers
def _init_worker() -> None:
    import signal

    import cv2
    import torch

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is handled once, by the main process
    cv2.setNumThreads(1)
    torch.set_num_threads(1)


def _run_task(task: tuple) -> tuple[str, str, VolumeResult]:
    split, subject, path, crop, percentile, kinds, compress_level = task
    lr_specs = [_lr_spec(k) for k in kinds if k != "HR"]
    result = process_volume(path, crop, percentile, lr_specs, encode_hr="HR" in kinds,
                            compress_level=compress_level)
    return split, subject, result


def _verify_task(task: tuple) -> tuple[str, list[str], list[str]]:
    name, path, shape = task
    keys, problems = verify_lmdb(path, shape)
    return name, keys, problems


def _imap(pool, func, tasks: list) -> Iterator:
    if pool is None:
        return map(func, tasks)
    return pool.imap_unordered(func, tasks)


def _progress(total: int, initial: int, desc: str, enabled: bool, unit: str = "vol"):
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit=unit, disable=not enabled,
                dynamic_ncols=True, smoothing=0.1)


# ---------------------------------------------------------------------------------------- main
def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def make_ixi_lmdb(cfg: PrepConfig, log: Callable[[str], None] = _stderr) -> PrepResult:
    """Build (or finish building) the databases of ``cfg.modality`` in ``cfg.out``.

    Raises :class:`IXIDataError` (one line naming the file and problem) for bad input; nothing is
    then moved into place. ``KeyboardInterrupt`` leaves the finished volumes staged for a rerun.
    """
    start = time.perf_counter()
    _check_options(cfg)
    crop = _effective_crop(cfg, log)
    mod, out = cfg.modality, Path(cfg.out)
    files, warnings = scan_ixi_tree(cfg.ixi_root, mod)
    for warning in warnings:
        log(f"warning: {warning}")
    splits = split_subjects(files, cfg.n_train, cfg.n_test, cfg.n_val, cfg.seed,
                            what=f"{cfg.ixi_root} ({mod})")
    options = {"seed": cfg.seed, "n_train": cfg.n_train, "n_test": cfg.n_test,
               "n_val": cfg.n_val, "crop": list(crop), "crop_requested": list(cfg.crop),
               "percentile": cfg.percentile, "compress_level": cfg.compress_level}
    manifest = {
        "format_version": FORMAT_VERSION, "dataset": "IXI", "modality": mod, "options": options,
        "splits": splits,
        "preprocessing": {
            "orientation": "nibabel as_closest_canonical (RAS, no resampling); axial slices along "
                           "z, slice k = vol[:, ::-1, k].T (anterior at the top, patient right on "
                           "the image right)",
            "crop": "x and y: centre crop or zero-pad; z: consecutive slices centred on the "
                    f"foreground (normalised intensity > {FOREGROUND_THRESHOLD}) bounding box, "
                    "clamped to the volume, zero-padded equally when the volume is shorter; "
                    "x, y cut to a multiple of lcm(scales)",
            "normalization": f"per volume: clip to [min, {cfg.percentile}th percentile] and scale "
                             "to [0, 1] (w2amsn_plugin.data.normalization); lo/hi per volume below",
            "storage": "16-bit grayscale PNG, value = round(x * 65535)",
            "lr": "degradation of the 16-bit HR slice: bicubic = MATLAB imresize (antialiased, "
                  "BasicSR imresize weights); truncation = central k-space crop, magnitude",
        },
    }
    kinds = _kinds(cfg)
    targets_all = {database_name(mod, split, kind): (split, kind)
                   for split in SPLITS if splits[split] for kind in kinds}
    manifest_path = out / f"IXI_{mod}_split.json"
    staging_root = out / f".IXI_{mod}_staging"
    if cfg.overwrite:
        _remove_modality_outputs(out, mod, log)
    existing = json.loads(manifest_path.read_text()) if manifest_path.is_file() else None
    if existing is not None and _fingerprint(existing) != _fingerprint(manifest):
        raise IXIDataError(f"{manifest_path}: written with other options or another subject "
                           "split; use another --out or pass --overwrite")
    missing = {n: t for n, t in targets_all.items() if not (out / n).exists()}
    if existing is None and len(missing) < len(targets_all) and not staging_root.exists():
        present = sorted(set(targets_all) - set(missing))[0]
        raise IXIDataError(f"{out / present}: exists without {manifest_path.name}; remove it or "
                           "pass --overwrite")
    if not missing:
        log(f"nothing to do: all {len(targets_all)} {mod} databases in {out} are complete")
        return PrepResult(manifest_path, [out / n for n in sorted(targets_all)], 0,
                          time.perf_counter() - start, existing or {})
    needed_splits = sorted({split for split, _ in missing.values()}, key=SPLITS.index)
    subjects = [(split, s) for split in needed_splits for s in splits[split]]
    _precheck_headers(files[s] for _, s in subjects)
    out.mkdir(parents=True, exist_ok=True)

    depth = crop[2]
    map_sizes = {name: lmdb_map_size(len(splits[split]) * depth, *_kind_shape(kind, crop))
                 for name, (split, kind) in missing.items()}
    staging_config = {"format_version": FORMAT_VERSION, "modality": mod, "options": options,
                      "targets": sorted(missing)}
    staging = Staging(staging_root, staging_config, missing, splits, files, map_sizes, log)
    kinds_of = {split: [k for n, (sp, k) in missing.items() if sp == split]
                for split in needed_splits}
    tasks = [(split, s, str(files[s]), crop, cfg.percentile, tuple(kinds_of[split]),
              cfg.compress_level) for split, s in subjects if s not in staging.done]
    n_done_before = len(subjects) - len(tasks)
    counts = ", ".join(f"{sp} {len(splits[sp])}" for sp in needed_splits)
    log(f"IXI {mod}: {len(subjects)} volumes ({counts}), {n_done_before} already done, "
        f"{len(missing)} databases to build in {out}")
    pool = _make_pool(cfg.workers, len(tasks))
    processed = 0
    try:
        with _progress(len(subjects), n_done_before, f"IXI {mod}", cfg.progress) as bar:
            for split, subject, result in _imap(pool, _run_task, tasks):
                path = files[subject]
                size, mtime_ns = file_stamp(path)
                record = {"subject": subject, "split": split,
                          "file": os.path.relpath(path, cfg.ixi_root), "size": size,
                          "mtime_ns": mtime_ns, "z_start": result.z_start, "lo": result.lo,
                          "hi": result.hi, "source_axcodes": result.source_axcodes,
                          "ras_shape": list(result.ras_shape)}
                staging.commit(split, subject, result.values, record, mod)
                processed += 1
                bar.update(1)
        staging.close()
        _finalize(staging, missing, targets_all, splits, crop, cfg, pool, out, log)
    except KeyboardInterrupt:
        log(f"interrupted: {len(staging.done)}/{len(subjects)} volumes are staged in "
            f"{staging_root}; rerun the same command to resume")
        raise
    except IXIDataError as err:
        raise IXIDataError(f"{err} [no database written; {len(staging.done)} finished volumes "
                           f"kept in {staging_root} for a rerun]") from None
    finally:
        if staging.writers:
            staging.close()
        if pool is not None:
            pool.terminate()
            pool.join()

    volumes = {}
    if existing:
        volumes.update(existing.get("volumes", {}))
    for rec in staging.done.values():
        volumes[rec["subject"]] = {k: v for k, v in rec.items() if k != "subject"}
    manifest["volumes"] = dict(sorted(volumes.items()))
    databases = dict(existing.get("databases", {})) if existing else {}
    for name, (split, kind) in targets_all.items():
        h, w = _kind_shape(kind, crop)
        databases[name] = {"split": split, "kind": kind, "keys": len(splits[split]) * depth,
                           "shape": [h, w, 1]}
    manifest["databases"] = dict(sorted(databases.items()))
    write_json_atomic(manifest_path, manifest)
    shutil.rmtree(staging_root)
    seconds = time.perf_counter() - start
    rate = processed / seconds * 60 if seconds > 0 else 0.0
    log(f"done: {processed} volumes processed in {seconds:.1f} s ({rate:.1f} volumes/min); "
        f"{len(missing)} databases written; manifest {manifest_path}")
    return PrepResult(manifest_path, [out / n for n in sorted(targets_all)], processed, seconds,
                      manifest)


def _make_pool(workers: int, n_tasks: int):
    if workers <= 1 or n_tasks <= 1:
        return None
    ctx = multiprocessing.get_context("spawn")  # no fork of a process that may hold torch threads
    return ctx.Pool(min(workers, n_tasks), initializer=_init_worker)


def _finalize(staging: Staging, missing: dict[str, tuple[str, str]],
              targets_all: dict[str, tuple[str, str]], splits: dict[str, list[str]],
              crop: tuple[int, int, int], cfg: PrepConfig, pool, out: Path,
              log: Callable[[str], None]) -> None:
    """Verify the staged databases (and existing ones of the same splits), then publish them."""
    mod, depth = cfg.modality, crop[2]
    tasks = [(name, str(staging.tmp_path(name)), _kind_shape(kind, crop))
             for name, (_, kind) in missing.items()]
    keys_of: dict[str, list[str]] = {}
    with _progress(len(tasks), 0, "verify", cfg.progress, unit="db") as bar:
        for name, keys, problems in _imap(pool, _verify_task, tasks):
            if problems:
                raise IXIDataError(f"{staging.tmp_path(name)}: verification failed, "
                                   f"{len(problems)} bad values (first: {problems[0]}); "
                                   "rerun with --overwrite")
            keys_of[name] = keys
            bar.update(1)
    for name in targets_all:
        if name not in missing:  # built by an earlier run, e.g. the HR set before a new scale
            keys_of[name] = sorted(read_meta_keys(out / name))
    for split in {sp for sp, _ in missing.values()}:
        expected = sorted(slice_key(s, mod, k) for s in splits[split] for k in range(depth))
        for name, (sp, _) in targets_all.items():
            if sp == split and keys_of[name] != expected:
                lacking = sorted(set(expected) - set(keys_of[name]))
                extra = sorted(set(keys_of[name]) - set(expected))
                raise IXIDataError(f"{name}: key set differs from the expected {split} keys "
                                   f"({len(lacking)} missing, {len(extra)} extra, e.g. "
                                   f"{(lacking + extra)[0]}); rerun with --overwrite")
    for name, (_, kind) in missing.items():
        write_meta_info(staging.tmp_path(name), keys_of[name], _kind_shape(kind, crop),
                        cfg.compress_level)
    for name in missing:
        os.replace(staging.tmp_path(name), out / name)
    log(f"verified: {len(missing)} new databases (every value decodes; GT and LQ keys match)")


def _remove_modality_outputs(out: Path, mod: str, log: Callable[[str], None]) -> None:
    """--overwrite: remove this modality's databases, manifest and staging in ``out``."""
    if not out.is_dir():
        return
    victims = sorted(out.glob(f"IXI_{mod}_*.lmdb")) + [out / f".IXI_{mod}_staging"]
    for path in victims:
        if path.is_dir():
            shutil.rmtree(path)
    manifest = out / f"IXI_{mod}_split.json"
    if manifest.is_file():
        manifest.unlink()
    log(f"--overwrite: removed previous {mod} outputs in {out}")


# ----------------------------------------------------------------------------------------- CLI
