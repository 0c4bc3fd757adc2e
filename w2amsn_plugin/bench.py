"""``w2amsn bench``: this machine's limits and the plugin's speed against them, in one process
and one table (issue 11; DESIGN.md section 7: ratios measured in one run, never timed asserts).

``w2amsn bench [--quick] [--json FILE] [--device cpu|cuda] [--threads N]`` measures:

- the machine: CPU model, vector ISA, native bf16 or not, threads, versions; its limit, the
  fp32 and bf16 throughput of a large 3x3 convolution (:mod:`.benchmarks.machine_limits`);
- inference of W²AMSN, W²AMSN-S, EDSR and RCAN on 120x120 LR slices at x2: plain eager NCHW
  and channels_last, our ``super_resolve_volume``, BasicSR's test path (``MRSRModel.test``) and
  BasicSR's stock ``SRModel.test``, in fp32 and bf16, eager and ``torch.compile``d
  (:mod:`.benchmarks.inference`): seconds and slices per second, model FLOP utilisation;
- a training step (16 LR patches of 32x32, L1, Adam) through BasicSR's ``optimize_parameters`` on
  ``MRSRModel`` and as a plain loop, fp32 and bf16 autocast (:mod:`.benchmarks.training`);
- IXI preparation (``make_ixi_lmdb``, 1 and 2 workers) on a fake IXI tree, and the training data
  path (``IXIPairedDataset`` over LMDB, 0 and 1 workers) (:mod:`.benchmarks.data_path`);
- a 256x256x150 volume at x4 through ``super_resolve_volume``: wall time and peak memory in a
  child process (:mod:`.benchmarks.volume`);
- with ``--weights`` (a trained checkpoint), what bf16 costs in foreground PSNR on the shipped
  Colin27 sample (:mod:`.benchmarks.precision`);

then checks the issue's targets on those numbers. ``--quick`` (under 3 minutes on 2 cores) runs
the full matrix for W²AMSN-S only, our path for the other networks, W²AMSN-S training, fewer
volumes and repetitions, 4 slices of the whole volume, and no ``torch.compile``. Work the
machine cannot do fast (emulated bf16) is timed on a small input and extrapolated; rows say so.
Each row is measured in its own ``try``: a failure becomes an ``error`` row, a missing part a
``not available`` row, and the bench goes on.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import torch

from .benchmarks import data_path, inference, precision, training, volume
from .benchmarks.machine_limits import ConvLimit, conv_limit, machine_info
from .benchmarks.results import Row, Target, error_row, guarded, markdown_table, targets_table

__all__ = ["Profile", "PROFILES", "BenchResult", "run_bench", "apply_mfu", "check_targets",
           "report", "configure_parser", "run"]

ALL_MODELS = ("W2AMSN", "W2AMSN-S", "EDSR", "RCAN")
GIB = 1 << 30


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
        volume=volume.VolumeSettings(budget_s=15.0), precision_slices=4, limit_reps=5),
}


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
    batch = 96 if torch.device(device).type == "cuda" else p.train.batch
    settings = replace(p.train, device=device, batch=batch)
    rows: list[Row] = []
    for name in p.train_models:
        new = guarded("training", f"{name} x{settings.scale}",
                      lambda: training.training_rows(name, settings), model=name)
        _say(new)
        rows += new
    return rows


def data_group(p: Profile) -> list[Row]:
    """Preparation rows, then data-path rows over the databases the preparation wrote."""
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
        loader_rows = data_path.data_path_rows(written, p.data)
        _say(loader_rows)
        return rows + loader_rows


def volume_group(p: Profile, rows_so_far: list[Row], device: str, threads: int) -> list[Row]:
    """The whole-volume row; its slice count fits the profile's time budget, estimated from
    the measured x2 speed of the same network in the default precision."""
    from .device_caps import resolve_bf16

    s = replace(p.volume, device=device, threads=threads)
    precision = "bf16" if resolve_bf16(None, device) else "fp32"
    ours = _find(rows_so_far, "inference", s.model, inference.OURS, precision)
    estimate = None
    if ours is not None:
        h, w, _ = s.shape
        x2 = inference.slice_flops(s.model, p.infer.scale, p.infer.lr_size, p.infer.lr_size)
        estimate = ours.seconds * inference.slice_flops(s.model, s.scale, h, w) / x2
    rows = guarded("volume", f"{s.model} x{s.scale} whole volume",
                   lambda: volume.volume_row(s, estimate), model=s.model)
    _say(rows)
    return rows


def precision_group(p: Profile, device: str, weights: str | None, opt: str | None) -> list[Row]:
    """The bf16 accuracy row (not available without trained weights)."""
    s = precision.PrecisionSettings(weights=weights, opt=opt, n_slices=p.precision_slices,
                                    device=device)
    rows = guarded("precision", "bf16 vs fp32 foreground PSNR", lambda: precision.precision_row(s))
    _say(rows)
    return rows


# ------------------------------------------------------------------------------- targets

def _find(rows: list[Row], group: str, model: str, path: str, precision: str,
          compiled: bool = False) -> Row | None:
    for r in rows:
        if (r.group, r.model, r.path, r.precision, r.compiled) == (group, model, path, precision,
                                                                   compiled) and r.ok:
            return r
    return None


def _ratio_target(name: str, goal: str, limit: float, pairs: dict[str, tuple[Row | None, Row | None]],
                  higher_is_better: bool, what: str) -> Target:
    """Target over several networks: the worst of ``a.seconds / b.seconds`` per network."""
    ratios = {m: a.seconds / b.seconds for m, (a, b) in pairs.items() if a and b}
    missing = sorted(m for m, (a, b) in pairs.items() if not (a and b))
    if not ratios:
        return Target(name, goal, None, "x", None,
                      f"not measured ({what} missing for {', '.join(missing) or 'all networks'})")
    worst_model = (min if higher_is_better else max)(ratios, key=ratios.get)
    worst = ratios[worst_model]
    met = worst >= limit if higher_is_better else worst <= limit
    note = ", ".join(f"{m} {v:.2f}" for m, v in ratios.items())
    if missing:
        note += f"; not measured: {', '.join(missing)}"
    return Target(name, goal, worst, "x", met, note)


def _best_plain(rows: list[Row], group: str, model: str, paths: tuple[str, ...], precision: str
                ) -> Row | None:
    found = [r for p in paths if (r := _find(rows, group, model, p, precision))]
    return min(found, key=lambda r: r.seconds) if found else None


def check_targets(rows: list[Row], machine: dict[str, Any], device: str) -> list[Target]:
    """Issue 11's targets (deliverable 3) checked on this run's rows."""
    from .device_caps import native_bf16

    native = native_bf16(device)
    inf = [r for r in rows if r.group == "inference"]
    models = sorted({r.model for r in inf if r.path in (*inference.PLAIN_PATHS, inference.STOCK)})
    targets: list[Target] = []

    ours32 = _find(rows, "inference", "W2AMSN", inference.OURS, "fp32")
    targets.append(Target(
        "W2AMSN inference MFU, our path, fp32 channels_last", ">= 70% of the fp32 conv limit",
        100 * ours32.mfu if ours32 else None, "%", ours32.mfu >= 0.70 if ours32 else None,
        "" if ours32 else "W2AMSN super_resolve_volume fp32 not measured"))

    ours16 = _find(rows, "inference", "W2AMSN", inference.OURS, "bf16")
    if native:
        targets.append(_ratio_target(
            "bf16 speed-up, our path (native bf16)", ">= 1.8x fp32", 1.8,
            {"W2AMSN": (ours32, ours16)}, True, "fp32 or bf16 row"))
    else:
        targets.append(Target(
            "default path never slower than fp32 (bf16 emulated)", ">= 1.0x fp32",
            1.0 if ours32 else None, "x", True if ours32 else None,
            "auto precision is fp32 here (bf16 emulated), so the default path is the fp32 path"
            + (f"; forced bf16 would be {ours16.seconds / ours32.seconds:.1f}x slower"
               if ours16 and ours32 else "")))

    for path in (inference.OURS, inference.MRSR):
        for precision in ("fp32", "bf16"):
            pairs = {m: (_find(rows, "inference", m, path, precision),
                         _best_plain(rows, "inference", m, inference.PLAIN_PATHS, precision))
                     for m in models}
            targets.append(_ratio_target(
                f"{path} vs best plain eager, {precision}", "<= 1.05x the time", 1.05, pairs,
                False, "row"))
    auto = "bf16" if native else "fp32"
    for path in (inference.OURS, inference.MRSR):
        pairs = {m: (_find(rows, "inference", m, inference.STOCK, "fp32"),
                     _find(rows, "inference", m, path, auto)) for m in models}
        t = _ratio_target(f"{path}, auto precision ({auto} here), vs stock SRModel.test "
                          "(NCHW fp32)", ">= 1.5x faster", 1.5, pairs, True, "row")
        fp32 = {m: (_find(rows, "inference", m, inference.STOCK, "fp32"),
                    _find(rows, "inference", m, path, "fp32")) for m in models}
        same = [f"{m} {a.seconds / b.seconds:.2f}" for m, (a, b) in fp32.items() if a and b]
        if auto != "fp32" and same:
            t.note += f"; in fp32: {', '.join(same)}"
        targets.append(t)

    train_models = sorted({r.model for r in rows if r.group == "training" and r.model})
    plain_train = (training.PLAIN_NCHW, training.PLAIN_CL)
    for precision in ("fp32", "bf16"):
        pairs = {m: (_find(rows, "training", m, training.BASICSR, precision),
                     _best_plain(rows, "training", m, plain_train, precision)) for m in train_models}
        targets.append(_ratio_target(
            f"training step, BasicSR vs best plain loop, {precision}", "<= 1.05x the time", 1.05,
            pairs, False, "row"))
    if native:
        pairs = {m: (_find(rows, "training", m, training.BASICSR, "fp32"),
                     _find(rows, "training", m, training.BASICSR, "bf16")) for m in train_models}
        t = _ratio_target("training bf16 autocast speed-up (native bf16)", ">= 1.6x fp32", 1.6,
                          pairs, True, "BasicSR fp32 or bf16 row")
        plain = {m: (_find(rows, "training", m, training.PLAIN_CL, "fp32"),
                     _find(rows, "training", m, training.PLAIN_CL, "bf16")) for m in train_models}
        plain_ratios = [f"{m} {a.seconds / b.seconds:.2f}" for m, (a, b) in plain.items() if a and b]
        if plain_ratios:
            t.note += f"; plain loop channels_last: {', '.join(plain_ratios)}"
        targets.append(t)

    targets.append(_data_target(rows, device))
    prep = next((r for r in rows if r.group == "data prep" and r.extra.get("workers") == 2 and r.ok),
                None)
    targets.append(Target("IXI preparation, 2 workers", ">= 20 volumes/min",
                          prep.throughput if prep else None, "volumes/min",
                          prep.throughput >= 20 if prep else None,
                          "" if prep else "make_ixi_lmdb with 2 workers not measured"))
    prec = next((r for r in rows if r.group == "precision" and r.ok), None)
    change = prec.extra["psnr_fg_change_db"] if prec else None
    targets.append(Target(
        "bf16 cost in foreground PSNR (shipped sample)", "< 0.02 dB change at x2",
        change, "dB", abs(change) < 0.02 if prec and prec.extra["scale"] == 2 else None,
        (prec.note + ("" if prec.extra["scale"] == 2 else "; not x2: not checked")) if prec
        else "needs --weights (a trained checkpoint)"))
    vol = next((r for r in rows if r.group == "volume" and r.ok), None)
    above = vol.extra["peak_rss_above_output"] / GIB if vol else None
    targets.append(Target("whole volume x4, peak RSS above the output array", "<= 1 GiB", above,
                          "GiB", above <= 1.0 if vol else None,
                          vol.note if vol else "whole-volume row not measured"))
    return targets


def _data_target(rows: list[Row], device: str) -> Target:
    """1-worker data path against what a W²AMSN-S training step consumes (default precision)."""
    from .device_caps import resolve_bf16

    loader = next((r for r in rows if r.group == "data path" and r.extra.get("workers") == 1
                   and r.ok), None)
    precision = "bf16" if resolve_bf16(None, device) else "fp32"
    step = (_find(rows, "training", "W2AMSN-S", training.BASICSR, precision)
            or _find(rows, "training", "W2AMSN-S", training.BASICSR, "fp32"))
    if loader is None or step is None:
        return Target("data path, 1 worker, vs a W2AMSN-S training step", ">= 5x", None, "x",
                      None, "data path (1 worker) or W2AMSN-S BasicSR training row missing")
    ratio = loader.throughput / step.throughput
    return Target("data path, 1 worker, vs a W2AMSN-S training step", ">= 5x", ratio, "x",
                  ratio >= 5, f"{loader.throughput:.0f} samples/s vs {step.throughput:.2f} "
                              f"patches/s ({step.precision} step)")


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
    rows += data_group(profile)
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
        "Targets (issue 11):", "", targets_table(result.targets)])


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Options of ``w2amsn bench``."""
    parser.add_argument("--quick", action="store_true",
                        help="the short run (< 3 min on 2 cores): fewer networks, repetitions and "
                             "slices, no torch.compile")
    parser.add_argument("--json", metavar="FILE", help="also write every number to FILE as JSON")
    parser.add_argument("--device", default="cpu",
                        help="cpu, cuda or cuda:N for the network rows (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=0, metavar="N",
                        help="torch threads (default: torch's choice, one per core; on a machine "
                             "shared with other jobs, the number of free cores)")
    parser.add_argument("--weights", default=None, metavar="PTH",
                        help="a trained checkpoint: also measure bf16's PSNR cost on the shipped "
                             "sample (e.g. experiments/<name>/models/net_g_latest.pth)")
    parser.add_argument("--opt", default=None, metavar="YAML",
                        help="options of --weights (default: the experiment's YAML, as "
                             "'w2amsn infer' finds it)")


