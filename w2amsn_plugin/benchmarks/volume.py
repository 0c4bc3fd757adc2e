"""Whole-volume rows of ``w2amsn bench``: :func:`w2amsn_plugin.inference.super_resolve_volume` on a
256x256xN volume at x4, wall time and peak memory; and the x8
self-ensemble against a plain pass over the same slices (at most 8.5x), :func:`ensemble_row`.

It runs in a fresh (spawned) process so the peak resident set size is this job's own, not the
bench's. On Linux the peak is the process's ``VmHWM`` (``/proc/self/status``): ``ru_maxrss``
would not do, as Linux carries the parent's resident size at the fork into the child's
``ru_maxrss`` across the ``exec`` of a spawned process. The volume is smooth synthetic structure in
[0, 1]; what memory it needs does not depend on the values. Where timing all 150 slices would
not fit the bench's time budget, fewer slices are run and the wall time for the whole volume is
extrapolated (the row says so); the memory above the output array does not grow with the number
of slices (each forward call holds at most ``DEFAULT_MAX_PIXELS`` LR pixels).
"""
from __future__ import annotations

import concurrent.futures
import multiprocessing
import sys
import time
from dataclasses import dataclass
from typing import Any

from .results import Row

__all__ = ["VolumeSettings", "ENSEMBLE_TARGET", "peak_rss_bytes", "volume_row", "run_volume",
           "ensemble_row"]

#: the x8 self-ensemble may cost this many plain passes at most
ENSEMBLE_TARGET = 8.5


@dataclass(frozen=True)
class VolumeSettings:
    """The volume, network and time budget of the whole-volume row."""

    model: str = "W2AMSN-S"
    scale: int = 4
    shape: tuple[int, int, int] = (256, 256, 150)  # (height, width, slices)
    budget_s: float = 240.0
    device: str = "cpu"
    threads: int = 0  # 0: torch's default
    # the ensemble row: slices of the volume's size, at most this side, at x2
    ensemble_side: int = 120
    ensemble_slices: int = 2
    ensemble_reps: int = 1


def peak_rss_bytes() -> int:
    """This process's peak resident set size in bytes: ``VmHWM`` where ``/proc`` has it, else
    ``ru_maxrss`` (kilobytes on Linux, bytes on macOS)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss if sys.platform == "darwin" else maxrss * 1024


def _smooth_volume(height: int, width: int, depth: int):
    import numpy as np

    y = np.linspace(0, 1, height, dtype=np.float32)[:, None, None]
    x = np.linspace(0, 1, width, dtype=np.float32)[None, :, None]
    z = np.linspace(0, 1, depth, dtype=np.float32)[None, None, :]
    vol = 0.5 + 0.25 * np.sin(11 * x + 3 * z) * np.cos(7 * y) + 0.2 * np.sin(23 * x * y + 5 * z)
    return np.clip(vol, 0, 1).astype(np.float32)


def run_volume(model: str, scale: int, shape: tuple[int, int, int], device: str,
               threads: int) -> dict[str, Any]:
    """The child's job: build the network, super-resolve, report time and peak memory."""
    import torch
    from basicsr.archs import build_network

    import w2amsn_plugin  # noqa: F401  (registers the architectures)
    from .. import device_caps
    from ..archs.presets import preset
    from ..inference import super_resolve_volume

    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    net = build_network(preset(model, scale)).eval().requires_grad_(False)
    volume = _smooth_volume(*shape)
    bf16 = device_caps.resolve_bf16(None, device)
    cuda = torch.device(device).type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    baseline = peak_rss_bytes()
    start = time.perf_counter()
    out = super_resolve_volume(volume, net, scale, plane_axis=2, bf16=None, device=device)
    if cuda:
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "peak_rss": peak_rss_bytes(),
            "baseline_rss": baseline, "output_bytes": int(out.nbytes), "input_bytes": int(volume.nbytes),
            "output_shape": list(out.shape), "bf16": bf16,
            "cuda_max_allocated": torch.cuda.max_memory_allocated(device) if cuda else None}


def _slices_within(s: VolumeSettings, seconds_per_slice: float | None) -> int:
    """How many of the volume's slices fit the time budget (a multiple of the batch of 4)."""
    total = s.shape[2]
    if not seconds_per_slice:
        return total
    fit = int(s.budget_s / seconds_per_slice) // 4 * 4
    return max(min(total, fit), min(total, 4))


