"""Build slice databases from a folder of 3-D MR volumes (paper section IV-A; docs/data.md):
``w2amsn prepare`` for any NIfTI/MGH folder or BIDS dataset (:func:`prepare_dataset`), and
``w2amsn prepare-ixi``, its IXI preset (:func:`make_ixi_lmdb`, :class:`PrepConfig`).

For one dataset and modality it writes, BasicSR-style, into ``OUT`` (names:
:mod:`w2amsn_plugin.protocol`):

- ``<dataset>_<MOD>_<split>_HR.lmdb`` and ``<dataset>_<MOD>_<split>_LR_<degradation>_X<s>.lmdb`` for
  split in train/val/test (IXI: ``IXI_T1_train_HR.lmdb``), keys ``<volume>_<MOD>_s<slice:03d>``,
  values grayscale PNG (16 bit, or 8), with ``meta_info.txt`` and the protocol stamp;
- ``<dataset>_<MOD>_split.json``, the manifest: the subjects of each split, the options, the
  ``"protocol"`` record (plane, in-plane voxel size, percentile, bits, slice selection, crop,
  degradations, scales, id; :mod:`.protocol`), the rule for volumes smaller than the crop, and per
  volume its file, intensity window (``lo``, ``hi``), the RAS axis the slices were taken along
  (``plane_axis_ras``) and the index along it of slice 0 (``slice_start``); for a dataset other
  than IXI also each volume's ``subject``, the ``source`` and the ``skipped`` volumes with why.

Per volume (:func:`~.volume_slices.process_volume`): read and reorient to RAS, normalise to [0, 1]
with :func:`~w2amsn_plugin.data.normalization.normalize_intensity`, cut the slices of the plane
(default: the acquisition plane, :mod:`~w2amsn_plugin.data.planes`) upright, crop, quantise to
``bits``; each LR image is the degradation of the *quantised* HR slice, clipped to [0, 1] and
quantised. The crop's height and width are cut down to a multiple of the least common multiple of
the scales, so one HR database serves all scales. Volumes whose plane is smaller than the crop
follow ``small_volumes`` (:data:`~.prep_manifest.SMALL_VOLUME_RULES`: ``pad`` by default,
``skip``; IXI's ``refuse``).

Every header is read first. An unreadable volume is reported by name and skipped (fatal with
``strict``, as for IXI), and the run ends with their count; the split is drawn from the readable
subjects (:mod:`.split`: one subject never in two splits).

Robustness: volumes are processed in worker processes (:mod:`.prep_pool`); each finished volume is
committed to staging databases in ``OUT/.<dataset>_<MOD>_staging`` and recorded in its
``done.jsonl``, so a rerun after Ctrl-C, a crash, a killed worker or a full disk skips it. Each
database is then written afresh in key order (:func:`~.lmdb_io.write_sorted_copy`: zeroed pages,
the same bytes for the same data), verified (key sets of GT and every LQ database equal the
expected keys, every value decodes to the expected shape) and only then moved into place; the
manifest is written last.
"""
from __future__ import annotations

import contextlib
import math
import os
import shutil
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

from ..protocol import (ACQUISITION, IXI_DATASET, LABEL_RE, PAPER, SPLITS, ManifestError, Split,
                        database_name, kind_scale, lr_kind, manifest_name, read_manifest, slice_key,
                        staging_name)
from .degradations import DEGRADATIONS
from .ixi import IXI_MODALITIES, SLICE_SELECTIONS, IXIDataError, open_volume, plane_geometry
from .lmdb_io import lmdb_map_size, read_meta_keys, write_meta_info, write_sorted_copy
from .planes import PLANES
from .png16 import BIT_DEPTHS, DEFAULT_COMPRESS_LEVEL
from .prep_manifest import (FORMAT_VERSION, SMALL_VOLUME_RULES, fingerprint, preprocessing_text,
                            protocol_record)
from .prep_pool import (SliceSettings, VolumeTask, WorkerDied, imap, make_pool, progress,
                        run_task, verify_task)
