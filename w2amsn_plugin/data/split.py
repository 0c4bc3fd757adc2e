"""Deterministic per-modality subject split (the paper's IXI split, section IV-A, is
:attr:`w2amsn_plugin.protocol.PAPER.split`; docs/data.md).

Subjects are ordered by ``sha256(f"{seed}:{subject}")``, a per-subject key that does not depend
on which other subjects exist. The test set takes the first ``n_test`` subjects of that order,
validation the next ``n_val``, training the next ``n_train``; the rest are unused. Because the order
is per subject, the splits of T1, T2 and PD agree for the subjects all three have; a subject
missing in one modality only shifts that modality's split boundaries by one place.
"""
from __future__ import annotations

import hashlib
from typing import Iterable

from ..protocol import SPLITS
from .ixi import IXIDataError

__all__ = ["SPLITS", "split_subjects"]


def split_subjects(subjects: Iterable[str], n_train: int, n_test: int, n_val: int, seed: int,
                   what: str = "the IXI root") -> dict[str, list[str]]:
    """Split ``subjects`` into sorted ``train``/``val``/``test`` lists (plus ``unused``).

    Raises :class:`IXIDataError` naming ``what`` when there are fewer subjects than asked for.
    """
    subjects = sorted(set(subjects))
    counts = {"test": n_test, "val": n_val, "train": n_train}
    if any(n < 0 for n in counts.values()):
        raise IXIDataError(f"split sizes must be >= 0, got {counts}")
    needed = sum(counts.values())
    if len(subjects) < needed:
        raise IXIDataError(f"{what} has {len(subjects)} subjects, but the split asks for {needed} "
                           f"(--n-train {n_train} --n-test {n_test} --n-val {n_val})")
    order = sorted(subjects, key=lambda s: hashlib.sha256(f"{seed}:{s}".encode()).hexdigest())
    out: dict[str, list[str]] = {}
    start = 0
    for name in SPLITS:
        out[name] = sorted(order[start:start + counts[name]])
        start += counts[name]
    out["unused"] = sorted(order[start:])
    return out
