"""Times read from BasicSR's own log lines: training loop, test loop, seconds per iteration."""
from __future__ import annotations

import datetime
import re



from .method import BenchmarkError
__all__ = ['log_times', 'seconds_per_iteration', 'iterations_for_minutes']

_LOG_RE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) \w+: (.*)$")
_ITER_RE = re.compile(r"\[epoch:\s*\d+, iter:\s*([\d,]+),")


def log_times(text: str) -> list[tuple[float, str]]:
    """``(seconds since the epoch, message)`` of each BasicSR log line in ``text``."""
    out = []
    for line in text.splitlines():
        match = _LOG_RE.match(line)
        if match:
            stamp = datetime.datetime.strptime(match[1], "%Y-%m-%d %H:%M:%S,%f")
            out.append((stamp.timestamp(), match[2]))
    return out


def span(lines: list[tuple[float, str]], start: str, end: str | None) -> float | None:
    """Seconds from the first line starting with ``start`` to the next starting with ``end``
    (None: to the last line)."""
    begin = next((t for t, msg in lines if msg.startswith(start)), None)
    if begin is None:
        return None
    after = [(t, msg) for t, msg in lines if t >= begin]
    stop = after[-1][0] if end is None else next((t for t, msg in after if msg.startswith(end)), None)
    return None if stop is None else stop - begin


def seconds_per_iteration(text: str) -> float:
    """Training seconds per iteration from a run logged every iteration: the spacing of the
    iteration lines over their second half (the first iterations are warm-up)."""
    points = []
    for t, msg in log_times(text):
        match = _ITER_RE.search(msg)
        if match:
            points.append((int(match[1].replace(",", "")), t))
    if len(points) < 4:
        raise BenchmarkError(f"calibration logged {len(points)} iterations; need at least 4 "
                             "(raise --calib-iters)")
    (i0, t0), (i1, t1) = points[len(points) // 2], points[-1]
    return max(t1 - t0, 1e-3) / (i1 - i0)


def iterations_for_minutes(minutes: float, sec_per_iter: float) -> int:
    """Iterations that fit in ``minutes`` of training at ``sec_per_iter`` (at least 1)."""
    return max(1, int(minutes * 60.0 / sec_per_iter))


