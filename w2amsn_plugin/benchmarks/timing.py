"""Wall-clock timing for the benchmarks: warm-up calls, then the best of several timed calls,
with the device synchronised around each call so GPU work is counted where it runs.

The best (minimum) of the timed calls is the figure used everywhere in ``w2amsn bench``: it is
the least disturbed by other processes on a shared machine, and every ratio the bench reports
compares two minima taken the same way. Variants that are compared with each other are timed
round-robin (:func:`time_interleaved`), so a change in the machine's load during the run
affects them alike.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Hashable, Mapping, TypeVar

import torch

__all__ = ["Timing", "synchronize", "time_calls", "time_interleaved"]

K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True)
class Timing:
    """Seconds of each timed call (warm-up excluded); ``best`` is their minimum."""

    seconds: tuple[float, ...]

    @property
    def best(self) -> float:
        return min(self.seconds)

    @property
    def median(self) -> float:
        ordered = sorted(self.seconds)
        mid = len(ordered) // 2
        return ordered[mid] if len(ordered) % 2 else 0.5 * (ordered[mid - 1] + ordered[mid])


def synchronize(device: str | torch.device) -> None:
    """Wait for queued work on ``device`` (a no-op on the CPU)."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def time_calls(fn: Callable[[], object], *, warmup: int, reps: int,
               device: str | torch.device = "cpu") -> Timing:
    """Call ``fn`` ``warmup`` times untimed, then ``reps`` times timed (``reps`` >= 1)."""
    timings, failed = time_interleaved({0: fn}, warmup=warmup, reps=reps, device=device)
    if failed:
        raise failed[0]
    return timings[0]


def _timed(fn: Callable[[], object], device: str | torch.device) -> float:
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


def time_interleaved(fns: Mapping[K, Callable[[], object]], *, warmup: int, reps: int,
                     device: str | torch.device = "cpu"
                     ) -> tuple[dict[K, Timing], dict[K, Exception]]:
    """Warm each function up, then time them round-robin, ``reps`` rounds. Returns the timings
    of the functions that ran and the exception of each that failed (it is dropped)."""
    if reps < 1:
        raise ValueError(f"reps must be >= 1, got {reps}")
    failed: dict[K, Exception] = {}
    seconds: dict[K, list[float]] = {}
    for key, fn in fns.items():
        try:
            for _ in range(warmup):
                fn()
            seconds[key] = []
        except Exception as err:  # the caller turns it into an error row
            failed[key] = err
    for _ in range(reps):
        for key in list(seconds):
            try:
                seconds[key].append(_timed(fns[key], device))
            except Exception as err:
                failed[key] = err
                del seconds[key]
    return {k: Timing(tuple(v)) for k, v in seconds.items()}, failed
