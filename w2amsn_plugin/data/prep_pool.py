"""The worker processes of ``w2amsn prepare`` (:mod:`.prepare`) and of any other per-volume job:
a small pool of spawned processes (no fork of a process that may hold torch threads) that run one
task at a time each, so the main process always knows which task a worker holds.

- Ctrl-C is handled once, by the main process: the workers are started with SIGINT ignored, so
  they ignore it from their first instruction (Python keeps an inherited ignore), before any
  import, and never print a traceback of their own.
- A worker that dies (``kill -9``, the OOM killer) ends :meth:`WorkerPool.imap_unordered` with
  :class:`WorkerDied` naming its task, instead of waiting for it for ever.
- An exception raised by the task function is raised again in the main process.

:func:`make_pool` gives ``None`` for one worker or one task: :func:`imap` then runs the tasks in
the calling process. :func:`run_task` and :func:`verify_task` are the tasks of ``prepare``.
"""
from __future__ import annotations

import multiprocessing
import signal
from dataclasses import dataclass
from multiprocessing.connection import wait
from typing import Any, Callable, Iterable, Iterator

__all__ = ["SliceSettings", "VolumeTask", "VolumeOutcome", "WorkerDied", "WorkerPool",
           "make_pool", "imap", "run_task", "verify_task", "progress"]


@dataclass(frozen=True)
class SliceSettings:
    """How every volume of a run is cut into slices (:func:`~.volume_slices.process_volume`)."""

    crop: tuple[int, int, int]
    percentile: float
    plane: str
    slices: str
    bits: int
    compress_level: int


@dataclass(frozen=True)
class VolumeTask:
    """One volume to slice: its split, id and file, the database kinds to encode (``HR``,
    ``LR_<degradation>_X<s>``), the settings, and ``skip_errors``: return a bad volume's error
    instead of raising it."""

    split: str
    volume: str
    path: str
    kinds: tuple[str, ...]
    settings: SliceSettings
    skip_errors: bool = False

    def __str__(self) -> str:
        return self.path


@dataclass
class VolumeOutcome:
    """What :func:`run_task` gives back: the task and its result, or the one-line error of a
    volume that could not be read (``skip_errors``)."""

    task: VolumeTask
    result: Any = None
    error: str | None = None


class WorkerDied(RuntimeError):
    """A worker process ended while holding ``task``; one line naming it and the signal."""

    def __init__(self, task: Any, exitcode: int | None):
        self.task = task
        how = (f"killed by signal {-exitcode}" + (" (SIGKILL: e.g. the out-of-memory killer)"
                                                   if exitcode == -signal.SIGKILL else "")
               if exitcode is not None and exitcode < 0 else f"exit status {exitcode}")
        super().__init__(f"{task}: the worker process working on it died ({how})")


def _worker_loop(conn, initializer: Callable[[], None] | None) -> None:
    """A worker: run ``(func, task)`` messages until ``None``; send ``(ok, value)`` back."""
    if initializer is not None:
        initializer()
    while True:
        message = conn.recv()
        if message is None:
            return
        func, task = message
        try:
            conn.send((True, func(task)))
        except BaseException as err:  # sent back and raised again in the main process
            conn.send((False, err))


def init_worker() -> None:
    """One thread per worker for OpenCV and torch (the workers are the parallelism)."""
    import cv2
    import torch

    cv2.setNumThreads(1)
    torch.set_num_threads(1)


