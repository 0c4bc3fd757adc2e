"""Per-slice -> per-volume -> per-test-set aggregation of metric values (docs/metrics-and-model.md).

The paper averages its metrics per image (section IV); this plugin keeps that and adds the
volume level that MR studies report, with one consistent rule at each level:

- per volume: the mean of the volume's per-slice values (a slice PSNR is computed from that
  slice's own MSE, as in the paper; volumes are never pooled into one MSE);
- per test set: the mean of the per-volume values, so every subject weighs the same whatever
  its number of scored slices.

A NaN slice value means "no score for this slice" (a foreground metric on a slice without
foreground): it is left out of the mean and counted in ``skipped``. A volume whose slices are
all skipped has a NaN value and is left out of the test-set mean in the same way.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Sequence

__all__ = ["SliceScores", "VolumeScores", "aggregate_volumes", "finite_mean", "set_means"]


@dataclass(frozen=True)
class SliceScores:
    """Metric values of one slice: ``methods[method][metric]`` (NaN = skipped)."""

    key: str
    subject: str
    modality: str
    slice_index: int
    methods: dict[str, dict[str, float]]


@dataclass
class VolumeScores:
    """Per-volume means ``methods[method][metric]`` and the number of skipped slices per metric."""

    subject: str
    modality: str
    n_slices: int = 0
    methods: dict[str, dict[str, float]] = field(default_factory=dict)
    skipped: dict[str, dict[str, int]] = field(default_factory=dict)


def finite_mean(values: Iterable[float]) -> float:
    """Mean of the non-NaN values; NaN when there is none."""
    kept = [v for v in values if not math.isnan(v)]
    return math.fsum(kept) / len(kept) if kept else math.nan


def aggregate_volumes(slices: Sequence[SliceScores]) -> list[VolumeScores]:
    """Group slices by (modality, subject) and average each method's metrics per volume."""
    groups: dict[tuple[str, str], list[SliceScores]] = {}
    for s in slices:
        groups.setdefault((s.modality, s.subject), []).append(s)
    volumes = []
    for (modality, subject), members in sorted(groups.items()):
        vol = VolumeScores(subject=subject, modality=modality, n_slices=len(members))
        for method in members[0].methods:
            for metric in members[0].methods[method]:
                values = [s.methods[method][metric] for s in members]
                vol.methods.setdefault(method, {})[metric] = finite_mean(values)
                vol.skipped.setdefault(method, {})[metric] = sum(math.isnan(v) for v in values)
        volumes.append(vol)
    return volumes


def set_means(volumes: Sequence[VolumeScores], method: str) -> dict[str, float]:
    """Test-set value of each metric of ``method``: the mean of its per-volume values (volumes
    without the method or metric are left out). The one test-set mean of the plugin: per-volume
    CSV rows go through :func:`w2amsn_plugin.results.tables.volumes_from_rows` first."""
    metrics = dict.fromkeys(m for v in volumes for m in v.methods.get(method, {}))
    return {metric: finite_mean(v.methods.get(method, {}).get(metric, math.nan) for v in volumes)
            for metric in metrics}
