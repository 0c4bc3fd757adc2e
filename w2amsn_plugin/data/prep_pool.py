"""The worker processes of ``make_ixi_lmdb`` (:mod:`.prepare`): a spawned pool (no fork of a
process that may hold torch threads) whose workers ignore Ctrl-C (the main process handles it
once), run one volume each (:func:`run_task`) or verify one database (:func:`verify_task`)."""
from __future__ import annotations

import multiprocessing
from typing import Iterator

from . import volume_slices
from .lmdb_io import verify_lmdb
from ..protocol import parse_lr_kind
from .volume_slices import VolumeResult

__all__ = ["init_worker", "run_task", "verify_task", "imap", "progress", "make_pool"]


def init_worker() -> None:
    import signal

    import cv2
    import torch

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is handled once, by the main process
    cv2.setNumThreads(1)
    torch.set_num_threads(1)


def run_task(task: tuple) -> tuple[str, str, VolumeResult]:
    split, subject, path, crop, percentile, kinds, compress_level, plane, slices, bits = task
    lr_specs = [parse_lr_kind(k) for k in kinds if k != "HR"]
    result = volume_slices.process_volume(path, crop, percentile, lr_specs, encode_hr="HR" in kinds,
                            compress_level=compress_level, plane=plane, slices=slices, bits=bits)
    return split, subject, result


def verify_task(task: tuple) -> tuple[str, list[str], list[str]]:
    name, path, shape = task
    keys, problems = verify_lmdb(path, shape)
    return name, keys, problems


def imap(pool, func, tasks: list) -> Iterator:
    if pool is None:
        return map(func, tasks)
    return pool.imap_unordered(func, tasks)


def progress(total: int, initial: int, desc: str, enabled: bool, unit: str = "vol"):
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit=unit, disable=not enabled,
                dynamic_ncols=True, smoothing=0.1)


def make_pool(workers: int, n_tasks: int):
    if workers <= 1 or n_tasks <= 1:
        return None
    ctx = multiprocessing.get_context("spawn")  # no fork of a process that may hold torch threads
    return ctx.Pool(min(workers, n_tasks), initializer=init_worker)