class WorkerPool:
    """``workers`` spawned processes (module docstring); use as a context manager or
    :meth:`close` it."""

    def __init__(self, workers: int, initializer: Callable[[], None] | None = init_worker):
        ctx = multiprocessing.get_context("spawn")
        self._procs, self._conns = [], []
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # inherited: ignored from the start
        try:
            for _ in range(workers):
                parent, child = ctx.Pipe()
                proc = ctx.Process(target=_worker_loop, args=(child, initializer), daemon=True)
                proc.start()
                child.close()
                self._procs.append(proc)
                self._conns.append(parent)
        finally:
            signal.signal(signal.SIGINT, previous)

    def imap_unordered(self, func: Callable[[Any], Any], tasks: Iterable[Any]) -> Iterator[Any]:
        """``func(task)`` for every task, in the order they finish. Raises :class:`WorkerDied`
        when a worker dies holding a task, or the task's own exception."""
        pending = list(tasks)[::-1]
        busy: dict[int, Any] = {}  # worker index -> task

        def give(i: int) -> None:
            busy[i] = pending.pop()
            try:
                self._conns[i].send((func, busy[i]))
            except OSError:  # it died before it could take the task
                self._procs[i].join()
                raise WorkerDied(busy[i], self._procs[i].exitcode) from None

        for i in range(len(self._procs)):
            if pending:
                give(i)
        while busy:
            ready = wait([self._conns[i] for i in busy] + [self._procs[i].sentinel for i in busy])
            for i in list(busy):
                conn, proc = self._conns[i], self._procs[i]
                if conn in ready or (proc.sentinel in ready and conn.poll()):
                    try:
                        ok, value = conn.recv()
                    except (EOFError, OSError):
                        raise WorkerDied(busy[i], proc.exitcode) from None
                    if not ok:
                        raise value
                    if pending:
                        give(i)
                    else:
                        del busy[i]
                    yield value
                elif proc.sentinel in ready:
                    proc.join()
                    raise WorkerDied(busy[i], proc.exitcode)

    def close(self) -> None:
        """Stop every worker now (a task still running is abandoned)."""
        for proc in self._procs:
            if proc.is_alive():
                proc.terminate()
        for proc in self._procs:
            proc.join(5)
            if proc.is_alive():
                proc.kill()
                proc.join()
        for conn in self._conns:
            conn.close()

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def make_pool(workers: int, n_tasks: int,
              initializer: Callable[[], None] | None = init_worker) -> WorkerPool | None:
    """A :class:`WorkerPool` of ``min(workers, n_tasks)`` processes, or None when that is 1."""
    if workers <= 1 or n_tasks <= 1:
        return None
    return WorkerPool(min(workers, n_tasks), initializer)


def imap(pool: WorkerPool | None, func: Callable[[Any], Any], tasks: Iterable[Any]) -> Iterator:
    """``func`` over ``tasks`` in ``pool`` (any order), or here, in order, when it is None."""
    if pool is None:
        return map(func, tasks)
    return pool.imap_unordered(func, tasks)


def run_task(task: VolumeTask) -> VolumeOutcome:
    """Slice one volume (:func:`~.volume_slices.process_volume`)."""
    from ..protocol import parse_lr_kind
    from . import volume_slices
    from .ixi import IXIDataError

    s = task.settings
    try:
        result = volume_slices.process_volume(
            task.path, s.crop, s.percentile, [parse_lr_kind(k) for k in task.kinds if k != "HR"],
            encode_hr="HR" in task.kinds, compress_level=s.compress_level, plane=s.plane,
            slices=s.slices, bits=s.bits)
    except IXIDataError as err:
        if not task.skip_errors:
            raise
        return VolumeOutcome(task, error=str(err))
    return VolumeOutcome(task, result=result)


def verify_task(task: tuple[str, str, tuple[int, int]]) -> tuple[str, list[str], list[str]]:
    """Verify one database: ``(name, path, (h, w))`` -> ``(name, keys, problems)``."""
    from .lmdb_io import verify_lmdb

    name, path, shape = task
    keys, problems = verify_lmdb(path, shape)
    return name, keys, problems


def progress(total: int, initial: int, desc: str, enabled: bool, unit: str = "vol"):
    """A tqdm bar (disabled when not ``enabled``)."""
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit=unit, disable=not enabled,
                dynamic_ncols=True, smoothing=0.1)
