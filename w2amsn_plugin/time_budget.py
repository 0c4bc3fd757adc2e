"""Training for a wall time instead of a number of iterations (``train: scheduler: type:
TimedCosineLR``, what ``w2amsn self-sr --minutes M`` trains with).

:class:`TimedCosineLR` anneals the learning rate along a cosine (SGDR, Loshchilov and Hutter,
ICLR 2017, without restarts, as BasicSR's ``CosineAnnealingRestartLR``) over the training's
progress, the larger of its time fraction (seconds spent in the training loop / ``seconds``)
and its iteration fraction (iterations / ``total_iter``), so the rate reaches ``eta_min`` when
either runs out. The seconds spent are part of its state, so a run resumed with
``--auto_resume`` goes on with the time it has left. :class:`UntilSpent` wraps BasicSR's
training loader (installed by :mod:`w2amsn_plugin.compat`) and ends it once the seconds are
spent; BasicSR's loop then ends as after its last iteration: it saves the latest weights and
validates.
"""
from __future__ import annotations

import itertools
import math
import re
import time
import weakref
from typing import Any, Iterable, Iterator

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

__all__ = ["NOT_DISTRIBUTED", "SPENT_MESSAGE", "SPENT_PATTERN", "TIMED_SCHEDULER", "TimedCosineLR",
           "UntilSpent", "is_timed", "spent_scheduler"]

#: the ``train: scheduler: type`` of a wall-time budget
TIMED_SCHEDULER = "TimedCosineLR"
#: why a wall-time budget is refused with distributed training (the CLI and the model say it)
NOT_DISTRIBUTED = (f"train:scheduler: {TIMED_SCHEDULER} stops on each process's own clock, so "
                   "distributed ranks would stop at different iterations; use "
                   "CosineAnnealingRestartLR with a total_iter for distributed training")

#: the log line that ends a timed run (``w2amsn self-sr`` reads the iterations from it)
SPENT_MESSAGE = "Training time budget spent: {seconds:.0f} s, {iterations} iterations."
#: :data:`SPENT_MESSAGE` read back: group 1 is the iterations
SPENT_PATTERN = re.compile(r"Training time budget spent: \d+ s, (\d+) iterations\.")

_SCHEDULERS: "weakref.WeakSet[TimedCosineLR]" = weakref.WeakSet()
#: creation order of schedulers and loaders: a loader answers only to schedulers made after it
_SERIAL = itertools.count()


def is_timed(opt: dict[str, Any]) -> bool:
    """Whether the options ``opt`` train for a wall time (``train: scheduler: type``)."""
    return ((opt.get("train") or {}).get("scheduler") or {}).get("type") == TIMED_SCHEDULER


class TimedCosineLR(LRScheduler):
    """Cosine annealing from each group's initial rate to ``eta_min`` over ``seconds`` of
    training or ``total_iter`` iterations, whichever comes first (module doc).

    On resume (:meth:`load_state_dict`) the seconds already spent come from the checkpoint and
    ``seconds``, ``total_iter`` and ``eta_min`` from the options, so a resumed run can be given
    more time.

    Args:
        optimizer: The optimizer (BasicSR's ``optimizer_g``).
        seconds (float): Wall-time budget of the training loop, > 0.
        total_iter (int): Iteration budget (BasicSR's ``train: total_iter``), >= 1.
        eta_min (float): The final learning rate.
        last_epoch (int): As for every torch scheduler (-1: a new run).
    """

    def __init__(self, optimizer: Optimizer, seconds: float, total_iter: int, eta_min: float = 0.0,
                 last_epoch: int = -1) -> None:
        if not (isinstance(seconds, (int, float)) and seconds > 0):
            raise ValueError(f"TimedCosineLR: seconds must be a positive number, got {seconds!r}")
        if not (isinstance(total_iter, int) and total_iter >= 1):
            raise ValueError(f"TimedCosineLR: total_iter must be an integer >= 1, got {total_iter!r}")
        self.seconds = float(seconds)
        self.total_iter = total_iter
        self.eta_min = float(eta_min)
        self.elapsed = 0.0
        self._tick = time.monotonic()
        self._serial = next(_SERIAL)
        super().__init__(optimizer, last_epoch)
        _SCHEDULERS.add(self)

    @property
    def progress(self) -> float:
        """How far training is, 0 to 1: the larger of the time and iteration fractions."""
        return min(1.0, max(self.elapsed / self.seconds, max(self.last_epoch, 0) / self.total_iter))

    @property
    def spent_seconds(self) -> float:
        """Seconds of training so far, up to now (not only to the last step)."""
        return self.elapsed + (time.monotonic() - self._tick)

    @property
    def spent(self) -> bool:
        """Whether the seconds are spent (a validation or checkpoint since the last step counts)."""
        return self.spent_seconds >= self.seconds

    @property
    def iterations(self) -> int:
        """Iterations trained so far: BasicSR steps the scheduler from its second iteration on,
        so after iteration k >= 2 ``last_epoch`` is k - 1 (one iteration is assumed once the
        loop has run at all)."""
        return max(1, self.last_epoch + 1)

    def step(self) -> None:  # type: ignore[override]
        """Count the wall time since the last step (or since the start or a resume), then set the
        rates for the next iteration."""
        now = time.monotonic()
        self.elapsed += now - self._tick
        self._tick = now
        super().step()

    def get_lr(self) -> list[float]:
        """Each group's rate at the current :attr:`progress`."""
        weight = 0.5 * (1.0 + math.cos(math.pi * self.progress))
        return [self.eta_min + (base - self.eta_min) * weight for base in self.base_lrs]

    def state_dict(self) -> dict[str, Any]:
        """torch's state (the seconds spent among it), without the clock's reading."""
        return {key: value for key, value in super().state_dict().items()
                if key not in ("_tick", "_serial")}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the state (the seconds already spent among it) but keep this run's
        ``seconds``, ``total_iter`` and ``eta_min``; the clock restarts now."""
        budget = (self.seconds, self.total_iter, self.eta_min, self._serial)
        super().load_state_dict(state_dict)
        self.seconds, self.total_iter, self.eta_min, self._serial = budget
        self._tick = time.monotonic()


def spent_scheduler(after: int = -1) -> TimedCosineLR | None:
    """A :class:`TimedCosineLR` of this process made after serial ``after`` that has spent its
    seconds, if any."""
    return next((s for s in list(_SCHEDULERS) if s._serial > after and s.spent), None)


class UntilSpent:
    """An iterable over ``loader`` that ends once a :class:`TimedCosineLR` made after it (the
    model's, which BasicSR builds after its loaders) has spent its seconds (checked before the
    first batch and after each), and says so once in BasicSR's log (:data:`SPENT_MESSAGE`).
    BasicSR's later epochs then end before they fetch anything."""

    def __init__(self, loader: Iterable[Any]) -> None:
        self.loader = loader
        self._said = False
        self._serial = next(_SERIAL)  # BasicSR builds the loader, then the model's scheduler

    def _ended(self) -> bool:
        scheduler = spent_scheduler(self._serial)
        if scheduler is not None and not self._said:
            from basicsr.utils import get_root_logger

            get_root_logger().info(SPENT_MESSAGE.format(seconds=scheduler.spent_seconds,
                                                        iterations=scheduler.iterations))
            self._said = True
        return scheduler is not None

    def __iter__(self) -> Iterator[Any]:
        if self._ended():
            return
        for batch in self.loader:
            yield batch
            if self._ended():
                return

    def __len__(self) -> int:
        return len(self.loader)  # type: ignore[arg-type]
