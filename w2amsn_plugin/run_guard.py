"""What ends a ``basicsr train|test`` run early, each with one line and nothing damaged: a
non-finite loss, a checkpoint that cannot be written, and SIGTERM (what Slurm and Kubernetes
send before SIGKILL), which first saves a resumable state (docs/reliability.md).

:class:`RunStopped` derives from ``BaseException`` on purpose: BasicSR catches ``Exception`` around
its checkpoint writes (``base_model.py:224-237,325-335``, "Just ignore it") and would carry on.
The training loop calls :func:`after_step` after each optimizer step (installed by
:mod:`w2amsn_plugin.compat`); :func:`sigterm_saves_and_stops` installs the handler.
"""
from __future__ import annotations

import contextlib
import os
import signal
import threading
from typing import Any, Iterator

__all__ = ["RunStopped", "NonFiniteLoss", "SaveFailed", "Terminated", "before_step", "after_step",
           "sigterm_saves_and_stops"]


class RunStopped(BaseException):
    """The run stopped on purpose; ``str()`` is the one line to print, ``exit_code`` the status."""

    exit_code = 2


class NonFiniteLoss(RunStopped):
    """The training loss became NaN or infinite; nothing was saved after it."""


class SaveFailed(RunStopped):
    """A checkpoint or training state could not be written (disk full, read-only folder)."""


class Terminated(RunStopped):
    """SIGTERM: the state of the last finished iteration is saved (training)."""

    exit_code = 128 + signal.SIGTERM


_RUN: dict[str, Any] = {"requested": False, "in_step": False, "last": None, "pid": None}


def _save_last() -> str:
    """Save the state of the last finished iteration unless its checkpoint exists; what was done."""
    model, epoch, current_iter = _RUN["last"]
    state = os.path.join(model.opt["path"]["training_states"], f"{current_iter}.state")
    if not os.path.isfile(state):
        model.save(epoch, current_iter)
    return f"saved {state}; resume with --auto_resume"


def _stop() -> None:
    said = _save_last() if _RUN["last"] is not None else "nothing to save yet"
    raise Terminated(f"stopped by SIGTERM; {said}")


def after_step(model: Any, epoch: int, current_iter: int) -> None:
    """Called after each training step: remember it, and stop here if SIGTERM came during it."""
    _RUN["last"] = (model, epoch, current_iter)
    _RUN["in_step"] = False
    if _RUN["requested"]:
        _stop()


def before_step() -> None:
    """Called before each training step: a SIGTERM now waits for the step's end."""
    _RUN["in_step"] = True


def _on_sigterm(_signum: int, _frame: Any) -> None:
    if os.getpid() != _RUN["pid"]:  # a forked DataLoader worker: end as SIGTERM always did
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)
        return
    _RUN["requested"] = True
    if not _RUN["in_step"]:  # between steps (data, validation, set-up): the weights are whole
        _stop()


@contextlib.contextmanager
def sigterm_saves_and_stops() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`Terminated` (after saving the state of the last
    finished training step, at once or at the end of the step under way). Only in the main
    thread; elsewhere the block runs unchanged."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _RUN.update(requested=False, in_step=False, last=None, pid=os.getpid())
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        _RUN.update(requested=False, in_step=False, last=None)
