"""The run behind ``w2amsn bench`` (:mod:`w2amsn_plugin.commands.bench`): this machine's limits
and the plugin's speed against them, in one process and one table (DESIGN.md section 7:
ratios measured in one run, never timed asserts).

``w2amsn bench [--quick] [--json FILE] [--device cpu|cuda] [--threads N]`` measures:

- the machine: CPU model, vector ISA, native bf16 or not, threads, versions; its limit, the
  fp32 and bf16 throughput of a large 3x3 convolution (:mod:`.machine_limits`);
- inference of W²AMSN, W²AMSN-S, EDSR and RCAN on 120x120 LR slices at x2: plain eager NCHW
  and channels_last, our ``super_resolve_volume``, BasicSR's test path (``MRSRModel.test``) and
  BasicSR's stock ``SRModel.test``, in fp32 and bf16, eager and ``torch.compile``d
  (:mod:`.inference`): seconds and slices per second, model FLOP utilisation;
- a training step (16 LR patches of 32x32, L1, Adam) through BasicSR's ``optimize_parameters`` on
  ``MRSRModel`` and as a plain loop, fp32 and bf16 autocast (:mod:`.training`);
- IXI preparation (``make_ixi_lmdb``, 1 and 2 workers) on a fake IXI tree, and the training data
  path (``IXIPairedDataset`` over LMDB, 0 and 1 workers) (:mod:`.data_path`);
- a 256x256x150 volume at x4 through ``super_resolve_volume``: wall time and peak memory in a
  child process, and the x8 self-ensemble's cost in plain passes (:mod:`.volume`);
- with ``--weights`` (a trained checkpoint), what bf16 costs in foreground PSNR on the shipped
  Colin27 sample (:mod:`.precision`);

then checks the issue's targets on those numbers. ``--quick`` (under 3 minutes on 2 cores) runs
the full matrix for W²AMSN-S only, our path for the other networks, W²AMSN-S training, fewer
volumes and repetitions, 4 slices of the whole volume, and no ``torch.compile``. Work the
machine cannot do fast (emulated bf16) is timed on a small input and extrapolated; rows say so.
Each row is measured in its own ``try``: a failure becomes an ``error`` row, a missing part a
``not available`` row, and the bench goes on.
"""
from __future__ import annotations

import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import torch

from ..archs.presets import PRESETS, trainable
from . import data_path, inference, precision, training, volume
from .machine_limits import ConvLimit, conv_limit, machine_info
from .results import Row, Target, error_row, guarded, markdown_table, targets_table

from .targets import check_targets, find_row

__all__ = ["ALL_MODELS", "Profile", "PROFILES", "BenchResult", "run_bench", "apply_mfu", "report",
           "with_models"]

#: every registered network preset (archs/*_arch.py)
ALL_MODELS = tuple(PRESETS)


@dataclass(frozen=True)
class Profile:
    """What one bench run measures and how often (``--quick`` and the full run are profiles)."""

    name: str
    infer: inference.InferSettings
    matrix_models: tuple[str, ...]  # every path, both precisions
    ours_models: tuple[str, ...]  # super_resolve_volume only
    compile_models: tuple[str, ...]
    train: training.TrainSettings
    train_models: tuple[str, ...]
    data: data_path.DataSettings
    volume: volume.VolumeSettings
    precision_slices: int = 8
    limit_reps: int = 5


PROFILES: dict[str, Profile] = {
    "full": Profile(
        name="full", infer=inference.InferSettings(warmup=1, reps=2),
        matrix_models=ALL_MODELS, ours_models=(), compile_models=("W2AMSN", "W2AMSN-S"),
        train=training.TrainSettings(warmup=1, reps=2), train_models=("W2AMSN", "W2AMSN-S"),
        data=data_path.DataSettings(n_volumes=12, n_batches=30),
        volume=volume.VolumeSettings(budget_s=240.0), precision_slices=16, limit_reps=10),
    "quick": Profile(
        name="quick", infer=inference.InferSettings(warmup=1, reps=1),
        matrix_models=("W2AMSN-S",), ours_models=("W2AMSN", "EDSR", "RCAN"), compile_models=(),
        train=training.TrainSettings(warmup=1, reps=1), train_models=("W2AMSN-S",),
        data=data_path.DataSettings(n_volumes=4, n_batches=15),
        volume=volume.VolumeSettings(budget_s=15.0, ensemble_side=64), precision_slices=4, limit_reps=5),
}


