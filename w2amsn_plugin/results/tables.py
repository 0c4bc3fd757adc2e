"""Results files of a test run: per-slice and per-volume CSVs and a Markdown table laid out as
the paper's Table III (rows: modality x scale; columns: methods, bicubic first; cells PSNR/SSIM).

Per-volume CSV, one row per volume::

    dataset,modality,scale,subject,n_slices,method,<metric>...,bicubic_<metric>...,skipped_<metric>...

``<metric>`` are the names under ``val.metrics`` in the YAML (e.g. ``psnr_fg``), ``method`` the
tested model (e.g. ``W2AMSN+``), ``bicubic_*`` the MATLAB-bicubic reference on the same slices and
``skipped_*`` the number of the volume's slices without a value (no foreground). A value that
does not exist is an empty cell, never NaN. The per-slice CSV has ``slice_index,key`` instead
of ``n_slices``. :func:`table_iii_from_csvs` merges the volume CSVs of several runs (methods,
modalities, scales) into one Table III.
"""
from __future__ import annotations

import csv
import math
import os
from typing import Any, Iterable, Sequence

from .volume_scores import SliceScores, VolumeScores, finite_mean

__all__ = ["BICUBIC", "volume_rows", "slice_rows", "read_volume_rows", "volumes_from_rows",
           "table_iii_markdown",
           "table_iii_from_csvs"]

#: method name of the bicubic reference
BICUBIC = "Bicubic"
_VOLUME_KEYS = ("dataset", "modality", "scale", "subject", "n_slices", "method")
_SLICE_KEYS = ("dataset", "modality", "scale", "subject", "slice_index", "key", "method")


def _metric_columns(methods: dict[str, dict[str, float]], method: str) -> dict[str, float]:
    row = dict(methods[method])
    row.update({f"bicubic_{m}": v for m, v in methods.get(BICUBIC, {}).items()})
    return row


def volume_rows(volumes: Sequence[VolumeScores], method: str, dataset: str, scale: int
                ) -> list[dict[str, Any]]:
    """Rows of the per-volume CSV for ``method`` (with the bicubic reference beside it)."""
    rows = []
    for v in volumes:
        row: dict[str, Any] = dict(dataset=dataset, modality=v.modality, scale=scale, subject=v.subject,
                                   n_slices=v.n_slices, method=method)
        row.update(_metric_columns(v.methods, method))
        row.update({f"skipped_{m}": n for m, n in v.skipped[method].items()})
        rows.append(row)
    return rows


def slice_rows(slices: Sequence[SliceScores], method: str, dataset: str, scale: int) -> list[dict[str, Any]]:
    """Rows of the per-slice CSV for ``method`` (with the bicubic reference beside it)."""
    return [dict(dataset=dataset, modality=s.modality, scale=scale, subject=s.subject,
                 slice_index=s.slice_index, key=s.key, method=method, **_metric_columns(s.methods, method))
            for s in slices]


