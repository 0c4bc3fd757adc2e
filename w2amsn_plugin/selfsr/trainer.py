"""Training of one self-sr experiment by BasicSR's trainer (``basicsr train``), in a child process
so that BasicSR's per-process logger and seeds belong to this run.

``python -m w2amsn_plugin.selfsr -opt OPTIONS.yml [--auto_resume]`` (:func:`main`) is ``basicsr
train`` with :class:`~.patch_dataset.SelfSRPatchDataset` registered; :func:`train` runs it from
the run's folder and passes BasicSR's log lines to stderr as progress.
"""
from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple, Sequence

from ..time_budget import SPENT_PATTERN
from .errors import SelfSRError

__all__ = ["Trained", "latest_weights", "main", "train"]

_ETA = re.compile(r"eta: (?:\d+ days?, )?[^,]*, ")
#: BasicSR's line just before its training loop: the time left counts from here
_LOOP_STARTS = "Start training from epoch"


class Trained(NamedTuple):
    """What :func:`train` returns."""

    #: the final weights
    weights: Path
    #: iterations trained (a time budget's, from BasicSR's log; else ``None``: all of them)
    iterations: int | None


def latest_weights(root: Path, name: str) -> Path:
    """``experiments/<name>/models/net_g_latest.pth`` under ``root`` (a one-line error if absent)."""
    path = root / "experiments" / name / "models" / "net_g_latest.pth"
    if not path.is_file():
        raise SelfSRError(f"{path}: training finished without writing its weights")
    return path


def train(options_file: Path, root: Path, name: str, progress: bool = True, timed: bool = False,
          seconds: float | None = None) -> Trained:
    """Run (or resume: ``--auto_resume``) the experiment of ``options_file`` with ``root`` as
    BasicSR's root folder. ``timed``: the run trains for a wall time, so BasicSR's estimate from
    its iteration cap is left out of the progress lines; ``seconds``: that time (a fresh run),
    shown counting down from the start of the training loop instead."""
    cmd = [sys.executable, "-m", __package__, "-opt", str(options_file), "--auto_resume"]
    proc = subprocess.Popen(cmd, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, bufsize=1)
    tail: list[str] = []
    iterations: int | None = None
    loop_start = time.monotonic()
    for line in proc.stdout:
        tail = (tail + [line.rstrip()])[-20:]
        if _LOOP_STARTS in line:
            loop_start = time.monotonic()
        spent = SPENT_PATTERN.search(line)
        if spent:
            iterations = int(spent.group(1))
        if progress and ("[epoch" in line or "Validation" in line or "# psnr" in line
                         or "Error" in line or spent):
            if timed and seconds is not None:
                left = max(0, int(seconds - (time.monotonic() - loop_start)))
                line = _ETA.sub(f"about {left // 60}:{left % 60:02d} of training left, ", line)
            elif timed:
                line = _ETA.sub("", line)
            print(f"self-sr: train: {line.strip()}", file=sys.stderr, flush=True)
    if proc.wait() != 0:
        raise SelfSRError(f"training failed (exit {proc.returncode}); its last lines:\n" + "\n".join(tail))
    return Trained(latest_weights(root, name), iterations)


def main(argv: Sequence[str] | None = None) -> int:
    """``basicsr train`` with the self-sr dataset registered."""
    from . import patch_dataset  # noqa: F401  (registers SelfSRPatchDataset)
    from ..cli import basicsr_main

    return basicsr_main(["train", *(sys.argv[1:] if argv is None else argv)])
