"""Build the paper's IXI slice databases from IXI's NIfTI volumes (paper section IV-A;
docs/data.md). ``w2amsn prepare-ixi`` (``scripts/make_ixi_lmdb.py``) is its command
line (:mod:`w2amsn_plugin.commands.prepare_ixi`).

For one modality it writes, BasicSR-style, into ``OUT``:

- ``IXI_<MOD>_<split>_HR.lmdb`` and ``IXI_<MOD>_<split>_LR_<degradation>_X<s>.lmdb`` for split in
  train/val/test, keys ``<subject>_<MOD>_s<slice:03d>``, values grayscale PNG (16 bit, or 8);
  each folder also holds :data:`~w2amsn_plugin.data.protocol.STAMP_FILE` (the protocol id);
- ``IXI_<MOD>_split.json``: the subjects of each split, the options, the ``"protocol"`` record
  (plane, in-plane voxel size, percentile, bits, slice selection, crop, degradations, scales, id;
  :mod:`~w2amsn_plugin.data.protocol`) and per volume its file, intensity window (``lo``,
  ``hi``), the RAS axis the slices were taken along (``plane_axis_ras``) and the index along it of
  slice 0 (``slice_start``).

Per volume (:func:`~.volume_slices.process_volume`): read and reorient to RAS, normalise to [0, 1] with
:func:`~w2amsn_plugin.data.normalization.normalize_intensity`, cut the slices of the plane
(default: the acquisition plane, :mod:`~w2amsn_plugin.data.planes`) upright, crop to the crop size
(:mod:`~w2amsn_plugin.data.ixi`), quantise to ``bits``; each LR image is the degradation of the
*quantised* HR slice (so decoding the HR database and degrading it reproduces the LR database up to
the LR's own rounding), clipped to [0, 1] and quantised. The crop's height and width are cut
down to a multiple of the least common multiple of the scales, so one HR database serves all
scales. The acquisition plane is never padded: a volume whose acquisition plane is smaller than the
crop is refused before anything is written; an anatomical plane asked for by name (e.g. axial of
IXI's sagittal T1, 256 x 150) is zero-padded and the volume's record says so (``padded``).

Robustness: volumes are processed in parallel worker processes; each finished volume is committed
to staging databases in ``OUT/.IXI_<MOD>_staging`` and recorded in its ``done.jsonl``, so a rerun
after Ctrl-C or a crash skips it. Databases are built as ``<name>.lmdb.tmp``, verified (key sets of
GT and every LQ database equal the expected keys, every value decodes to the expected shape) and
only then moved into place; ``IXI_<MOD>_split.json`` is written last.
"""
from __future__ import annotations

import json
import math
import statistics
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from .degradations import DEGRADATIONS
from .ixi import (FOREGROUND_THRESHOLD, IXI_MODALITIES, SLICE_SELECTIONS, IXIDataError, open_volume,
                  plane_geometry, scan_ixi_tree, slice_key)
from .lmdb_io import lmdb_map_size, read_meta_keys, write_meta_info
from ..protocol import database_name, kind_scale, lr_kind, manifest_name
from .normalization import DEFAULT_PERCENTILE
from .planes import DISPLAY, PLANES
from .png16 import BIT_DEPTHS, DEFAULT_COMPRESS_LEVEL
from .protocol import protocol_id, write_stamp
from .split import SPLITS, split_subjects
from .prep_pool import imap, make_pool, progress, run_task, verify_task
from .staging import Staging, file_stamp, write_json_atomic

__all__ = ["FORMAT_VERSION", "PrepConfig", "PrepResult", "make_ixi_lmdb"]

FORMAT_VERSION = 2