def volume_row(s: VolumeSettings, seconds_per_slice_estimate: float | None = None) -> Row:
    """Run the whole-volume job in a spawned process and describe it as one row.

    ``seconds_per_slice_estimate`` (from the inference rows) decides how many slices fit
    ``s.budget_s``; without it the whole volume is run.
    """
    height, width, total = s.shape
    depth = _slices_within(s, seconds_per_slice_estimate)
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
        res = pool.submit(run_volume, s.model, s.scale, (height, width, depth), s.device,
                          s.threads).result()
    full_output = res["output_bytes"] / depth * total
    seconds = res["seconds"] / depth * total
    above = res["peak_rss"] - res["output_bytes"]
    gib = 1 << 30
    note = [f"{'bf16' if res['bf16'] else 'fp32'} (auto); peak RSS {res['peak_rss'] / gib:.2f} GiB "
            f"= output {res['output_bytes'] / gib:.2f} GiB + {above / gib:.2f} GiB"]
    if depth < total:
        note.append(f"ran {depth} of {total} slices (time budget), wall time extrapolated; "
                    f"whole-volume output would be {full_output / gib:.2f} GiB")
    if res["cuda_max_allocated"] is not None:
        note.append(f"CUDA max allocated {res['cuda_max_allocated'] / gib:.2f} GiB")
    return Row("volume", f"{s.model} x{s.scale} whole volume, super_resolve_volume",
               model=s.model, path="super_resolve_volume",
               precision="bf16" if res["bf16"] else "fp32",
               input=f"{height}x{width}x{total}" + (f" (ran {depth})" if depth < total else ""),
               seconds=seconds, throughput=total / seconds, unit="slices/s",
               note="; ".join(note),
               extra={**res, "slices_run": depth, "slices_total": total,
                      "peak_rss_above_output": above, "extrapolated": depth < total})


def ensemble_row(s: VolumeSettings) -> Row:
    """``super_resolve_volume`` with and without ``self_ensemble`` on the same slices (of the
    volume's in-plane size, capped at ``s.ensemble_side``, at x2, default precision), timed
    round-robin in this process (8 plain passes per timed span); the ratio is what the ensemble
    costs in plain passes. All the slices make one full batch, so the ensemble makes 8 calls of
    the plain call's size (a short batch would let it put several transforms in one call, which
    flatters the ratio)."""
    import torch
    from basicsr.archs import build_network

    from .. import device_caps
    from ..archs.presets import preset
    from ..inference import super_resolve_volume
    from .timing import time_interleaved

    height, width = (min(n, s.ensemble_side) for n in s.shape[:2])
    torch.manual_seed(0)
    net = build_network(preset(s.model, 2)).eval().requires_grad_(False)
    volume = _smooth_volume(height, width, s.ensemble_slices)
    bf16 = device_caps.resolve_bf16(None, s.device)

    def call(ensemble: bool, times: int):
        def run() -> None:
            for _ in range(times):
                super_resolve_volume(volume, net, 2, plane_axis=2, bf16=bf16,
                                     batch=s.ensemble_slices, device=s.device,
                                     self_ensemble=ensemble)
        return run

    # the plain pass is timed 8 times in a row, so both timed spans are equally long: on a busy
    # machine the best of short spans is otherwise luckier than the best of long ones
    timings, failed = time_interleaved({False: call(False, 8), True: call(True, 1)}, warmup=1,
                                       reps=s.ensemble_reps, device=s.device)
    if failed:
        raise next(iter(failed.values()))
    plain, ens = timings[False].best / 8, timings[True].best
    ratio = ens / plain
    return Row("volume", f"{s.model} x2 x8 self-ensemble vs plain, super_resolve_volume",
               model=s.model, path="super_resolve_volume x8 self-ensemble",
               precision="bf16" if bf16 else "fp32",
               input=f"{height}x{width}x{s.ensemble_slices}",
               seconds=ens / s.ensemble_slices, throughput=s.ensemble_slices / ens, unit="slices/s",
               note=f"{ratio:.2f}x a plain pass ({plain / s.ensemble_slices:.3g} s/slice); target "
                    f"<= {ENSEMBLE_TARGET}x: {'met' if ratio <= ENSEMBLE_TARGET else 'NOT met'}",
               extra={"ratio": ratio, "plain_seconds": plain, "ensemble_seconds": ens,
                      "target": ENSEMBLE_TARGET, "met": ratio <= ENSEMBLE_TARGET})
