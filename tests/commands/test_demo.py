"""`bash scripts/demo.sh --quick`: the README's first command end to end on the shipped sample
(data prep -> basicsr train with the checkpoint chosen on the validation volume -> basicsr test
with and without self-ensemble on real scans it never saw -> summary), then a second run that redoes
neither data prep nor training."""
from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from w2amsn_plugin.data.demo_testset import scan_slices
from w2amsn_plugin.data.samples import sample_path
from w2amsn_plugin.demo.report import demo_rows, rows_markdown
from w2amsn_plugin.demo.sources import folder_sources, shipped_sources
from w2amsn_plugin.experiments import DEMO_CROP, DEMO_PLUS_SLICE_STEP, demo_eval_options, demo_train_options


def test_validation_and_test_rows_are_separate_real_volumes():
    src = shipped_sources()
    train = {str(p.resolve()) for _, p in src.train}
    val = {s.path for s in src.val}
    test = {s.path for s in src.test}
    assert not (train & val) and not (train & test) and not (val & test)
    assert {s.subject for s in src.val} == {"Colin27"} and len(src.test) == 2
    # the checkpoint the tests load is the one the validation volume chose
    train_opt = demo_train_options(False)
    assert "valset" in train_opt["datasets"]["val"]["dataroot_gt"]
    assert train_opt["val"]["best_metric"] == "psnr_fg"
    for plus in (False, True):
        opt = demo_eval_options(False, plus)
        assert opt["path"]["pretrain_network_g"].endswith("/net_g_best.pth")
        assert "testset" in opt["datasets"]["test_1"]["dataroot_gt"]


def test_a_folder_trains_on_all_but_the_last_two(tmp_path):
    for name in ("a", "b", "c", "d"):
        (tmp_path / f"{name}.nii.gz").symlink_to(sample_path("colin27_t1"))
    (tmp_path / "notes.txt").write_text("x")
    src = folder_sources(tmp_path)
    assert [p.name for _, p in src.train] == ["colin27_t1.nii.gz"] * 2  # links resolved: a, b
    assert [s.subject for s in src.val] == ["d"] and [s.subject for s in src.test] == ["c"]
    assert [subject for subject, _ in src.train] == ["IXI001-Demo-0001", "IXI002-Demo-0002"]


def test_test_rows_are_the_scans_as_acquired():
    """A 2 mm scan stays a 2 mm scan (cropped, never resampled), normalised as prepare does."""
    from w2amsn_plugin.data.ixi import load_canonical
    from w2amsn_plugin.data.normalization import normalize_intensity

    hr, indices, mm = scan_slices(sample_path("nibabel_epi"), DEMO_CROP, 2, 4.0)
    assert mm == 2.0 and hr.shape[1] % 2 == 0 and hr.shape[2] % 2 == 0
    vol = normalize_intensity(load_canonical(sample_path("nibabel_epi"))[0])[0]
    axial = np.transpose(vol, (2, 1, 0))[:, ::-1, :]  # anterior at the top
    assert hr.shape[1:] == (96, 88) and indices == list(range(0, 24, 2))  # 2.2 mm slices, every 4 mm
    np.testing.assert_array_equal(hr[0], axial[0][:, 20:108])  # 176 mm = 88 of 128 columns, centred
    hr_b0, indices_b0, _ = scan_slices(sample_path("dipy_b0"), DEMO_CROP, 2, 4.0)
    assert len(indices_b0) == 10  # thick slices: every slice that shows the head


def test_rows_mean_and_table():
    rows = [{"subject": s, "method": m, "n_slices": 4, "psnr_fg": p, "ssim_fg": 0.9,
             "bicubic_psnr_fg": b, "bicubic_ssim_fg": 0.8}
            for s, m, p, b in (("A", "W", 31.0, 30.0), ("B", "W", 25.0, 22.0), ("A", "W+", 31.5, 30.0))]
    out = demo_rows(rows, "W", "W+", ["A", "B"], {"A": "first"})
    assert [r["subject"] for r in out] == ["A", "B", "mean"]
    assert out[-1]["gain_db"] == pytest.approx(2.0) and out[0]["plus_gain_db"] == pytest.approx(1.5)
    assert np.isnan(out[1]["plus_gain_db"])
    table = rows_markdown(out)
    assert "| A | first | 4 | 30.00/0.8000 | 31.00/0.9000 | +1.00 |" in table and "| **mean** |" in table