def run(args: argparse.Namespace) -> int:
    """``w2amsn bench``: print the table (and write JSON); 0 unless the arguments are wrong."""
    try:
        dev_type = torch.device(args.device).type
    except RuntimeError:
        dev_type = None
    if dev_type not in ("cpu", "cuda"):
        print(f"w2amsn bench: error: --device must be cpu, cuda or cuda:N, got {args.device!r}",
              file=sys.stderr)
        return 2
    if dev_type == "cuda" and not torch.cuda.is_available():
        print("w2amsn bench: error: --device cuda, but CUDA is not available", file=sys.stderr)
        return 2
    if args.threads < 0:
        print("w2amsn bench: error: --threads must be >= 0", file=sys.stderr)
        return 2
    if args.weights is not None and not Path(args.weights).is_file():
        print(f"w2amsn bench: error: {args.weights}: weights file not found", file=sys.stderr)
        return 2
    if args.json and not Path(args.json).resolve().parent.is_dir():
        print(f"w2amsn bench: error: {args.json}: its folder does not exist", file=sys.stderr)
        return 2
    profile = PROFILES["quick" if args.quick else "full"]
    command = "w2amsn bench" + (" --quick" if args.quick else "") + (
        f" --device {args.device}" if args.device != "cpu" else "") + (
        f" --threads {args.threads}" if args.threads else "")
    if args.weights:
        command += f" --weights {args.weights}" + (f" --opt {args.opt}" if args.opt else "")
    result = run_bench(profile, device=args.device, threads=args.threads, command=command,
                       weights=args.weights, opt=args.opt)
    print(report(result))
    if args.json:
        Path(args.json).write_text(json.dumps(asdict(result), indent=1, default=str) + "\n")
    return 0
