"""``w2amsn bench``: a smoke run on tiny inputs through the real command (every row group, JSON
written, no error rows), and the target checks on made-up rows. No timed asserts (DESIGN.md
section 7): the numbers of a smoke run mean nothing, only that each part runs."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import w2amsn_plugin  # noqa: F401  (makes basicsr importable)
from basicsr.archs import build_network
from w2amsn_plugin import device_caps
from w2amsn_plugin.benchmarks import suite as bench
from w2amsn_plugin.benchmarks.results import Target
from w2amsn_plugin.benchmarks.targets import check_targets
from w2amsn_plugin.benchmarks import data_path, inference, precision, training, volume
from w2amsn_plugin.benchmarks.results import Row, guarded, markdown_table
from w2amsn_plugin.cli import w2amsn_main

# every row group on inputs small enough for a test (the numbers are meaningless)
SMOKE = bench.Profile(
    name="smoke",
    infer=inference.InferSettings(lr_size=16, warmup=0, reps=1, emulated_size=8),
    matrix_models=("W2AMSN-S",), ours_models=("EDSR",), compile_models=(),
    train=training.TrainSettings(batch=2, patch=16, warmup=0, reps=1, emulated_batch=1),
    train_models=("W2AMSN-S",),
    data=data_path.DataSettings(n_volumes=2, volume_shape=(48, 48, 16), crop=(48, 48, 8),
                                batch=2, lr_patch=16, n_batches=3),
    volume=volume.VolumeSettings(shape=(32, 32, 4)), precision_slices=1, limit_reps=1)

GROUPS = {"machine", "inference", "training", "data prep", "data path", "volume", "precision"}


@pytest.fixture(scope="module")
def smoke_json(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One smoke run through ``w2amsn bench --quick --json`` with the quick profile swapped for
    :data:`SMOKE`; the parsed JSON."""
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    saved = bench.PROFILES["quick"]
    bench.PROFILES["quick"] = SMOKE
    try:
        assert w2amsn_main(["bench", "--quick", "--json", str(out)]) == 0
    finally:
        bench.PROFILES["quick"] = saved
    return json.loads(out.read_text())


def test_smoke_run_covers_every_group_without_errors(smoke_json: dict) -> None:
    rows = smoke_json["rows"]
    assert {r["group"] for r in rows} == GROUPS
    errors = [f"{r['name']}: {r['error']}" for r in rows if r["error"]]
    assert not errors, errors


