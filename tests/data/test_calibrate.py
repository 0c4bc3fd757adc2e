"""``w2amsn calibrate``: bicubic scores under each protocol reading against Table III's Bicubic
column, ranked by PSNR and SSIM together, on a small fake IXI tree (real anatomy, IXI's stored
orientations)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from processes import child_pids
import torch

import w2amsn_plugin  # noqa: F401,I001  (compat before basicsr)
from w2amsn_plugin.cli import w2amsn_main
from w2amsn_plugin.data.calibration import (SHIPPED, TABLE_III_BICUBIC, Reading, rank, readings,
                                            volume_sums)
from w2amsn_plugin.data.degradations import bicubic_downscale, bicubic_upsample
from w2amsn_plugin.data.fake_ixi import make_fake_ixi_tree
from w2amsn_plugin.data.ixi import crop_stack, load_canonical
from w2amsn_plugin.data.normalization import normalize_intensity
from w2amsn_plugin.data.planes import plane_stack
from w2amsn_plugin.data.png16 import quantize
from w2amsn_plugin.metrics import (calculate_psnr_fg, calculate_psnr_mr, calculate_ssim_fg,
                                   calculate_ssim_mr)

CROP = (48, 60, 3)  # width, height, slices
FIELDS = ("plane", "percentile", "bits", "border", "region", "channel", "normalisation", "slices")


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ixi")
    make_fake_ixi_tree(root, 3, ("T1", "T2"), shape=(64, 72, 20), voxel_mm=(1.0, 1.0, 1.2))
    return root


@pytest.fixture(scope="module")
def t1_sums(tree: Path) -> tuple[Path, dict]:
    path = sorted(tree.glob("*-T1.nii.gz"))[0]
    return path, volume_sums(path, [2], crop=CROP)


def test_table_iii_bicubic_column_is_the_papers():
    assert TABLE_III_BICUBIC["T1"][2] == (33.80, 0.9525)
    assert TABLE_III_BICUBIC["PD"][4] == (29.13, 0.8799)
    assert TABLE_III_BICUBIC["T2"][3] == (29.80, 0.9093)
    assert sum(len(v) for v in TABLE_III_BICUBIC.values()) == 9


def test_reading_count_per_modality(tree: Path, t1_sums):
    _, sums = t1_sums
    # T1 is acquired sagittally: two planes; 3 normalisations x 2 bits x 3 borders x 2 regions x
    # 2 channels x 2 slice choices = 144 per plane
    assert len({r for r, _ in sums}) == 288 == len(readings())
    t2 = volume_sums(sorted(tree.glob("*-T2.nii.gz"))[0], [2], crop=CROP)
    assert len({r for r, _ in t2}) == 144  # the acquisition plane of IXI T2 is the axial one
    assert {r.plane for r, _ in t2} == {"acquisition"}


def test_scores_equal_the_plugins_metrics_slice_by_slice(t1_sums):
    path, sums = t1_sums
    norm = normalize_intensity(load_canonical(path)[0], 99.5)[0]
    stack, _ = crop_stack(plane_stack(norm, 0), CROP[1], CROP[0], CROP[2])  # T1: sagittal
    hr = quantize(stack, 16) / 65535.0
    lr = quantize(np.clip(bicubic_downscale(hr, 2), 0, 1), 16) / 65535.0
    sr = quantize(np.clip(bicubic_upsample(torch.from_numpy(lr), 2).numpy(), 0, 1), 16) / 65535.0
    for border, crop_border in (("scale", 2), ("0", 0), ("scale+6", 8)):
        for region, psnr_fn, ssim_fn in (("whole", calculate_psnr_mr, calculate_ssim_mr),
                                         ("foreground", calculate_psnr_fg, calculate_ssim_fg)):
            psnr = [psnr_fn(s, g, crop_border=crop_border) for s, g in zip(sr, hr)]
            ssim = [ssim_fn(s, g, crop_border=crop_border) for s, g in zip(sr, hr)]
            acc = sums[(Reading("acquisition", "per volume", 99.5, 16, border, region, "gray", "head"), 2)]
            assert acc[0] / acc[1] == pytest.approx(np.nanmean(psnr), abs=1e-9)
            assert acc[2] / acc[3] == pytest.approx(np.nanmean(ssim), abs=1e-9)
    # the Y channel of an RGB copy: errors scaled by 219/255 (+1.32 dB), SSIM on 16/255 + 219/255 x
    y = sums[(Reading("acquisition", "per volume", 99.5, 16, "0", "whole", "y_of_rgb", "head"), 2)]
    g = sums[(Reading("acquisition", "per volume", 99.5, 16, "0", "whole", "gray", "head"), 2)]
    assert y[0] / y[1] - g[0] / g[1] == pytest.approx(20 * np.log10(255 / 219), abs=1e-6)
    ssim_y = [calculate_ssim_mr(s * 219 / 255 + 16 / 255, h * 219 / 255 + 16 / 255) for s, h in zip(sr, hr)]
    assert y[2] / y[3] == pytest.approx(np.mean(ssim_y), abs=1e-9)


def test_per_slice_normalisation_maps_each_slice_to_0_1(t1_sums):
    path, sums = t1_sums
    norm = normalize_intensity(load_canonical(path)[0], 100.0)[0]
    stack, _ = crop_stack(plane_stack(norm, 0), CROP[1], CROP[0], CROP[2], "central")
    lo, hi = stack.min(axis=(1, 2), keepdims=True), stack.max(axis=(1, 2), keepdims=True)
    hr = quantize((stack - lo) / (hi - lo), 16) / 65535.0
    lr = quantize(np.clip(bicubic_downscale(hr, 2), 0, 1), 16) / 65535.0
    sr = quantize(np.clip(bicubic_upsample(torch.from_numpy(lr), 2).numpy(), 0, 1), 16) / 65535.0
    acc = sums[(Reading("acquisition", "per slice", None, 16, "0", "whole", "gray", "central"), 2)]
    assert acc[0] / acc[1] == pytest.approx(np.mean([calculate_psnr_mr(s, h) for s, h in zip(sr, hr)]),
                                            abs=1e-9)


def _parts(values: dict[Reading, list[tuple[float, float]]]) -> list[dict]:
    """Per-volume sums of one slice per volume with the given (PSNR, SSIM) per reading."""
    n = len(next(iter(values.values())))
    return [{(r, 2): [v[i][0], 1, v[i][1], 1] for r, v in values.items()} for i in range(n)]


def test_rank_combines_psnr_and_ssim_and_reports_ties():
    a, b, c = (Reading("acquisition", "per volume", 99.5, bits, "0", "whole", "gray", "head")
               for bits in (16, 8, 12))
    paper = TABLE_III_BICUBIC["T1"][2]
    # a: PSNR exact but SSIM 0.0050 off (50 units); b: PSNR 0.20 dB off, SSIM exact (20 units):
    # by PSNR alone a would win, together b is closer
    values = {a: [(paper[0], paper[1] - 0.005)] * 3, b: [(paper[0] + 0.2, paper[1])] * 3,
              c: [(paper[0] + 0.2 + 0.004, paper[1])] * 3}
    rows = rank(_parts(values), "T1", [2])
    assert [r["bits"] for r in rows] == [8, 12, 16]
    assert rows[0]["distance"] == pytest.approx(20.0) and rows[2]["distance"] == pytest.approx(50.0)
    # identical volumes: no sampling spread, the margin is the paper's rounding (1 unit)
    assert rows[0]["margin"] == pytest.approx(1.0)
    assert [r["tie"] for r in rows] == [True, True, False]  # 0.004 dB = 0.4 units behind: a tie
    # volumes that differ widen the margin by 2 standard errors of a 70-subject split's mean
    spread = {r: [(p + d, s) for (p, s), d in zip(v, (-1.0, 0.0, 1.0))] for r, v in values.items()}
    rows = rank(_parts(spread), "T1", [2])
    se = 1.0 * np.sqrt(1 / 3 + 1 / 70)
    assert rows[0]["margin"] == pytest.approx(1.0 + 2 * se / 0.01)
    assert all(r["tie"] for r in rows)


def test_cli_prints_the_ranking_and_what_is_settled(tree: Path, tmp_path: Path, capsys):
    out = tmp_path / "cal.json"
    args = ["calibrate", "--ixi-root", str(tree), "--modality", "T1", "--scales", "2", "4",
            "--n-train", "0", "--n-test", "2", "--n-val", "0", "--crop", *map(str, CROP[:2]), "3",
            "--workers", "1", "--no-progress", "--json", str(out)]
    assert w2amsn_main(args) == 0
    text = capsys.readouterr().out
    assert "| **paper, Table III** | 33.80/0.9525 | 28.28/0.8312 |" in text
    report = json.loads(out.read_text())
    rows = report["readings"]
    assert len(rows) == 288
    for row in rows:
        assert {*FIELDS, "distance_psnr_db", "distance_ssim", "distance", "tie", "margin"} <= set(row)
        assert row["channel"] in ("gray", "y_of_rgb")
        assert row["normalisation"] in ("per volume", "per slice")
        assert row["border"] in ("0", "scale", "scale+6") and row["slices"] in ("head", "central")
    assert report["closest"] == rows[0]["reading"] and f"closest: {rows[0]['reading']}" in text
    distances = [r["distance"] for r in rows]
    assert distances == sorted(distances)
    assert report["ties"] == [r["reading"] for r in rows if r["tie"]]
    shipped = [r for r in rows if r["shipped"]]
    assert len(shipped) == 1 and shipped[0]["reading"] == SHIPPED.label
    assert f"| {SHIPPED.label} * |" in text
    for field, values in report["identified"].items():
        assert (f"settled:     {field} = {values[0]}" if len(values) == 1
                else f"not settled: {field}") in text
    assert len(report["test_subjects"]) == 2


def test_bad_options_are_one_line(tree: Path, capsys):
    base = ["calibrate", "--ixi-root", str(tree), "--modality", "T1", "--no-progress"]
    assert w2amsn_main(base + ["--scales", "5"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Table III has scales 2, 3 and 4 only" in err[0]
    assert w2amsn_main(base) == 2  # 3 subjects, the paper's split asks for 576
    assert "has 3 subjects, but the split asks for 576" in capsys.readouterr().err


def test_ctrl_c_with_workers_is_one_line_and_exit_130(tree: Path, tmp_path: Path):
    cmd = [sys.executable, "-m", "w2amsn_plugin.cli", "calibrate", "--ixi-root", str(tree),
           "--modality", "T1", "--scales", "2", "--n-train", "0", "--n-test", "3", "--n-val", "0",
           "--crop", *map(str, CROP[:2]), "3", "--workers", "2", "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not child_pids(proc.pid) and proc.poll() is None:
        time.sleep(0.05)
    time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGINT)  # a terminal's Ctrl-C reaches the whole process group
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert err.strip().splitlines()[-1].startswith("w2amsn calibrate: interrupted"), err