from .protocol import write_stamp
from .sources import LAYOUTS, Source, Volume, safe_label, scan_source
from .split import split_subjects
from .staging import Staging, file_stamp, write_json_atomic

__all__ = ["FORMAT_VERSION", "PrepareConfig", "PrepConfig", "PrepResult", "prepare_dataset",
           "make_ixi_lmdb", "default_split", "memory_problem"]


@dataclass(frozen=True)
class PrepareConfig:
    """Options of :func:`prepare_dataset` (defaults: the paper's set-up, :data:`~w2amsn_plugin.
    protocol.PAPER`).

    ``root`` is read with ``layout`` (:data:`~.sources.LAYOUTS`); ``modality`` is the IXI
    modality, the BIDS suffix (``T1w``), or the label of a plain folder's volumes; ``dataset`` the
    first part of the database names (default: ``IXI``, or the root folder's name). ``split``
    None: :func:`default_split` with ``seed``. ``crop`` is ``(width, height, depth)``. ``workers`` processes
    volumes in parallel (1: in this process). ``strict``: an unreadable volume is fatal.
    """

    root: Path
    out: Path
    modality: str = "T1w"
    layout: str = "auto"
    dataset: str | None = None
    subject_regex: str | None = None
    scales: tuple[int, ...] = PAPER.scales
    degradations: tuple[str, ...] = PAPER.degradations
    split: Split | None = None
    seed: int = PAPER.split.seed
    crop: tuple[int, int, int] = PAPER.crop
    percentile: float = PAPER.percentile
    plane: str = PAPER.plane
    slices: str = PAPER.slice_selection
    bits: int = PAPER.bits
    small_volumes: str = "pad"
    strict: bool = False
    workers: int = 2
    compress_level: int = DEFAULT_COMPRESS_LEVEL
    overwrite: bool = False
    progress: bool = True


@dataclass(frozen=True)
class PrepConfig:
    """Options of :func:`make_ixi_lmdb`, the IXI preset (defaults: the paper's set-up): IXI's
    file names under ``ixi_root``, one of IXI's modalities, the paper's 500/70/6 split, strict
    reading, and IXI's rule for planes smaller than the crop (``refuse``)."""

    ixi_root: Path
    modality: str
    out: Path
    scales: tuple[int, ...] = PAPER.scales
    degradations: tuple[str, ...] = PAPER.degradations
    n_train: int = PAPER.split.n_train
    n_test: int = PAPER.split.n_test
    n_val: int = PAPER.split.n_val
    seed: int = PAPER.split.seed
    crop: tuple[int, int, int] = PAPER.crop
    percentile: float = PAPER.percentile
    plane: str = PAPER.plane
    slices: str = PAPER.slice_selection
    bits: int = PAPER.bits
    workers: int = 2
    compress_level: int = DEFAULT_COMPRESS_LEVEL
    overwrite: bool = False
    progress: bool = True

    def general(self) -> PrepareConfig:
        """The same run as a :class:`PrepareConfig`."""
        return PrepareConfig(
            root=self.ixi_root, out=self.out, modality=self.modality, layout="ixi",
            dataset=IXI_DATASET, scales=self.scales, degradations=self.degradations,
            split=Split(self.n_train, self.n_test, self.n_val, self.seed), crop=self.crop,
            percentile=self.percentile, plane=self.plane, slices=self.slices, bits=self.bits,
            small_volumes="refuse", strict=True, workers=self.workers,
            compress_level=self.compress_level, overwrite=self.overwrite, progress=self.progress)


@dataclass
class PrepResult:
    """What a run did: the manifest path, every database of the modality, the work done and the
    volumes skipped (volume -> reason)."""

    manifest_path: Path
    databases: list[Path]
    volumes_processed: int
    seconds: float
    manifest: dict = field(repr=False, default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)