def test_smoke_json_describes_the_machine_and_its_limits(smoke_json: dict) -> None:
    machine = smoke_json["machine"]
    assert machine["cpu_model"] == device_caps.cpu_model()
    flags, isa = device_caps.cpu_flags(), machine["cpu_isa"].split(" + ")
    if "avx512f" in flags or "avx2" in flags:
        assert isa[0] == ("AVX512" if "avx512f" in flags else "AVX2")
    assert ("AMX-BF16" in isa) == ("amx_bf16" in flags) and ("AVX512-BF16" in isa) == ("avx512_bf16" in flags)
    assert machine["torch_cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert machine["cpu_native_bf16"] is device_caps.native_bf16("cpu")
    assert machine["torch"] == torch.__version__ and machine["device"] == "cpu"
    assert machine["threads"] == torch.get_num_threads()
    assert set(smoke_json["limits"]) == {"fp32", "bf16"}
    for lim in smoke_json["limits"].values():
        assert lim["gflops"] > 0 and "3x3 conv" in lim["shape"]
    assert smoke_json["profile"] == "smoke" and smoke_json["wall_seconds"] > 0


def test_smoke_inference_rows_have_time_rate_and_mfu(smoke_json: dict) -> None:
    rows = [r for r in smoke_json["rows"] if r["group"] == "inference"]
    paths = {(r["path"], r["precision"]) for r in rows if r["model"] == "W2AMSN-S"}
    assert paths == {(p, "fp32") for p in inference.ALL_PATHS} | {
        (p, "bf16") for p in inference.ALL_PATHS if p != inference.STOCK}
    assert {(r["model"], r["path"]) for r in rows if r["model"] == "EDSR"} == {("EDSR", inference.OURS)}
    for r in rows:
        if r["unavailable"]:
            continue
        assert r["seconds"] > 0 and r["throughput"] == pytest.approx(1 / r["seconds"])
        assert r["unit"] == "slices/s" and r["mfu"] > 0
        assert r["extra"]["flops_per_slice"] > 0


def test_smoke_basicsr_rows_say_what_ran(smoke_json: dict) -> None:
    basicsr_rows = [r for r in smoke_json["rows"]
                    if r["path"] in (inference.MRSR, inference.STOCK, training.BASICSR)]
    assert basicsr_rows
    for r in basicsr_rows:
        assert r["note"].startswith("ran ") and "autocast" in r["note"]


def test_smoke_training_data_and_volume_rows(smoke_json: dict) -> None:
    rows = smoke_json["rows"]
    train = [r for r in rows if r["group"] == "training"]
    assert {(r["path"], r["precision"]) for r in train} == {
        (training.BASICSR, "fp32"), (training.PLAIN_NCHW, "fp32"), (training.PLAIN_CL, "fp32"),
        (training.BASICSR, "bf16"), (training.PLAIN_CL, "bf16")}
    assert all(r["unit"] == "patches/s" for r in train if not r["unavailable"])
    prep = [r for r in rows if r["group"] == "data prep"]
    assert sorted(r["extra"]["workers"] for r in prep) == [1, 2]
    assert all(r["unit"] == "volumes/min" and r["throughput"] > 0 for r in prep)
    loader = [r for r in rows if r["group"] == "data path" and r["path"] == "IXIPairedDataset"]
    assert sorted(r["extra"]["workers"] for r in loader) == [0, 1]
    (bank,) = [r for r in rows if r["group"] == "data path" and r["path"] == data_path.BANK_PATH]
    assert bank["extra"]["bank_device"] == "cpu" and bank["extra"]["build_seconds"] > 0
    assert all(r["unit"] == "samples/s" and r["throughput"] > 0 for r in loader + [bank])
    (bank_target,) = [t for t in smoke_json["targets"] if t["name"].startswith("on-device data path")]
    step_precision = re.search(r"\((\w+) step\)", bank_target["note"])[1]
    (step,) = [r for r in train if (r["model"], r["path"], r["precision"]) ==
               ("W2AMSN-S", training.BASICSR, step_precision)]
    assert bank_target["measured"] == pytest.approx(bank["throughput"] / step["throughput"])
    assert bank_target["met"] == (bank_target["measured"] >= 5)
    (vol,) = [r for r in rows if r["group"] == "volume" and r["path"] == "super_resolve_volume"]
    (ens,) = [r for r in rows if r["group"] == "volume" and r["path"] != "super_resolve_volume"]
    assert ens["extra"]["ratio"] == pytest.approx(ens["extra"]["ensemble_seconds"]
                                                  / ens["extra"]["plain_seconds"])
    assert ens["input"] == "32x32x2" and "x a plain pass" in ens["note"]
    extra = vol["extra"]
    assert extra["output_shape"] == [128, 128, 4] and extra["slices_run"] == 4
    assert extra["peak_rss"] > extra["output_bytes"] > 0
    assert extra["peak_rss_above_output"] == extra["peak_rss"] - extra["output_bytes"]


def test_volume_peak_memory_is_the_childs_own() -> None:
    """The child's peak must not include the parent's resident size (Linux carries it into a
    spawned child's ru_maxrss)."""
    ballast = np.ones(150_000_000)  # 1.2 GB resident in this process
    row = volume.volume_row(volume.VolumeSettings(shape=(32, 32, 4)))
    assert ballast[-1] == 1.0
    assert 0 < row.extra["baseline_rss"] <= row.extra["peak_rss"] < ballast.nbytes


def test_smoke_precision_row_needs_weights(smoke_json: dict) -> None:
    (row,) = [r for r in smoke_json["rows"] if r["group"] == "precision"]
    assert "--weights" in row["unavailable"]


def test_precision_row_compares_fp32_and_bf16_on_the_sample(tmp_path: Path) -> None:
    net_opt = {"type": "W2AMSN", "num_in_ch": 1, "num_out_ch": 1, "num_feat": 4, "num_block": 1,
               "upscale": 2}
    (tmp_path / "tiny.yml").write_text(yaml.safe_dump({"scale": 2, "network_g": net_opt}))
    torch.manual_seed(0)
    net = build_network(dict(net_opt))
    torch.save({"params": net.state_dict()}, tmp_path / "net_g_latest.pth")
    row = precision.precision_row(precision.PrecisionSettings(
        weights=str(tmp_path / "net_g_latest.pth"), n_slices=2))
    assert row.ok and row.input.startswith("2 slices") and row.input.endswith("x2")
    extra = row.extra
    assert extra["psnr_fg_change_db"] == pytest.approx(extra["psnr_fg_bf16"] - extra["psnr_fg_fp32"])
    assert extra["bf16_vs_fp32_psnr_db"] > 20  # bf16 rounding, not a different network


def test_sample_slices_are_aligned_lr_hr_pairs() -> None:
    hr, lr = precision.sample_slices(3, 2)
    assert hr.shape[0] == lr.shape[0] == 3 and hr.shape[1:] == (2 * lr.shape[1], 2 * lr.shape[2])
    assert 0 <= hr.min() and hr.max() <= 1 and (hr > 0.1).mean() > 0.2  # brain slices
    assert np.allclose(lr * 65535, np.round(lr * 65535), atol=1e-2)  # 16-bit grid, as the LMDB


def test_smoke_targets_are_listed(smoke_json: dict) -> None:
    names = [t["name"] for t in smoke_json["targets"]]
    assert "whole volume x4, peak RSS above the output array" in names
    assert "IXI preparation, 2 workers" in names
    assert "data path, 1 worker, vs a W2AMSN-S training step" in names
    for t in smoke_json["targets"]:
        assert (t["met"] is None) == (t["measured"] is None), t
        if t["met"] is not None:
            assert t["met"] is _meets(t["goal"], t["measured"], t["unit"]), t


def _meets(goal: str, measured: float, unit: str) -> bool:
    """Whether ``measured`` meets a goal written as ``'>= 1.5x faster'`` or ``'< 0.02 dB ...'``
    (a dB change counts by its size; a percentage goal is on the percent value)."""
    op, number = re.match(r"(>=|<=|<|>)\s*([0-9.]+)", goal).groups()
    value = abs(measured) if unit == "dB" else measured
    return {">=": value >= float(number), "<=": value <= float(number),
            "<": value < float(number), ">": value > float(number)}[op]


# ---- target checks and table on made-up rows (no timing) ------------------------------------

def _inf(model: str, path: str, precision: str, seconds: float, mfu: float = 0.5) -> Row:
    return Row("inference", f"{model} {path} {precision}", model=model, path=path,
               precision=precision, seconds=seconds, throughput=1 / seconds, mfu=mfu)


def _targets(rows: list[Row]) -> dict[str, Target]:
    return {t.name: t for t in check_targets(rows, {}, "cpu")}


def test_targets_compare_with_the_best_plain_variant_and_stock_basicsr(monkeypatch) -> None:
    monkeypatch.setattr(device_caps, "native_bf16", lambda device="cpu": False)
    rows = [_inf("W2AMSN", inference.PLAIN_NCHW, "fp32", 3.0),
            _inf("W2AMSN", inference.PLAIN_CL, "fp32", 2.0),
            _inf("W2AMSN", inference.OURS, "fp32", 2.06, mfu=0.72),
            _inf("W2AMSN", inference.MRSR, "fp32", 2.2),
            _inf("W2AMSN", inference.STOCK, "fp32", 3.3)]
    t = _targets(rows)
    ours = t[f"{inference.OURS} vs best plain eager, fp32"]
    assert ours.measured == pytest.approx(1.03) and ours.met is True
    mrsr = t[f"{inference.MRSR} vs best plain eager, fp32"]
    assert mrsr.measured == pytest.approx(1.1) and mrsr.met is False
    stock = t[f"{inference.OURS}, auto precision (fp32 here), vs stock SRModel.test (NCHW fp32)"]
    assert stock.measured == pytest.approx(3.3 / 2.06) and stock.met is True
    assert t[f"{inference.MRSR}, auto precision (fp32 here), vs stock SRModel.test "
             "(NCHW fp32)"].met is False
    mfu = t["W2AMSN inference MFU, our path, fp32 channels_last"]
    assert mfu.measured == pytest.approx(72) and mfu.met is True
    assert t["default path never slower than fp32 (bf16 emulated)"].met is True
    # nothing measured in bf16: those targets are "not checked", not failed
    assert t[f"{inference.OURS} vs best plain eager, bf16"].met is None


def test_targets_where_bf16_is_native(monkeypatch) -> None:
    monkeypatch.setattr(device_caps, "native_bf16", lambda device="cpu": True)
    rows = [_inf("W2AMSN", inference.OURS, "fp32", 2.0), _inf("W2AMSN", inference.OURS, "bf16", 1.25),
            _inf("W2AMSN", inference.STOCK, "fp32", 2.1)]
    t = _targets(rows)
    speedup = t["bf16 speed-up, our path (native bf16)"]
    assert speedup.measured == pytest.approx(1.6) and speedup.met is False
    stock = t[f"{inference.OURS}, auto precision (bf16 here), vs stock SRModel.test (NCHW fp32)"]
    assert stock.measured == pytest.approx(2.1 / 1.25) and stock.met is True
    assert "in fp32: W2AMSN 1.05" in stock.note


def test_targets_skip_rows_that_failed_or_were_unavailable() -> None:
    broken = _inf("W2AMSN", inference.OURS, "fp32", 1.0, mfu=0.9)
    broken.error = "RuntimeError: boom"
    t = _targets([broken])
    assert t["W2AMSN inference MFU, our path, fp32 channels_last"].met is None


def test_guarded_turns_an_exception_into_an_error_row() -> None:
    def fail() -> Row:
        raise RuntimeError("first line\nsecond line")

    (row,) = guarded("inference", "x", fail, model="m")
    assert row.error == "RuntimeError: first line" and row.model == "m" and not row.ok
    table = markdown_table([row, Row("data path", "a|b", unavailable="no LMDB")])
    assert "**error**: RuntimeError: first line" in table
    assert "a\\|b" in table and "not available: no LMDB" in table


@pytest.mark.parametrize("argv, message", [
    (["--device", "tpu"], "--device must be cpu, cuda or cuda:N"),
    (["--threads", "-1"], "--threads must be >= 0"),
    (["--json", "/nonexistent/dir/out.json"], "/nonexistent/dir/out.json: its folder does not exist"),
])
def test_bad_arguments_are_one_line_errors(argv: list[str], message: str,
                                           capsys: pytest.CaptureFixture) -> None:
    assert w2amsn_main(["bench", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda_is_an_error(capsys: pytest.CaptureFixture) -> None:
    assert w2amsn_main(["bench", "--device", "cuda"]) == 2
    assert "CUDA is not available" in capsys.readouterr().err
