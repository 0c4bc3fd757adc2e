"""One network of the baselines benchmark and the benchmark's errors."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["PROG", "BenchmarkError", "RunFailed", "Method"]

PROG = "w2amsn baselines"


class BenchmarkError(RuntimeError):
    """A problem the user can fix (a file, an option); the message is one line."""


class RunFailed(BenchmarkError):
    """A ``basicsr train|test`` run failed; the message is one line naming its output file."""


@dataclass
class Method:
    """One network of the benchmark: its label, options files and results."""

    label: str
    source: Path
    train_opt: dict[str, Any]
    test_source: Path | None = None
    iters: int = 0
    calibration: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    tests: dict[str, dict[str, Any]] = field(default_factory=dict)
    size: dict[str, Any] = field(default_factory=dict)


def say(msg: str) -> None:
    print(f"[{PROG}] {msg}", flush=True)