# ------------------------------------------------------------------------------------ planning
def _check_options(cfg: PrepareConfig) -> None:
    if cfg.layout not in LAYOUTS:
        raise IXIDataError(f"layout must be one of {LAYOUTS}, got {cfg.layout!r}")
    if cfg.layout == "ixi" and cfg.modality not in IXI_MODALITIES:
        raise IXIDataError(f"--modality must be one of {IXI_MODALITIES}, got {cfg.modality!r}")
    if not LABEL_RE.match(cfg.modality):
        raise IXIDataError(f"--suffix {cfg.modality!r}: use letters, digits and '-' only")
    if cfg.dataset is not None and not LABEL_RE.match(cfg.dataset):
        raise IXIDataError(f"--name {cfg.dataset!r}: use letters, digits and '-' only")
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
    if cfg.small_volumes not in SMALL_VOLUME_RULES:
        raise IXIDataError(f"--small-volumes must be one of {SMALL_VOLUME_RULES}, "
                           f"got {cfg.small_volumes!r}")
    if cfg.workers < 1:
        raise IXIDataError(f"--workers must be >= 1, got {cfg.workers}")
    if not 0 <= cfg.compress_level <= 9:
        raise IXIDataError(f"--compress-level must be 0..9, got {cfg.compress_level}")
    sp = cfg.split
    if sp is not None and (min(sp.n_train, sp.n_test, sp.n_val) < 0
                           or sp.n_train + sp.n_test + sp.n_val == 0):
        raise IXIDataError("--split N_TRAIN N_TEST N_VAL must be >= 0 and not all 0")


def default_split(n_subjects: int, seed: int = PAPER.split.seed) -> Split:
    """Every subject, in the paper's proportions (500 : 70 : 6), at least one test and one
    validation subject. Raises :class:`IXIDataError` for fewer than 3 subjects."""
    if n_subjects < 3:
        raise IXIDataError(f"{n_subjects} subject(s) found; a train/test/validation split needs "
                           "at least 3")
    paper = PAPER.split
    total = paper.n_train + paper.n_test + paper.n_val
    n_test = max(1, round(n_subjects * paper.n_test / total))
    n_val = max(1, round(n_subjects * paper.n_val / total))
    return Split(n_subjects - n_test - n_val, n_test, n_val, seed)


def _effective_crop(cfg: PrepareConfig, log: Callable[[str], None]) -> tuple[int, int, int]:
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


def _kinds(cfg: PrepareConfig) -> list[str]:
    return ["HR"] + [lr_kind(d, s) for d in cfg.degradations for s in cfg.scales]


def _kind_shape(kind: str, crop: tuple[int, int, int]) -> tuple[int, int]:
    """(height, width) of a database's slices for the crop (width, height, depth)."""
    scale = kind_scale(kind)
    return crop[1] // scale, crop[0] // scale


def _precheck(volumes: Iterable[Volume], cfg: PrepareConfig, crop: tuple[int, int, int],
              log: Callable[[str], None]) -> dict[str, str]:
    """Read every header once (fast), so a bad file is reported before any work: not readable,
    not 3-D, no orientation, or a plane smaller than the crop (``cfg.small_volumes``). Returns
    the skipped volumes (volume -> one-line reason); raises :class:`IXIDataError` for what the
    options make fatal."""
    padded, skipped = [], {}
    height, width, depth = crop[1], crop[0], crop[2]
    for vol in volumes:
        try:
            img, shape = open_volume(vol.path)
            geo = plane_geometry(vol.path, img, shape, cfg.plane)
        except IXIDataError as err:
            if cfg.strict:
                raise
            skipped[vol.volume] = str(err)
            log(f"warning: {err} (skipped)")
            continue
        small = geo.shape[0] < height or geo.shape[1] < width
        if cfg.small_volumes == "skip" and (small or geo.n_slices < depth):
            skipped[vol.volume] = (f"{vol.path}: its {geo.name} plane is {geo.shape[0]}x"
                                   f"{geo.shape[1]}x{geo.n_slices} (height x width x slices), "
                                   f"smaller than the crop {height}x{width}x{depth}")
            log(f"warning: {skipped[vol.volume]} (skipped: --small-volumes skip)")
        elif small and cfg.small_volumes == "refuse" and cfg.plane == ACQUISITION:
            raise IXIDataError(f"{vol.path}: its acquisition plane ({geo.name}) is {geo.shape[0]}x"
                               f"{geo.shape[1]} (height x width), smaller than the crop "
                               f"{height}x{width}; pass a smaller --crop or name an anatomical "
                               "--plane (zero-padded)")
        elif small:
            padded.append(vol.path)
    if padded:
        log(f"note: the {cfg.plane} plane of {len(padded)} volume(s) (e.g. {padded[0].name}) is "
            f"smaller than the crop {height}x{width} (height x width): zero-padded")
    return skipped