def with_models(profile: Profile, models: tuple[str, ...]) -> Profile:
    """``profile`` measuring ``models`` (``w2amsn bench --models``): the full profile runs every
    path for them, the quick one our path; training rows for those with weights."""
    unknown = [m for m in models if m not in PRESETS]
    if unknown:
        raise ValueError(f"unknown network {unknown[0]!r}; registered: {', '.join(PRESETS)}")
    learned = tuple(m for m in models if trainable(m))
    if profile.name == "full":
        return replace(profile, matrix_models=models, ours_models=(),
                       compile_models=tuple(m for m in profile.compile_models if m in models),
                       train_models=learned)
    return replace(profile, matrix_models=(), ours_models=models, compile_models=(), train_models=learned)


@dataclass
class BenchResult:
    """Everything one run measured (written as JSON with :func:`dataclasses.asdict`)."""

    profile: str
    command: str
    machine: dict[str, Any]
    limits: dict[str, ConvLimit]
    rows: list[Row] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    wall_seconds: float = 0.0


# ------------------------------------------------------------------------------- row groups

def _say(rows: list[Row]) -> None:
    """One progress line per finished row, on stderr (a full run takes a while)."""
    for r in rows:
        status = r.error or (f"not available: {r.unavailable}" if r.unavailable else
                             f"{r.throughput:.3g} {r.unit}" if r.throughput else "")
        print(f"  [{r.group}] {r.name}: {status}", file=sys.stderr, flush=True)


def machine_rows(result: BenchResult) -> list[Row]:
    """The machine and its conv limits as rows (they head the table)."""
    m = result.machine
    rows = [Row("machine", "CPU", input=m["cpu_model"],
                note=f"{m['cpu_isa']} (torch: {m['torch_cpu_capability']}); native bf16: "
                     f"{'yes' if m['cpu_native_bf16'] else 'no'}; {m['threads']} threads; "
                     f"torch {m['torch']}, BasicSR {m['basicsr']}")]
    if m["device"] != "cpu":
        rows.append(Row("machine", "device", input=m["device_description"]))
    cuda = torch.device(m["device"]).type == "cuda"
    for key, lim in result.limits.items():
        note = ("bf16 emulated: timed on a small input" if lim.emulated else
                "TF32 convolutions (torch's default on CUDA)" if cuda and key == "fp32" else "")
        rows.append(Row("machine", f"conv limit {key}", precision=key, input=lim.shape,
                        throughput=lim.gflops, unit="GFLOP/s", note=note))
    return rows


def inference_group(p: Profile, device: str) -> list[Row]:
    """Inference rows of every network of the profile."""
    # one slice per call leaves a GPU launch-bound: time 16 slices per call there
    batch = 16 if torch.device(device).type == "cuda" else p.infer.batch
    settings = replace(p.infer, device=device, batch=batch)
    rows: list[Row] = []
    for name in p.matrix_models + p.ours_models:
        paths = inference.ALL_PATHS if name in p.matrix_models else (inference.OURS,)
        new = guarded("inference", f"{name} x{settings.scale}", lambda: inference.inference_rows(
            name, settings, paths=paths, compile_=name in p.compile_models), model=name)
        _say(new)
        rows += new
    return rows


def training_group(p: Profile, device: str) -> list[Row]:
    """Training-step rows of every network of the profile."""
    # on a GPU, the paper's batch of 96 patches (its training throughput turns into hours)
    cuda = torch.device(device).type == "cuda"
    batch = 96 if cuda else p.train.batch
    # on a GPU, BasicSR's step also through torch.compile (the mode by measurement)
    settings = replace(p.train, device=device, batch=batch,
                       compile_modes=("default", "reduce-overhead") if cuda else ())
    rows: list[Row] = []
    for name in p.train_models:
        new = guarded("training", f"{name} x{settings.scale}",
                      lambda: training.training_rows(name, settings), model=name)
        _say(new)
        rows += new
    return rows


def data_group(p: Profile, device: str = "cpu") -> list[Row]:
    """Preparation rows, then data-path rows over the databases the preparation wrote (the
    on-device path delivers its batches on ``device``)."""
    with tempfile.TemporaryDirectory(prefix="w2amsn_bench_") as tmp:
        tree = Path(tmp) / "IXI"
        try:
            data_path.make_tree(tree, p.data)
        except Exception as err:  # reported as a row, like every other failure
            rows = [error_row("data prep", "fake IXI tree", err)]
            _say(rows)
            return rows
        rows, written = data_path.prep_rows(tree, Path(tmp), p.data)
        _say(rows)
        loader_rows = data_path.data_path_rows(written, p.data) + data_path.bank_rows(written, p.data, device)
        _say(loader_rows)
        return rows + loader_rows