@dataclass(frozen=True)
class PrepConfig:
    """Options of :func:`make_ixi_lmdb` (defaults: the paper's set-up, docs/data.md).

    ``crop`` is ``(width, height, depth)``: slices ``width`` x ``height`` pixels of ``plane``
    (one of :data:`~w2amsn_plugin.data.planes.PLANES`), ``depth`` slices per volume chosen by
    ``slices`` (:data:`~w2amsn_plugin.data.ixi.SLICE_SELECTIONS`); ``bits`` of storage (16 or 8).
    ``workers`` processes volumes in parallel (1: in this process).
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
    plane: str = "acquisition"
    slices: str = "head"
    bits: int = 16
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
        raise IXIDataError(f"--crop needs three positive integers W H D, got {list(cfg.crop)}")
    if not 0 < cfg.percentile <= 100:
        raise IXIDataError(f"--percentile must be in (0, 100], got {cfg.percentile}")
    if cfg.plane not in PLANES:
        raise IXIDataError(f"--plane must be one of {PLANES}, got {cfg.plane!r}")
    if cfg.slices not in SLICE_SELECTIONS:
        raise IXIDataError(f"--slices must be one of {SLICE_SELECTIONS}, got {cfg.slices!r}")
    if cfg.bits not in BIT_DEPTHS:
        raise IXIDataError(f"--bits must be one of {BIT_DEPTHS}, got {cfg.bits!r}")
    if cfg.workers < 1:
        raise IXIDataError(f"--workers must be >= 1, got {cfg.workers}")
    if not 0 <= cfg.compress_level <= 9:
        raise IXIDataError(f"--compress-level must be 0..9, got {cfg.compress_level}")
    if min(cfg.n_train, cfg.n_test, cfg.n_val) < 0 or cfg.n_train + cfg.n_test + cfg.n_val == 0:
        raise IXIDataError("--n-train/--n-test/--n-val must be >= 0 and not all 0")


def _effective_crop(cfg: PrepConfig, log: Callable[[str], None]) -> tuple[int, int, int]:
    """The crop ``(width, height, depth)`` with width and height cut down to a multiple of
    lcm(scales) (one HR set for all scales)."""
    multiple = math.lcm(*cfg.scales)
    w, h, d = (int(c) for c in cfg.crop)
    ew, eh = w - w % multiple, h - h % multiple
    if ew == 0 or eh == 0:
        raise IXIDataError(f"--crop {w} {h} {d} is smaller than lcm(scales) = {multiple}")
    if (ew, eh) != (w, h):
        log(f"note: crop {w}x{h} (width x height) cut to {ew}x{eh}, a multiple of lcm(scales) = "
            f"{multiple}")
    return ew, eh, d


def _kinds(cfg: PrepConfig) -> list[str]:
    return ["HR"] + [lr_kind(d, s) for d in cfg.degradations for s in cfg.scales]


def _kind_shape(kind: str, crop: tuple[int, int, int]) -> tuple[int, int]:
    """(height, width) of a database's slices for the crop (width, height, depth)."""
    scale = kind_scale(kind)
    return crop[1] // scale, crop[0] // scale


def _precheck_headers(paths: Iterable[Path], cfg: PrepConfig, crop: tuple[int, int, int],
                      log: Callable[[str], None]) -> None:
    """Read every header once (fast) so a bad file is reported before any work is done: not 3-D,
    no orientation, or (``acquisition``) a plane smaller than the crop."""
    padded = []
    height, width = crop[1], crop[0]
    for path in paths:
        img, shape = open_volume(path)
        geo = plane_geometry(path, img, shape, cfg.plane)
        if geo.shape[0] >= height and geo.shape[1] >= width:
            continue
        if cfg.plane == "acquisition":
            raise IXIDataError(f"{path}: its acquisition plane ({geo.name}) is {geo.shape[0]}x"
                               f"{geo.shape[1]} (height x width), smaller than the crop "
                               f"{height}x{width}; pass a smaller --crop or name an anatomical "
                               "--plane (zero-padded)")
        padded.append(path)
    if padded:
        log(f"note: the {cfg.plane} plane of {len(padded)} volume(s) (e.g. {padded[0].name}) is "
            f"smaller than the crop {height}x{width} (height x width): zero-padded")


def _fingerprint(manifest: dict) -> dict:
    return {k: manifest.get(k) for k in ("format_version", "modality", "options", "splits")} | {
        "protocol_id": (manifest.get("protocol") or {}).get("id")}


def _protocol(cfg: PrepConfig, crop: tuple[int, int, int], existing: dict | None) -> dict:
    """The manifest's ``"protocol"`` record (``in_plane_voxel_mm`` is filled in at the end); its
    ``crop`` is (height, width, depth); degradations and scales are the union with an earlier run's
    on the same databases."""
    old = (existing or {}).get("protocol") or {}
    crop = (crop[1], crop[0], crop[2])
    fields = {"format_version": FORMAT_VERSION, "modality": cfg.modality, "plane": cfg.plane,
              "percentile": cfg.percentile, "bits": cfg.bits, "slice_selection": cfg.slices,
              "crop": list(crop)}
    return {"plane": cfg.plane, "in_plane_voxel_mm": None, "percentile": cfg.percentile,
            "bits": cfg.bits, "slice_selection": cfg.slices, "crop": list(crop),
            "degradation": sorted(set(old.get("degradation", [])) | set(cfg.degradations)),
            "scales": sorted(set(old.get("scales", [])) | set(cfg.scales)),
            "id": protocol_id(fields)}


def _preprocessing_text(cfg: PrepConfig, crop: tuple[int, int, int]) -> dict[str, str]:
    """The manifest's human-readable ``"preprocessing"`` record."""
    display = {axis: f"rows along RAS axis {r} ({'+ at the top' if rf else '- at the top'}), "
                     f"columns along RAS axis {c} ({'+ on the left' if cf else '- on the left'})"
               for axis, (r, rf, c, cf) in DISPLAY.items()}
    return {
        "orientation": "nibabel as_closest_canonical (RAS, no resampling); slices of the "
                       f"{cfg.plane} plane (w2amsn_plugin.data.planes; per volume plane_axis_ras), "
                       f"upright: normal 0 (sagittal): {display[0]}; normal 1 (coronal): "
                       f"{display[1]}; normal 2 (axial): {display[2]}",
        "crop": f"height and width: centre crop to {crop[1]}x{crop[0]} (cut to a multiple of "
                "lcm(scales)); a plane smaller than the crop is refused for the acquisition plane, "
                "zero-padded for a named anatomical plane; slices: "
                + (f"{crop[2]} consecutive slices centred on the foreground (normalised intensity > "
                   f"{FOREGROUND_THRESHOLD}) bounding box, clamped to the volume"
                   if cfg.slices == "head" else f"the central {crop[2]} slices")
                + ", zero-padded equally when the volume is shorter",
        "normalization": f"per volume: clip to [min, {cfg.percentile}th percentile] and scale "
                         "to [0, 1] (w2amsn_plugin.data.normalization); lo/hi per volume below",
        "storage": f"{cfg.bits}-bit grayscale PNG, value = round(x * {2**cfg.bits - 1})",
        "lr": f"degradation of the {cfg.bits}-bit HR slice: bicubic = MATLAB imresize (antialiased, "
              "BasicSR imresize weights); truncation = central k-space crop, magnitude",
    }