def test_quick_demo_runs_end_to_end_and_twice(run, tmp_path):
    out = run([sys.executable, "-m", "w2amsn_plugin.cli", "demo", "--quick", "--workdir", str(tmp_path)],
              cwd=tmp_path, timeout=600)
    assert out.returncode == 0, (out.stdout + out.stderr)[-4000:]
    res = tmp_path / "results" / "demo"
    for name in ("table.md", "volumes.csv", "figure.png", "summary.json"):
        assert (res / name).is_file(), name
    summary = json.loads((res / "summary.json").read_text())
    assert summary["quick"] is True and summary["scale"] == 2
    assert summary["val_subjects"] == ["Colin27"]
    assert len(summary["train_subjects"]) == 3  # the MNI template + its coronal and sagittal reslicing
    tree = tmp_path / "datasets" / "demo" / "ixi"
    shipped = {sample_path(n).resolve() for n in ("colin27_t1", "nibabel_epi", "dipy_b0")}
    assert all(f.resolve() not in shipped for f in tree.iterdir())
    rows = summary["test_rows"]
    assert [r["subject"] for r in rows] == ["EPI-2mm", "DWI-b0-2mm", "mean"]
    for r in rows[:-1]:
        assert r["plus_n_slices"] == -(-r["n_slices"] // DEMO_PLUS_SLICE_STEP)
    assert abs(rows[-1]["gain_db"] - sum(r["gain_db"] for r in rows[:-1]) / 2) < 1e-9
    assert summary["psnr_fg_gain_over_bicubic_db"] == rows[-1]["gain_db"]
    bic = summary["metrics"]["bicubic"]
    assert 15 < bic["psnr_fg"] < 45 and 0.5 < bic["ssim_fg"] <= 1
    for method in ("W2AMSN", "W2AMSN+"):
        assert set(summary["metrics"][method]) == {"psnr_fg", "ssim_fg", "psnr", "ssim"}
    table = (res / "table.md").read_text()
    assert "| T1 | ×2 |" in table and "W2AMSN+" in table and "Bicubic" in table
    assert "| EPI-2mm |" in table and "| **mean** |" in table
    weights = tmp_path / "experiments" / "W2AMSN_demo_quick_T1_x2_a8t1_20it_B4" / "models"
    assert (weights / "net_g_best.pth").is_file() and summary["weights"].endswith("net_g_best.pth")

    again = run([sys.executable, "-m", "w2amsn_plugin.cli", "demo", "--quick", "--workdir", str(tmp_path)],
                cwd=tmp_path, timeout=600)
    assert again.returncode == 0, (again.stdout + again.stderr)[-4000:]
    assert "nothing to do" in again.stdout  # data prep not redone
    assert "test set" in again.stdout and "up to date" in again.stdout
    assert "Resuming training from epoch" in again.stdout + again.stderr
    assert json.loads((res / "summary.json").read_text())["metrics"] == summary["metrics"]


def test_demo_refuses_a_folder_with_two_volumes(run, tmp_path):
    (tmp_path / "data").mkdir()
    for name in ("colin27_t1", "mni152_2009a_t1"):
        (tmp_path / "data" / f"{name}.nii.gz").symlink_to(sample_path(name))
    out = run([sys.executable, "-m", "w2amsn_plugin.cli", "demo", "--data", str(tmp_path / "data"),
               "--workdir", str(tmp_path)], cwd=tmp_path, timeout=120)
    assert out.returncode != 0 and "at least three NIfTI volumes" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_full_demo_beats_bicubic_by_the_target(run, tmp_path):
    """The real thing (`bash scripts/test.sh -m slow`): the README demo trains on the MNI template
    (three planes, augmented patches), chooses its checkpoint on Colin27 and must beat bicubic by
    >= 1.5 dB foreground PSNR on the mean of its test rows: real 2 mm scans of other subjects,
    scanners and contrasts (docs/demo.md)."""
    out = run([sys.executable, "-m", "w2amsn_plugin.cli", "demo", "--workdir", str(tmp_path)],
              cwd=tmp_path, timeout=5400)
    assert out.returncode == 0, (out.stdout + out.stderr)[-4000:]
    summary = json.loads((tmp_path / "results" / "demo" / "summary.json").read_text())
    rows = summary["test_rows"]
    assert len(rows) == 3 and rows[-1]["subject"] == "mean"
    assert summary["target_met"] and rows[-1]["gain_db"] >= 1.5
    assert all(r["gain_db"] > 0.5 for r in rows[:-1])  # no test row left behind