def _options_record(cfg: PrepareConfig, crop: tuple[int, int, int], split: Split,
                    layout: str) -> dict:
    options = {"seed": split.seed, "n_train": split.n_train, "n_test": split.n_test,
               "n_val": split.n_val, "crop": list(crop), "crop_requested": list(cfg.crop),
               "percentile": cfg.percentile, "plane": cfg.plane, "slices": cfg.slices,
               "bits": cfg.bits, "compress_level": cfg.compress_level}
    if layout != "ixi":
        options |= {"layout": layout, "subject_regex": cfg.subject_regex,
                    "small_volumes": cfg.small_volumes}
    return options


#: working memory of one volume in a worker, bytes per voxel of the crop (a float64 copy, float32
#: and 16-bit stages of the HR and LR stacks, measured order of magnitude)
_BYTES_PER_VOXEL = 16


def _available_memory() -> int | None:
    """MemAvailable of /proc/meminfo in bytes (None where there is no such file)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def memory_problem(crop: tuple[int, ...], workers: int) -> str | None:
    """Why ``--crop`` cannot fit this machine's memory, checked before any work, or None."""
    available = _available_memory()
    need = math.prod(int(c) for c in crop) * _BYTES_PER_VOXEL * max(1, workers)
    if available is None or need <= available:
        return None
    return (f"--crop {' '.join(map(str, crop))}: each volume needs about "
            f"{need / max(1, workers) / 2**30:.1f} GiB per worker ({max(1, workers)} workers), "
            f"{available / 2**30:.1f} GiB is available; use a smaller --crop or fewer --workers")


# ---------------------------------------------------------------------------------------- main
def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def make_ixi_lmdb(cfg: PrepConfig, log: Callable[[str], None] = _stderr) -> PrepResult:
    """The IXI preset of :func:`prepare_dataset` (``w2amsn prepare-ixi``)."""
    return prepare_dataset(cfg.general(), log, what="w2amsn prepare-ixi")


def prepare_dataset(cfg: PrepareConfig, log: Callable[[str], None] = _stderr,
                    what: str = "w2amsn prepare") -> PrepResult:
    """Build (or finish building) the databases of ``cfg`` in ``cfg.out``, holding the folder's
    lock (one run per folder, :mod:`.lock`).

    Raises :class:`IXIDataError` (one line naming the file and problem: bad input, a worker
    that died, a full disk) with nothing moved into place and finished volumes kept staged;
    ``KeyboardInterrupt`` likewise keeps them for a rerun.
    """
    from .lock import folder_lock

    with folder_lock(cfg.out, what, log):
        return _prepare(cfg, log)


