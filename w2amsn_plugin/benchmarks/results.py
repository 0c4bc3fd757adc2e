"""What ``w2amsn bench`` produces: rows of measurements, targets checked on them, and the
Markdown table both are printed as (the table in docs/performance.md is one such print)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

__all__ = ["Row", "Target", "error_row", "guarded", "markdown_table", "targets_table", "fmt_seconds",
           "fmt_number"]


@dataclass
class Row:
    """One measurement. ``seconds`` is per item (slice, step, sample, volume) and ``throughput``
    its rate in ``unit``; ``mfu`` is model FLOP utilisation (model FLOPs / time / conv limit).
    ``unavailable`` says why a row could not be measured (a part missing or not supported
    here); ``error`` holds the exception of a row that failed."""

    group: str
    name: str
    model: str = ""
    path: str = ""
    precision: str = ""
    compiled: bool = False
    input: str = ""
    seconds: float | None = None
    throughput: float | None = None
    unit: str = ""
    mfu: float | None = None
    note: str = ""
    unavailable: str | None = None
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error is None and self.unavailable is None


@dataclass
class Target:
    """A speed goal checked on this run: ``measured`` against ``goal`` (both ratios or
    amounts in ``unit``); ``met`` None when it could not be checked (``note`` says why)."""

    name: str
    goal: str
    measured: float | None
    unit: str
    met: bool | None
    note: str = ""


def error_row(group: str, name: str, err: BaseException, **fields: Any) -> Row:
    """A row carrying ``err`` as one line: its type and the first line of its message."""
    text = str(err).strip()
    first = text.splitlines()[0] if text else ""
    return Row(group=group, name=name, error=f"{type(err).__name__}: {first}"[:300], **fields)


def guarded(group: str, name: str, fn: Callable[[], Row | list[Row]], **fields: Any) -> list[Row]:
    """``fn()``'s row(s), or one :func:`error_row` of ``group``/``name`` for the exception it
    raised (so one broken part does not stop the bench)."""
    try:
        out = fn()
    except Exception as err:  # the bench reports every failure as a row, then goes on
        return [error_row(group, name, err, **fields)]
    return [out] if isinstance(out, Row) else list(out)


def fmt_seconds(s: float | None) -> str:
    if s is None or not math.isfinite(s):
        return ""
    if s >= 100:
        return f"{s:.0f} s"
    if s >= 1:
        return f"{s:.2f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.1f} ms"
    return f"{s * 1e6:.0f} µs"


def fmt_number(x: float | None) -> str:
    if x is None or not math.isfinite(x):
        return ""
    if abs(x) >= 100:
        return f"{x:,.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}" if abs(x) >= 0.1 else f"{x:.3g}"


def _cells(row: Row) -> list[str]:
    what = row.name
    status = (f"**error**: {row.error}" if row.error else
              f"not available: {row.unavailable}" if row.unavailable else row.note)
    rate = f"{fmt_number(row.throughput)} {row.unit}".strip() if row.throughput is not None else ""
    mfu = f"{row.mfu:.0%}" if row.mfu is not None else ""
    return [row.group, what, row.input, fmt_seconds(row.seconds), rate, mfu, status]


def markdown_table(rows: Iterable[Row]) -> str:
    """All rows as one Markdown table (``|`` in cells escaped)."""
    header = ["group", "what", "input", "time / item", "throughput", "MFU", "note"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in _cells(row)) + " |")
    return "\n".join(lines)


def targets_table(targets: Iterable[Target]) -> str:
    """The targets as a Markdown table: goal, measured, met."""
    lines = ["| target | goal | measured | met | note |", "|---|---|---|---|---|"]
    for t in targets:
        measured = f"{fmt_number(t.measured)} {t.unit}".strip() if t.measured is not None else ""
        met = {True: "yes", False: "**no**", None: "n/a"}[t.met]
        lines.append(f"| {t.name} | {t.goal} | {measured} | {met} | {t.note} |".replace("\n", " "))
    return "\n".join(lines)
