"""Data rows of ``w2amsn bench``: IXI preparation throughput (``make_ixi_lmdb`` on a fake IXI
tree of real-sized volumes) and the training data path (``IXIPairedDataset`` over the LMDB it
wrote, through BasicSR's ``build_dataloader``); and the on-device data
path (``on_device``: the whole set in a :class:`~w2amsn_plugin.data.slice_bank.SliceBank` on the
bench's device, batches cut there).

The fake tree (:func:`w2amsn_plugin.data.fake_ixi.make_fake_ixi_tree`) is built before timing;
preparation is timed end to end (read, normalise, crop, degrade to x2/x3/x4, encode, commit,
verify). The data path is timed after its first batch (worker start-up excluded), as a training
run sees it.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..protocol import PAPER
from .results import Row, guarded

__all__ = ["BANK_PATH", "DataSettings", "make_tree", "prep_rows", "data_path_rows", "bank_rows"]

BANK_PATH = "SliceBank (on_device)"


@dataclass(frozen=True)
class DataSettings:
    """Fake IXI volumes, preparation options and data-loader settings of the data rows."""

    n_volumes: int = 4
    volume_shape: Any = "ixi"  # make_fake_ixi_tree's ``shape``: "ixi" = 150x256x256 T1
    crop: tuple[int, int, int] = PAPER.crop
    scales: tuple[int, ...] = PAPER.scales
    prep_workers: tuple[int, ...] = (1, 2)
    loader_workers: tuple[int, ...] = (0, 1)
    batch: int = 16
    lr_patch: int = 32
    scale: int = 2
    n_batches: int = 30


def make_tree(root: Path, s: DataSettings) -> Path:
    """Write ``s.n_volumes`` fake IXI T1 volumes under ``root``; return the tree's folder."""
    from ..data.fake_ixi import make_fake_ixi_tree

    make_fake_ixi_tree(root, s.n_volumes, modalities=("T1",), shape=s.volume_shape)
    return root


def _shape_label(s: DataSettings) -> str:
    from ..data.fake_ixi import IXI_RAS_SHAPES

    shape = IXI_RAS_SHAPES["T1"] if s.volume_shape == "ixi" else s.volume_shape
    return f"{s.n_volumes} T1 volumes {'x'.join(map(str, shape))}"


def _prep_one(tree: Path, out: Path, workers: int, s: DataSettings) -> Row:
    from ..data.prepare import PrepConfig, make_ixi_lmdb

    cfg = PrepConfig(ixi_root=tree, modality="T1", out=out, scales=s.scales, n_train=s.n_volumes,
                     n_test=0, n_val=0, crop=s.crop, workers=workers, progress=False)
    result = make_ixi_lmdb(cfg, log=lambda _msg: None)
    per_volume = result.seconds / result.volumes_processed
    return Row("data prep", f"make_ixi_lmdb, {workers} worker{'s' * (workers > 1)}",
               path="make_ixi_lmdb", input=_shape_label(s), seconds=per_volume,
               throughput=60 / per_volume, unit="volumes/min",
               note=f"crop {'x'.join(map(str, s.crop))}, HR + bicubic x"
                    f"{'/x'.join(map(str, s.scales))}, verified; whole IXI T1 (581 volumes) "
                    f"in {581 * per_volume / 60:.0f} min",
               extra={"workers": workers, "seconds": result.seconds,
                      "volumes": result.volumes_processed})


def prep_rows(tree: Path, out_root: Path, s: DataSettings) -> tuple[list[Row], Path | None]:
    """One row per worker count; returns the rows and an output folder with the databases."""
    rows: list[Row] = []
    written = None
    for workers in s.prep_workers:
        out = out_root / f"lmdb_{workers}w"
        new = guarded("data prep", f"make_ixi_lmdb, {workers} workers",
                      lambda: _prep_one(tree, out, workers, s), path="make_ixi_lmdb")
        rows += new
        if new[0].ok:
            written = out
    return rows, written


def _loader(lmdb_dir: Path, workers: int, s: DataSettings):
    from basicsr.data import build_dataloader

    from ..data.ixi_paired_dataset import IXIPairedDataset
    from ..protocol import database_path

    opt = {"name": "bench", "type": "IXIPairedDataset", "phase": "train", "scale": s.scale,
           "dataroot_gt": database_path(str(lmdb_dir), "T1", "train"),
           "dataroot_lq": database_path(str(lmdb_dir), "T1", "train", s.scale),
           "io_backend": {"type": "lmdb"}, "gt_size": s.lr_patch * s.scale, "use_hflip": True,
           "use_rot": True, "num_worker_per_gpu": workers, "batch_size_per_gpu": s.batch,
           "dataset_enlarge_ratio": 1}
    dataset = IXIPairedDataset(opt)
    return build_dataloader(dataset, opt, num_gpu=0, dist=False, sampler=None, seed=0), len(dataset)