def _prepare(cfg: PrepareConfig, log: Callable[[str], None]) -> PrepResult:
    start = time.perf_counter()
    _check_options(cfg)
    crop = _effective_crop(cfg, log)
    mod, out = cfg.modality, Path(cfg.out)
    source = scan_source(cfg.root, cfg.layout, mod, cfg.subject_regex)
    for warning in source.warnings:
        log(f"warning: {warning}")
    dataset = cfg.dataset or (IXI_DATASET if source.layout == "ixi"
                              else safe_label(Path(cfg.root).resolve().name))
    label = f"{cfg.root} ({mod})" if source.layout == "ixi" else f"{cfg.root}"
    if not source.volumes:
        raise IXIDataError(f"{label}: no volumes found" + (
            f" (BIDS: sub-*/[ses-*/]anat/*_{mod}.nii[.gz])" if source.layout == "bids" else ""))
    # strict: the split first, then every volume it uses must be usable; otherwise the split is
    # drawn from the usable volumes
    skipped = {} if cfg.strict else _precheck(source.volumes.values(), cfg, crop, log)
    readable = {v: vol for v, vol in source.volumes.items() if v not in skipped}
    subjects = sorted({vol.subject for vol in readable.values()})
    split = cfg.split or default_split(len(subjects), cfg.seed)
    splits = split_subjects(subjects, split.n_train, split.n_test, split.n_val, split.seed,
                            what=label)
    split_of = {s: name for name in SPLITS for s in splits[name]}
    if cfg.strict:
        _precheck([vol for vol in readable.values() if vol.subject in split_of], cfg, crop, log)
    volume_split = {v: split_of[vol.subject] for v, vol in readable.items()
                    if vol.subject in split_of}
    split_volumes = {name: sorted(v for v, sp in volume_split.items() if sp == name)
                     for name in SPLITS}
    files = {v: vol.path for v, vol in readable.items()}
    manifest_path = out / manifest_name(mod, dataset)
    staging_root = out / staging_name(mod, dataset)
    if cfg.overwrite:
        _remove_outputs(out, mod, dataset, log)
    try:
        existing = read_manifest(manifest_path) if manifest_path.is_file() else None
    except ManifestError as err:
        raise IXIDataError(f"{err}; pass --overwrite to rebuild") from None
    options = _options_record(cfg, crop, split, source.layout)
    protocol = protocol_record(cfg, crop, existing)
    manifest = {"format_version": FORMAT_VERSION, "dataset": dataset, "modality": mod,
                "options": options, "protocol": protocol, "splits": splits,
                "preprocessing": preprocessing_text(cfg, crop)}
    if source.layout != "ixi":
        manifest["source"] = {"layout": source.layout, "root": str(cfg.root)}  # as given
    kinds = _kinds(cfg)
    targets_all = {database_name(mod, sp, kind, dataset): (sp, kind)
                   for sp in SPLITS if split_volumes[sp] for kind in kinds}
    if existing is not None and fingerprint(existing) != fingerprint(manifest):
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
                          time.perf_counter() - start, existing or {},
                          dict((existing or {}).get("skipped", {})))
    needed_splits = sorted({sp for sp, _ in missing.values()}, key=SPLITS.index)
    volumes = [(sp, v) for sp in needed_splits for v in split_volumes[sp]]
    out.mkdir(parents=True, exist_ok=True)

    depth = crop[2]
    map_sizes = {name: lmdb_map_size(len(split_volumes[sp]) * depth, *_kind_shape(kind, crop))
                 for name, (sp, kind) in missing.items()}
    staging_config = {"format_version": FORMAT_VERSION, "modality": mod, "options": options,
                      "targets": sorted(missing)}
    with _io_errors(out, "nothing is staged yet"):
        staging = Staging(staging_root, staging_config, missing, volume_split, files, map_sizes,
                          log)
    kinds_of = {sp: tuple(k for _, (s2, k) in missing.items() if s2 == sp) for sp in needed_splits}
    settings = SliceSettings(crop, cfg.percentile, cfg.plane, cfg.slices, cfg.bits,
                             cfg.compress_level)
    tasks = [VolumeTask(sp, v, str(files[v]), kinds_of[sp], settings, skip_errors=not cfg.strict)
             for sp, v in volumes if v not in staging.done]
    n_done_before = len(volumes) - len(tasks)
    counts = ", ".join(f"{sp} {len(split_volumes[sp])}" for sp in needed_splits)
    log(f"{dataset} {mod}: {len(volumes)} volumes ({counts}), {n_done_before} already done, "
        f"{len(missing)} databases to build in {out}")
    pool = None
    processed = 0
    try:
        pool = make_pool(cfg.workers, len(tasks))
        with progress(len(volumes), n_done_before, f"{dataset} {mod}", cfg.progress) as bar:
            for outcome in imap(pool, run_task, tasks):
                record = _volume_record(outcome, cfg, source)
                if outcome.error:
                    log(f"warning: {outcome.error} (skipped)")
                values = None if outcome.error else outcome.result.values
                staging.commit(outcome.task.split, outcome.task.volume, values, record, mod)
                processed += 1
                bar.update(1)
        staging.close()
        _finalize(staging, missing, targets_all, split_volumes, crop, cfg, protocol["id"], pool,
                  out, dataset, log)
    except KeyboardInterrupt:
        log(f"interrupted: {_kept(staging, volumes, staging_root)}; rerun the same command to "
            "resume")
        raise
    except WorkerDied as err:
        raise IXIDataError(f"{err}; {_kept(staging, volumes, staging_root)}; rerun the same "
                           "command to resume (with fewer --workers if memory ran out)") from None
    except IXIDataError as err:
        raise IXIDataError(f"{err} [no database written; {len(staging.done)} finished volumes "
                           f"kept in {staging_root} for a rerun]") from None
    except (OSError, _lmdb_error()) as err:
        raise IXIDataError(f"{out}: cannot write ({_reason(err)}); "
                           f"{_kept(staging, volumes, staging_root)}; free space (or fix the "
                           "folder) and rerun the same command") from None
    finally:
        if staging.writers:
            staging.close()
        if pool is not None:
            pool.close()

    all_skipped = dict(skipped)
    vols = dict(existing.get("volumes", {})) if existing else {}
    for rec in staging.done.values():
        if "skipped" in rec:
            all_skipped[rec["volume"]] = rec["skipped"]
        else:
            vols[rec["volume"]] = {k: v for k, v in rec.items() if k != "volume"}
    manifest["volumes"] = dict(sorted(vols.items()))
    if source.layout != "ixi":
        manifest["skipped"] = dict(sorted(all_skipped.items()))
    protocol["in_plane_voxel_mm"] = [
        round(statistics.median(v["in_plane_voxel_mm"][i] for v in vols.values()), 6)
        for i in (0, 1)]
    databases = dict(existing.get("databases", {})) if existing else {}
    for name, (sp, kind) in targets_all.items():
        h, w = _kind_shape(kind, crop)
        databases[name] = {"split": sp, "kind": kind,
                           "keys": sum(v["split"] == sp for v in vols.values()) * depth,
                           "shape": [h, w, 1]}
    manifest["databases"] = dict(sorted(databases.items()))
    with _io_errors(out, f"the databases are in place, {manifest_path.name} is not"):
        write_json_atomic(manifest_path, manifest)
        shutil.rmtree(staging_root)
    seconds = time.perf_counter() - start
    rate = processed / seconds * 60 if seconds > 0 else 0.0
    log(f"done: {processed} volumes processed in {seconds:.1f} s ({rate:.1f} volumes/min); "
        f"{len(missing)} databases written; manifest {manifest_path}")
    if all_skipped:
        log(f"skipped {len(all_skipped)} volume(s) that could not be used (listed under "
            f"\"skipped\" in {manifest_path.name}): {', '.join(sorted(all_skipped)[:5])}"
            + (", ..." if len(all_skipped) > 5 else ""))
    return PrepResult(manifest_path, [out / n for n in sorted(targets_all)], processed, seconds,
                      manifest, all_skipped)


