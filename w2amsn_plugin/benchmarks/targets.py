"""The speed targets of ``w2amsn bench``, checked on one run's rows:
ratios measured in the same run, never timed asserts."""
from __future__ import annotations

from typing import Any


from . import data_path, inference, training
from .results import Row, Target


__all__ = ["GIB", "GPU_STEP_TARGETS_MS", "check_targets", "find_row"]

#: a training step of the paper's batch (96 patches of 32x32 LR) on one GPU, default
#: precision, through BasicSR (eager or compiled, whichever is faster)
GPU_STEP_TARGETS_MS = {"W2AMSN": 45.0, "W2AMSN-S": 20.0}

GIB = 1 << 30


def find_row(rows: list[Row], group: str, model: str, path: str, precision: str,
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
    found = [r for p in paths if (r := find_row(rows, group, model, p, precision))]
    return min(found, key=lambda r: r.seconds) if found else None


def check_targets(rows: list[Row], machine: dict[str, Any], device: str) -> list[Target]:
    """The bench's speed targets checked on this run's rows."""
    from ..device_caps import native_bf16

    native = native_bf16(device)
    inf = [r for r in rows if r.group == "inference"]
    models = sorted({r.model for r in inf if r.path in (*inference.PLAIN_PATHS, inference.STOCK)})
    targets: list[Target] = []

    ours32 = find_row(rows, "inference", "W2AMSN", inference.OURS, "fp32")
    targets.append(Target(
        "W2AMSN inference MFU, our path, fp32 channels_last", ">= 70% of the fp32 conv limit",
        100 * ours32.mfu if ours32 else None, "%", ours32.mfu >= 0.70 if ours32 else None,
        "" if ours32 else "W2AMSN super_resolve_volume fp32 not measured"))

    ours16 = find_row(rows, "inference", "W2AMSN", inference.OURS, "bf16")
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
            pairs = {m: (find_row(rows, "inference", m, path, precision),
                         _best_plain(rows, "inference", m, inference.PLAIN_PATHS, precision))
                     for m in models}
            targets.append(_ratio_target(
                f"{path} vs best plain eager, {precision}", "<= 1.05x the time", 1.05, pairs,
                False, "row"))
    auto = "bf16" if native else "fp32"
    for path in (inference.OURS, inference.MRSR):
        pairs = {m: (find_row(rows, "inference", m, inference.STOCK, "fp32"),
                     find_row(rows, "inference", m, path, auto)) for m in models}
        t = _ratio_target(f"{path}, auto precision ({auto} here), vs stock SRModel.test "
                          "(NCHW fp32)", ">= 1.5x faster", 1.5, pairs, True, "row")
        fp32 = {m: (find_row(rows, "inference", m, inference.STOCK, "fp32"),
                    find_row(rows, "inference", m, path, "fp32")) for m in models}
        same = [f"{m} {a.seconds / b.seconds:.2f}" for m, (a, b) in fp32.items() if a and b]
        if auto != "fp32" and same:
            t.note += f"; in fp32: {', '.join(same)}"
        targets.append(t)

    train_models = sorted({r.model for r in rows if r.group == "training" and r.model})
    plain_train = (training.PLAIN_NCHW, training.PLAIN_CL)
    for precision in ("fp32", "bf16"):
        pairs = {m: (find_row(rows, "training", m, training.BASICSR, precision),
                     _best_plain(rows, "training", m, plain_train, precision)) for m in train_models}
        targets.append(_ratio_target(
            f"training step, BasicSR vs best plain loop, {precision}", "<= 1.05x the time", 1.05,
            pairs, False, "row"))
    if native:
        pairs = {m: (find_row(rows, "training", m, training.BASICSR, "fp32"),
                     find_row(rows, "training", m, training.BASICSR, "bf16")) for m in train_models}
        t = _ratio_target("training bf16 autocast speed-up (native bf16)", ">= 1.6x fp32", 1.6,
                          pairs, True, "BasicSR fp32 or bf16 row")
        plain = {m: (find_row(rows, "training", m, training.PLAIN_CL, "fp32"),
                     find_row(rows, "training", m, training.PLAIN_CL, "bf16")) for m in train_models}
        plain_ratios = [f"{m} {a.seconds / b.seconds:.2f}" for m, (a, b) in plain.items() if a and b]
        if plain_ratios:
            t.note += f"; plain loop channels_last: {', '.join(plain_ratios)}"
        targets.append(t)

    targets.append(_data_target(rows, device))
    targets.append(_data_target(rows, device, data_path.BANK_PATH))
    if device.startswith("cuda"):
        targets += [_gpu_step_target(rows, device, model, ms) for model, ms in GPU_STEP_TARGETS_MS.items()]
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


def _data_target(rows: list[Row], device: str, path: str = "IXIPairedDataset") -> Target:
    """A data path against what a W²AMSN-S training step consumes (default precision): the
    1-worker dataloader, or the on-device slice bank (``path=data_path.BANK_PATH``)."""
    from ..device_caps import resolve_bf16

    bank = path == data_path.BANK_PATH
    name = ("on-device data path (slice bank)" if bank else "data path, 1 worker") + \
        ", vs a W2AMSN-S training step"
    loader = next((r for r in rows if r.group == "data path" and r.path == path and r.ok
                   and (bank or r.extra.get("workers") == 1)), None)
    precision = "bf16" if resolve_bf16(None, device) else "fp32"
    step = (find_row(rows, "training", "W2AMSN-S", training.BASICSR, precision)
            or find_row(rows, "training", "W2AMSN-S", training.BASICSR, "fp32"))
    if loader is None or step is None:
        return Target(name, ">= 5x", None, "x", None,
                      f"{'slice bank' if bank else 'data path (1 worker)'} or W2AMSN-S BasicSR "
                      "training row missing")
    ratio = loader.throughput / step.throughput
    return Target(name, ">= 5x", ratio, "x", ratio >= 5,
                  f"{loader.throughput:.0f} samples/s vs {step.throughput:.2f} patches/s "
                  f"({step.precision} step)")


def _gpu_step_target(rows: list[Row], device: str, model: str, limit_ms: float) -> Target:
    """The fastest BasicSR training step of ``model`` (eager or any compile mode) in the default
    precision, against the GPU training-step target."""
    from ..device_caps import resolve_bf16

    precision = "bf16" if resolve_bf16(None, device) else "fp32"
    steps = [r for r in rows if r.group == "training" and r.model == model and r.ok
             and r.path.startswith(training.BASICSR) and r.precision == precision]
    name = f"{model} training step, batch 96, {precision}, GPU"
    if not steps:
        return Target(name, f"<= {limit_ms:g} ms", None, "ms", None, "training rows not measured")
    best = min(steps, key=lambda r: r.seconds)
    return Target(name, f"<= {limit_ms:g} ms", best.seconds * 1e3, "ms", best.seconds * 1e3 <= limit_ms,
                  f"fastest: {best.path}")