def _data_one(lmdb_dir: Path, workers: int, s: DataSettings) -> Row:
    loader, n_items = _loader(lmdb_dir, workers, s)
    n_batches = min(s.n_batches, n_items // s.batch - 1)  # one epoch: no worker restart
    if n_batches < 1:
        raise ValueError(f"{n_items} samples make fewer than 2 batches of {s.batch}")
    iterator = iter(loader)
    start = time.perf_counter()
    next(iterator)  # worker start-up and the first LMDB open
    first = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(n_batches):
        next(iterator)
    seconds = time.perf_counter() - start
    del iterator
    per_sample = seconds / (n_batches * s.batch)
    return Row("data path", f"IXIPairedDataset LMDB, {workers} worker{'s' * (workers != 1)}",
               path="IXIPairedDataset", input=f"batch {s.batch}, LR patch {s.lr_patch}, x{s.scale}",
               seconds=per_sample, throughput=1 / per_sample, unit="samples/s",
               note=f"{n_batches} batches after the first ({first:.1f} s incl. start-up)",
               extra={"workers": workers, "first_batch_seconds": first, "batches": n_batches})


def data_path_rows(lmdb_dir: Path | None, s: DataSettings) -> list[Row]:
    """One row per data-loader worker count over the databases in ``lmdb_dir``."""
    rows: list[Row] = []
    # most workers first: a dataloader worker forked after this process opened the LMDB fails
    # with "already open in this process" (lmdb_io.readonly_env keeps the inherited env)
    for workers in sorted(s.loader_workers, reverse=True):
        label = f"IXIPairedDataset LMDB, {workers} worker{'s' * (workers != 1)}"
        if lmdb_dir is None:
            rows.append(Row("data path", label, path="IXIPairedDataset",
                            unavailable="no databases: make_ixi_lmdb failed above"))
            continue
        rows += guarded("data path", label, lambda: _data_one(lmdb_dir, workers, s),
                        path="IXIPairedDataset")
    return rows


def _bank_one(lmdb_dir: Path, s: DataSettings, device: str) -> Row:
    import torch

    from ..data.ixi_paired_dataset import IXIPairedDataset
    from ..protocol import database_path
    from ..data.slice_bank import get_bank
    from .timing import synchronize

    opt = {"name": "bench", "type": "IXIPairedDataset", "phase": "train", "scale": s.scale,
           "dataroot_gt": database_path(str(lmdb_dir), "T1", "train"),
           "dataroot_lq": database_path(str(lmdb_dir), "T1", "train", s.scale),
           "io_backend": {"type": "lmdb"}, "gt_size": s.lr_patch * s.scale, "use_hflip": True,
           "use_rot": True, "on_device": True}
    start = time.perf_counter()
    dataset = IXIPairedDataset(opt)
    build = time.perf_counter() - start
    bank = get_bank(dataset.bank_id)
    g = torch.Generator(device=bank.device).manual_seed(0)
    index = torch.randint(0, len(bank), (s.n_batches, s.batch), generator=g, device=bank.device)
    bank.sample(index[0], device=device, generator=g)  # warm-up
    synchronize(device)
    start = time.perf_counter()
    for b in range(s.n_batches):
        bank.sample(index[b], device=device, generator=g)
    synchronize(device)
    per_sample = (time.perf_counter() - start) / (s.n_batches * s.batch)
    return Row("data path", f"{BANK_PATH} on {bank.device}", path=BANK_PATH,
               input=f"batch {s.batch}, LR patch {s.lr_patch}, x{s.scale}", seconds=per_sample,
               throughput=1 / per_sample, unit="samples/s",
               note=f"{len(bank)} slices decoded into the bank in {build:.1f} s; {s.n_batches} batches",
               extra={"workers": 0, "bank_device": str(bank.device), "build_seconds": build})


def bank_rows(lmdb_dir: Path | None, s: DataSettings, device: str) -> list[Row]:
    """The on-device data path over the databases in ``lmdb_dir``, batches delivered on ``device``."""
    if lmdb_dir is None:
        return [Row("data path", BANK_PATH, path=BANK_PATH,
                    unavailable="no databases: make_ixi_lmdb failed above")]
    return guarded("data path", BANK_PATH, lambda: _bank_one(lmdb_dir, s, device), path=BANK_PATH)