def _reason(err: BaseException) -> str:
    return getattr(err, "strerror", None) or " ".join(str(err).split()) or type(err).__name__


@contextlib.contextmanager
def _io_errors(out: Path, state: str) -> Iterator[None]:
    """An OSError or LMDB error (a full disk, an I/O error) as one line naming ``out``."""
    try:
        yield
    except (OSError, _lmdb_error()) as err:
        raise IXIDataError(f"{out}: cannot write ({_reason(err)}); {state}; free space (or fix "
                           "the folder) and rerun the same command") from None


def _lmdb_error() -> type[Exception]:
    import lmdb

    return lmdb.Error


def _kept(staging: Staging, volumes: list, staging_root: Path) -> str:
    return f"{len(staging.done)}/{len(volumes)} volumes are staged in {staging_root}"


def _volume_record(outcome, cfg: PrepareConfig, source: Source) -> dict:
    """The ``done.jsonl`` / manifest record of one finished (or skipped) volume."""
    task, result = outcome.task, outcome.result
    path = Path(task.path)
    size, mtime_ns = file_stamp(path)
    record = {"volume": task.volume, "split": task.split,
              "file": os.path.relpath(path, cfg.root), "size": size, "mtime_ns": mtime_ns}
    if source.layout != "ixi":
        record["subject"] = source.volumes[task.volume].subject
    if outcome.error:
        return record | {"skipped": outcome.error}
    return record | {"plane_axis_ras": result.plane_axis_ras, "slice_start": result.slice_start,
                     "lo": result.lo, "hi": result.hi, "source_axcodes": result.source_axcodes,
                     "ras_shape": list(result.ras_shape),
                     "in_plane_voxel_mm": list(result.pixel_mm), "padded": result.padded}


