"""Wall-clock timing for the benchmarks: warm-up calls, then the best of several timed calls,
with the device synchronised around each call so GPU work is counted where it runs.

The best (minimum) of the timed calls is the figure used everywhere in ``w2amsn bench``: it is
the least disturbed by other processes on a shared machine, and every ratio the bench reports
compares two minima taken the same way.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import torch

__all__ = ["Timing", "synchronize", "time_calls"]


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
    if reps < 1:
        raise ValueError(f"reps must be >= 1, got {reps}")
    for _ in range(warmup):
        fn()
    synchronize(device)
    seconds = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        synchronize(device)
        seconds.append(time.perf_counter() - start)
    return Timing(tuple(seconds))