def read_volume_rows(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Read a per-volume CSV written by :func:`~w2amsn_plugin.results.files.write_csv`; metric cells
    become floats (NaN if empty)."""
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [k for k in _VOLUME_KEYS if k not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: not a per-volume results CSV (missing columns {missing})")
        rows = []
        for row in reader:
            out: dict[str, Any] = {k: row[k] for k in _VOLUME_KEYS}
            out["scale"], out["n_slices"] = int(row["scale"]), int(row["n_slices"])
            for k, v in row.items():
                if k not in _VOLUME_KEYS:
                    out[k] = float(v) if v != "" else math.nan
            rows.append(out)
    return rows


def volumes_from_rows(rows: Sequence[dict[str, Any]]) -> list[VolumeScores]:
    """The inverse of :func:`volume_rows` for rows of any methods: one :class:`VolumeScores` per
    (modality, subject) holding each row's method and its ``bicubic_*`` columns as
    :data:`BICUBIC`, so that :func:`~w2amsn_plugin.results.volume_scores.set_means` averages them.
    The bicubic reference is scored on each method's own slices (x8 tests may score fewer): pass
    one method's rows to get the bicubic of exactly those slices."""
    volumes: dict[tuple[str, str], VolumeScores] = {}
    for row in rows:
        vol = volumes.setdefault((row["modality"], row["subject"]), VolumeScores(
            subject=row["subject"], modality=row["modality"], n_slices=int(row["n_slices"])))
        for key, value in row.items():
            if key in _VOLUME_KEYS or key.startswith("skipped_"):
                continue
            method, metric = ((BICUBIC, key[len("bicubic_"):]) if key.startswith("bicubic_")
                              else (row["method"], key))
            vol.methods.setdefault(method, {})[metric] = float(value)
            if method != BICUBIC:
                skipped = row.get(f"skipped_{metric}", 0)
                vol.skipped.setdefault(method, {})[metric] = int(0 if skipped != skipped else skipped)
    return [volumes[k] for k in sorted(volumes)]


def _metric_names(rows: Sequence[dict[str, Any]]) -> list[str]:
    names: list[str] = []
    for row in rows:
        for k in row:
            if k not in _VOLUME_KEYS and not k.startswith(("bicubic_", "skipped_")) and k not in names:
                names.append(k)
    return names


def _groups(metrics: Sequence[str]) -> list[list[str]]:
    """Metrics shown together in one table: a name with 'psnr' and its 'ssim' twin, others alone."""
    groups, used = [], set()
    for m in metrics:
        if m in used:
            continue
        twin = m.replace("psnr", "ssim")
        group = [m, twin] if "psnr" in m and twin in metrics else [m]
        used.update(group)
        groups.append(group)
    return groups


def _fmt(metric: str, value: float) -> str:
    if math.isnan(value):
        return "–"
    return f"{value:.2f}" if "psnr" in metric else f"{value:.4f}"


def table_iii_markdown(rows: Sequence[dict[str, Any]]) -> str:
    """Markdown in the layout of the paper's Table III from per-volume rows (one or more runs).

    One table per metric group (e.g. ``psnr_fg``/``ssim_fg``); a cell is the mean over the
    volumes of the per-volume values. Bicubic rows of several runs on the same volumes count once.
    """
    metrics = _metric_names(rows)
    cells: dict[tuple[str, int], dict[str, dict[str, list[float]]]] = {}
    seen: set[tuple[str, int, str, str]] = set()  # volumes counted (and bicubic taken) once
    with_bicubic = False
    counts: dict[tuple[str, int], dict[str, Any]] = {}
    methods: list[str] = []
    for row in rows:
        cell_key = (row["modality"], row["scale"])
        per_method = cells.setdefault(cell_key, {})
        if row["method"] not in methods:
            methods.append(row["method"])
        for m in metrics:
            per_method.setdefault(row["method"], {}).setdefault(m, []).append(row.get(m, math.nan))
        volume = (row["modality"], row["scale"], row["dataset"], row["subject"])
        if volume in seen:
            continue
        seen.add(volume)
        if any(f"bicubic_{m}" in row for m in metrics):
            with_bicubic = True
            for m in metrics:
                per_method.setdefault(BICUBIC, {}).setdefault(m, []).append(row.get(f"bicubic_{m}", math.nan))
        c = counts.setdefault(cell_key, {"volumes": 0, "slices": 0, "skipped": {}})
        c["volumes"] += 1
        c["slices"] += row["n_slices"]
        for m in metrics:
            c["skipped"][m] = c["skipped"].get(m, 0) + int(row.get(f"skipped_{m}", 0) or 0)
    columns = ([BICUBIC] if with_bicubic else []) + methods
    order = sorted(cells)
    out = []
    for group in _groups(metrics):
        out.append(f"### {' / '.join(group)}\n")
        out.append("| Data | Scale | " + " | ".join(columns) + " |")
        out.append("|:--|:--|" + "--:|" * len(columns))
        for modality, scale in order:
            per_method = cells[(modality, scale)]
            values = ["/".join(_fmt(m, finite_mean(per_method.get(col, {}).get(m, []))) for m in group)
                      for col in columns]
            out.append(f"| {modality} | ×{scale} | " + " | ".join(values) + " |")
        out.append("")
    out.append("Per-volume value: mean over the volume's slices; table value: mean over volumes.")
    for (modality, scale), c in sorted(counts.items()):
        skipped = ", ".join(f"{m} {n}" for m, n in c["skipped"].items() if n)
        out.append(f"- {modality} ×{scale}: {c['volumes']} volumes, {c['slices']} slices"
                   + (f"; slices without foreground (skipped): {skipped}" if skipped else ""))
    return "\n".join(out) + "\n"


def table_iii_from_csvs(paths: Iterable[str | os.PathLike]) -> str:
    """Merge the per-volume CSVs of several runs into one Table III (see :func:`table_iii_markdown`)."""
    rows: list[dict[str, Any]] = []
    for path in paths:
        rows.extend(read_volume_rows(path))
    return table_iii_markdown(rows)
