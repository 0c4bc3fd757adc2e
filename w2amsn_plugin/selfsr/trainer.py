"""Training of one self-sr experiment by BasicSR's trainer (``basicsr train``), in a child process
so that BasicSR's per-process logger and seeds belong to this run.

``python -m w2amsn_plugin.selfsr -opt OPTIONS.yml [--auto_resume]`` (:func:`main`) is ``basicsr
train`` with :class:`~.patch_dataset.SelfSRPatchDataset` registered; :func:`train` runs it from
the run's folder and passes BasicSR's log lines to stderr as progress.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Sequence

from .errors import SelfSRError

__all__ = ["latest_weights", "main", "train"]


def latest_weights(root: Path, name: str) -> Path:
    """``experiments/<name>/models/net_g_latest.pth`` under ``root`` (a one-line error if absent)."""
    path = root / "experiments" / name / "models" / "net_g_latest.pth"
    if not path.is_file():
        raise SelfSRError(f"{path}: training finished without writing its weights")
    return path


def train(options_file: Path, root: Path, name: str, progress: bool = True) -> Path:
    """Run (or resume: ``--auto_resume``) the experiment of ``options_file`` with ``root`` as
    BasicSR's root folder; return the final weights."""
    cmd = [sys.executable, "-m", __package__, "-opt", str(options_file), "--auto_resume"]
    proc = subprocess.Popen(cmd, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, bufsize=1)
    tail: list[str] = []
    for line in proc.stdout:
        tail = (tail + [line.rstrip()])[-20:]
        if progress and ("[epoch" in line or "Validation" in line or "# psnr" in line
                         or "Error" in line):
            print(f"self-sr: train: {line.strip()}", file=sys.stderr, flush=True)
    if proc.wait() != 0:
        raise SelfSRError(f"training failed (exit {proc.returncode}); its last lines:\n" + "\n".join(tail))
    return latest_weights(root, name)


def main(argv: Sequence[str] | None = None) -> int:
    """``basicsr train`` with the self-sr dataset registered."""
    from . import patch_dataset  # noqa: F401  (registers SelfSRPatchDataset)
    from ..cli import basicsr_main

    return basicsr_main(["train", *(sys.argv[1:] if argv is None else argv)])