def volume_group(p: Profile, rows_so_far: list[Row], device: str, threads: int) -> list[Row]:
    """The whole-volume row; its slice count fits the profile's time budget, estimated from
    the measured x2 speed of the same network in the default precision."""
    from ..device_caps import resolve_bf16

    s = replace(p.volume, device=device, threads=threads)
    precision = "bf16" if resolve_bf16(None, device) else "fp32"
    ours = find_row(rows_so_far, "inference", s.model, inference.OURS, precision)
    estimate = None
    if ours is not None:
        h, w, _ = s.shape
        x2 = inference.slice_flops(s.model, p.infer.scale, p.infer.lr_size, p.infer.lr_size)
        estimate = ours.seconds * inference.slice_flops(s.model, s.scale, h, w) / x2
    rows = guarded("volume", f"{s.model} x{s.scale} whole volume",
                   lambda: volume.volume_row(s, estimate), model=s.model)
    rows += guarded("volume", f"{s.model} x2 x8 self-ensemble", lambda: [volume.ensemble_row(s)],
                    model=s.model)
    _say(rows)
    return rows


def precision_group(p: Profile, device: str, weights: str | None, opt: str | None) -> list[Row]:
    """The bf16 accuracy row (not available without trained weights)."""
    s = precision.PrecisionSettings(weights=weights, opt=opt, n_slices=p.precision_slices,
                                    device=device)
    rows = guarded("precision", "bf16 vs fp32 foreground PSNR", lambda: precision.precision_row(s))
    _say(rows)
    return rows


# ------------------------------------------------------------------------------- the run

def run_bench(profile: Profile, device: str = "cpu", threads: int = 0, command: str = "",
              weights: str | None = None, opt: str | None = None,
              progress: Callable[[str], None] | None = None) -> BenchResult:
    """Measure everything of ``profile`` in this process (the volume row in a child) and check
    the targets. ``threads`` > 0 sets ``torch.set_num_threads`` first; ``weights`` (and
    ``opt``) name a trained checkpoint for the bf16 accuracy row."""
    import w2amsn_plugin  # noqa: F401  (registers architectures, dataset, model)

    say = progress or (lambda msg: print(msg, file=sys.stderr, flush=True))
    start = time.perf_counter()
    if threads:
        torch.set_num_threads(threads)
    say("machine and conv limits ...")
    first = _limits(device, profile.limit_reps)
    rows: list[Row] = []
    say("inference ...")
    rows += inference_group(profile, device)
    say("training ...")
    rows += training_group(profile, device)
    say("data preparation and data path ...")
    rows += data_group(profile, device)
    say("whole volume (child process) ...")
    rows += volume_group(profile, rows, device, threads or torch.get_num_threads())
    say("bf16 accuracy on the shipped sample ...")
    rows += precision_group(profile, device, weights, opt)
    say("conv limits again ...")
    last = _limits(device, profile.limit_reps)
    limits = {k: max(first[k], last[k], key=lambda lim: lim.gflops) for k in first}
    result = BenchResult(profile=profile.name, command=command, machine=machine_info(device),
                         limits=limits)
    apply_mfu(rows, limits)
    result.rows = machine_rows(result) + rows
    result.targets = check_targets(result.rows, result.machine, device)
    _annotate_data_rows(result.rows)
    result.wall_seconds = time.perf_counter() - start
    return result


def _limits(device: str, reps: int) -> dict[str, ConvLimit]:
    return {"fp32": conv_limit(torch.float32, device, reps=reps),
            "bf16": conv_limit(torch.bfloat16, device, reps=reps)}


def apply_mfu(rows: list[Row], limits: dict[str, ConvLimit]) -> None:
    """Model FLOP utilisation of every timed row: FLOPs of its best call / that call's time /
    the conv limit of its precision (the better of the two limit measurements, taken at the
    start and at the end of the run, so a busy moment does not lower the yardstick)."""
    for r in rows:
        if r.ok and "flops_per_call" in r.extra and r.precision in limits:
            r.mfu = r.extra["flops_per_call"] / r.extra["best_call_seconds"] / (
                limits[r.precision].gflops * 1e9)


def _annotate_data_rows(rows: list[Row]) -> None:
    """Say next to each data-path row what one W²AMSN-S training step consumes."""
    steps = [r for r in rows if r.group == "training" and r.model == "W2AMSN-S" and r.ok]
    if not steps:
        return
    fastest = max(steps, key=lambda r: r.throughput)
    for r in rows:
        if r.group == "data path" and r.ok:
            r.note += (f"; {r.throughput / fastest.throughput:.0f}x the {fastest.throughput:.2f} "
                       f"patches/s of the fastest W2AMSN-S step measured")


def report(result: BenchResult) -> str:
    """The printed report: one table of measurements, then the targets."""
    return "\n".join([
        f"w2amsn bench ({result.profile}): {result.machine['device_description']}; "
        f"{result.wall_seconds:.0f} s", "", markdown_table(result.rows), "",
        "Targets:", "", targets_table(result.targets)])