def _finalize(staging: Staging, missing: dict[str, tuple[str, str]],
              targets_all: dict[str, tuple[str, str]], split_volumes: dict[str, list[str]],
              crop: tuple[int, int, int], cfg: PrepareConfig, pid: str, pool, out: Path,
              dataset: str, log: Callable[[str], None]) -> None:
    """Write each staged database afresh in key order, verify it (and the existing ones of the
    same splits), then publish them."""
    mod, depth = cfg.modality, crop[2]
    final = {name: staging.root / (name + ".final") for name in missing}
    for name, (sp, kind) in missing.items():
        if final[name].exists():  # left by a run stopped while publishing
            shutil.rmtree(final[name])
        n_keys = len(split_volumes[sp]) * depth
        write_sorted_copy(staging.tmp_path(name), final[name],
                          lmdb_map_size(n_keys, *_kind_shape(kind, crop)))
    tasks = [(name, str(final[name]), _kind_shape(kind, crop)) for name, (_, kind) in missing.items()]
    keys_of: dict[str, list[str]] = {}
    with progress(len(tasks), 0, "verify", cfg.progress, unit="db") as bar:
        for name, keys, problems in imap(pool, verify_task, tasks):
            if problems:
                raise IXIDataError(f"{final[name]}: verification failed, "
                                   f"{len(problems)} bad values (first: {problems[0]}); "
                                   "rerun with --overwrite")
            keys_of[name] = keys
            bar.update(1)
    for name in targets_all:
        if name not in missing:  # built by an earlier run, e.g. the HR set before a new scale
            keys_of[name] = sorted(read_meta_keys(out / name))
    skipped = {v for v, rec in staging.done.items() if "skipped" in rec}
    for sp in {s for s, _ in missing.values()}:
        used = [v for v in split_volumes[sp] if v not in skipped]
        if not used:
            raise IXIDataError(f"every {sp} volume was skipped; nothing to build the {sp} "
                               "databases from")
        expected = sorted(slice_key(v, mod, k) for v in used for k in range(depth))
        for name, (s2, _) in targets_all.items():
            if s2 == sp and keys_of[name] != expected:
                lacking = sorted(set(expected) - set(keys_of[name]))
                extra = sorted(set(keys_of[name]) - set(expected))
                raise IXIDataError(f"{name}: key set differs from the expected {sp} keys "
                                   f"({len(lacking)} missing, {len(extra)} extra, e.g. "
                                   f"{(lacking + extra)[0]}); rerun with --overwrite")
    for name, (sp, kind) in missing.items():
        write_meta_info(final[name], keys_of[name], _kind_shape(kind, crop), cfg.compress_level)
        write_stamp(final[name], pid, mod, sp, kind, dataset)
    for name in missing:
        os.replace(final[name], out / name)
    log(f"verified: {len(missing)} new databases (every value decodes; GT and LQ keys match)")


def _remove_outputs(out: Path, mod: str, dataset: str, log: Callable[[str], None]) -> None:
    """--overwrite: remove this modality's databases, manifest and staging in ``out``."""
    if not out.is_dir():
        return
    victims = sorted(out.glob(database_name(mod, "*", "*", dataset))) + [
        out / staging_name(mod, dataset)]
    for path in victims:
        if path.is_dir():
            shutil.rmtree(path)
    manifest = out / manifest_name(mod, dataset)
    if manifest.is_file():
        manifest.unlink()
    log(f"--overwrite: removed previous {mod} outputs in {out}")