# ------------------------------------------------------------------------------------- workers
# ---------------------------------------------------------------------------------------- main
def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def make_ixi_lmdb(cfg: PrepConfig, log: Callable[[str], None] = _stderr) -> PrepResult:
    """:func:`_make_ixi_lmdb` holding the lock of ``cfg.out`` (one run per folder, :mod:`.lock`)."""
    from .lock import folder_lock

    with folder_lock(cfg.out, "w2amsn prepare-ixi", log):
        return _make_ixi_lmdb(cfg, log)


def _make_ixi_lmdb(cfg: PrepConfig, log: Callable[[str], None] = _stderr) -> PrepResult:
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
               "percentile": cfg.percentile, "plane": cfg.plane, "slices": cfg.slices,
               "bits": cfg.bits, "compress_level": cfg.compress_level}
    manifest_path = out / manifest_name(mod)
    staging_root = out / f".IXI_{mod}_staging"
    if cfg.overwrite:
        _remove_modality_outputs(out, mod, log)
    existing = json.loads(manifest_path.read_text()) if manifest_path.is_file() else None
    protocol = _protocol(cfg, crop, existing)
    manifest = {
        "format_version": FORMAT_VERSION, "dataset": "IXI", "modality": mod, "options": options,
        "protocol": protocol, "splits": splits,
        "preprocessing": _preprocessing_text(cfg, crop),
    }
    kinds = _kinds(cfg)
    targets_all = {database_name(mod, split, kind): (split, kind)
                   for split in SPLITS if splits[split] for kind in kinds}
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
    _precheck_headers((files[s] for _, s in subjects), cfg, crop, log)
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
              cfg.compress_level, cfg.plane, cfg.slices, cfg.bits)
             for split, s in subjects if s not in staging.done]
    n_done_before = len(subjects) - len(tasks)
    counts = ", ".join(f"{sp} {len(splits[sp])}" for sp in needed_splits)
    log(f"IXI {mod}: {len(subjects)} volumes ({counts}), {n_done_before} already done, "
        f"{len(missing)} databases to build in {out}")
    pool = make_pool(cfg.workers, len(tasks))
    processed = 0
    try:
        with progress(len(subjects), n_done_before, f"IXI {mod}", cfg.progress) as bar:
            for split, subject, result in imap(pool, run_task, tasks):
                path = files[subject]
                size, mtime_ns = file_stamp(path)
                record = {"subject": subject, "split": split,
                          "file": os.path.relpath(path, cfg.ixi_root), "size": size,
                          "mtime_ns": mtime_ns, "plane_axis_ras": result.plane_axis_ras,
                          "slice_start": result.slice_start, "lo": result.lo, "hi": result.hi,
                          "source_axcodes": result.source_axcodes,
                          "ras_shape": list(result.ras_shape),
                          "in_plane_voxel_mm": list(result.pixel_mm), "padded": result.padded}
                staging.commit(split, subject, result.values, record, mod)
                processed += 1
                bar.update(1)
        staging.close()
        _finalize(staging, missing, targets_all, splits, crop, cfg, protocol["id"], pool, out, log)
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
    protocol["in_plane_voxel_mm"] = [
        round(statistics.median(v["in_plane_voxel_mm"][i] for v in volumes.values()), 6)
        for i in (0, 1)]
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


def _finalize(staging: Staging, missing: dict[str, tuple[str, str]],
              targets_all: dict[str, tuple[str, str]], splits: dict[str, list[str]],
              crop: tuple[int, int, int], cfg: PrepConfig, pid: str, pool, out: Path,
              log: Callable[[str], None]) -> None:
    """Verify the staged databases (and existing ones of the same splits), then publish them."""
    mod, depth = cfg.modality, crop[2]
    tasks = [(name, str(staging.tmp_path(name)), _kind_shape(kind, crop))
             for name, (_, kind) in missing.items()]
    keys_of: dict[str, list[str]] = {}
    with progress(len(tasks), 0, "verify", cfg.progress, unit="db") as bar:
        for name, keys, problems in imap(pool, verify_task, tasks):
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
    for name, (split, kind) in missing.items():
        write_meta_info(staging.tmp_path(name), keys_of[name], _kind_shape(kind, crop),
                        cfg.compress_level)
        write_stamp(staging.tmp_path(name), pid, mod, split, kind)
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
