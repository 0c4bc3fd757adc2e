"""``w2amsn self-sr`` end to end: refused inputs (one line, exit 2, nothing written), the plan
(``--dry-run``), a short real run on a shipped sample made thick (output overlays the input, the
sidecar says what was learned), and (slow) a run at the default budget that beats cubic."""
from __future__ import annotations

import json
import re
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import yaml

from w2amsn_plugin.cli import w2amsn_main
from w2amsn_plugin.inference.geometry import voxel_corners_world
from w2amsn_plugin.selfsr.in_plane import DEFAULT_DEGRADATION
from w2amsn_plugin.selfsr.profile_estimate import MAX_MISFIT_DB

SAMPLES = Path(__file__).resolve().parents[2] / "w2amsn_plugin" / "sample_data"
COLIN = SAMPLES / "colin27_t1.nii.gz"


def _save(path: Path, data: np.ndarray, zooms=(1.0, 1.0, 1.0)) -> Path:
    affine = np.diag([*zooms[:3], 1.0]) if len(zooms) >= 3 else np.eye(4)
    nib.save(nib.Nifti1Image(np.asarray(data, dtype=np.float32), affine), path)
    return path


def _run(capsys, *args: str) -> tuple[int, str, str]:
    code = w2amsn_main(["self-sr", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("case,match", [
    ("isotropic", "isotropic .* nothing to do"),
    ("2d", "3-D"),
    ("4d", "3-D"),
    ("factor", "below 1.2"),
    ("missing", "not found"),
    ("constant", "constant"),
])
def test_refused_inputs(tmp_path, capsys, case, match):
    rng = np.random.default_rng(0)
    src = {"isotropic": lambda: COLIN,
           "2d": lambda: _save(tmp_path / "a.nii.gz", rng.random((32, 32))),
           "4d": lambda: _save(tmp_path / "a.nii.gz", rng.random((16, 16, 8, 2)), (1, 1, 3)),
           "factor": lambda: _save(tmp_path / "a.nii.gz", rng.random((16, 16, 8)), (1, 1, 1.1)),
           "missing": lambda: tmp_path / "nope.nii.gz",
           "constant": lambda: _save(tmp_path / "a.nii.gz", np.full((32, 32, 12), 7.0), (1, 1, 4))}[case]()
    code, out, err = _run(capsys, "-i", src, "-o", tmp_path / "out.nii.gz")
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("w2amsn self-sr: error: ")
    assert re.search(match, err)
    assert not (tmp_path / "out.nii.gz").exists() and not (tmp_path / ".out.nii.gz.self-sr").exists()


def test_bad_options(tmp_path, capsys):
    src = _save(tmp_path / "a.nii.gz", np.ones((16, 16, 8)), (1, 1, 3))
    for args, match in ((["--mode", "in-plane"], "--scale"), (["--iters", "0"], "--iters"),
                        (["--slice-thickness", "-1"], "--slice-thickness"),
                        (["--init", tmp_path / "none.pth"], "not found"),
                        (["--degradation", "kspace"], "--mode in-plane")):
        code, _, err = _run(capsys, "-i", src, "-o", tmp_path / "o.nii.gz", *args)
        assert code == 2 and match in err and err.count("\n") == 1


def test_dry_run_plan_non_integer(tmp_path, capsys):
    """4.8 mm slices over 1 mm pixels: network x5, 20 slices -> 96 output voxels, nothing trained."""
    src = _save(tmp_path / "a.nii.gz", np.random.default_rng(0).random((32, 20, 28)), (1.0, 4.8, 1.0))
    code, out, _ = _run(capsys, "-i", src, "-o", tmp_path / "o.nii.gz", "--dry-run",
                        "--slice-thickness", "3")
    plan = json.loads(out)
    assert code == 0 and plan["coarse_axis"] == 1 and plan["network_factor"] == 5
    assert plan["factor"] == pytest.approx(4.8) and plan["geometry"]["out_shape"] == [32, 96, 28]
    assert plan["slice_profile"]["thickness_mm"] == 3.0
    assert not (tmp_path / "o.nii.gz").exists()
    code, out, _ = _run(capsys, "-i", src, "-o", tmp_path / "o.nii.gz", "--dry-run", "--profile", "mixed")
    profile = json.loads(out)["slice_profile"]
    assert code == 0 and profile["kind"] == "mixed" and profile["thickness_mm"] == pytest.approx(4.8)


def _thick_colin(tmp_path: Path, size=(40, 48, 48), factor=4, profile="rect") -> tuple[Path, nib.Nifti1Image]:
    from w2amsn_plugin.selfsr.evaluation import make_thick

    img = nib.load(COLIN)
    c = [n // 2 for n in img.shape]
    box = tuple(slice(ci - s // 2, ci - s // 2 + s) for ci, s in zip(c, size))
    vol = np.asarray(img.dataobj, dtype=np.float32)[box]
    affine = img.affine.copy()
    affine[:3, 3] = nib.affines.apply_affine(img.affine, [b.start for b in box])
    thick = make_thick(vol, affine, 2, factor, profile)
    path = tmp_path / "thick.nii.gz"
    nib.save(nib.Nifti1Image(thick.data, thick.affine), path)
    return path, nib.Nifti1Image(thick.truth, thick.truth_affine)


def test_short_real_run_overlays_the_input(tmp_path, capsys):
    """Two iterations on a Colin27 crop made 4 mm thick: the command writes a volume on the 1 mm
    grid with the input's field of view and orientation, and a sidecar of what it learned."""
    src, truth = _thick_colin(tmp_path)
    out_path = tmp_path / "iso.nii.gz"
    code, _, err = _run(capsys, "-i", src, "-o", out_path, "--iters", "2", "--workdir", tmp_path / "w")
    assert code == 0, err
    out, inp = nib.load(out_path), nib.load(src)
    assert out.shape == truth.shape == (40, 48, 48)
    assert np.allclose(voxel_corners_world(out.affine, out.shape), voxel_corners_world(inp.affine, inp.shape))
    assert np.allclose(out.affine, truth.affine, atol=1e-5)
    assert np.isfinite(out.get_fdata()).all()
    side = json.loads(out_path.with_name("iso.json").read_text())
    assert side["factor"] == 4 and side["network_factor"] == 4 and side["iterations"] == 2
    assert side["budget_minutes"] is None and isinstance(side["bf16"], bool)
    # --profile auto (the default): this crop is too small for the spectra to fit any width
    # (12 slices), so a Gaussian as thick as the spacing
    estimate = side["slice_profile_estimate"]
    assert estimate["kind"] == "gaussian" and estimate["misfit_db"] > MAX_MISFIT_DB and not estimate["fits"]
    assert side["slice_profile"]["kind"] == "gaussian" and side["slice_profile"]["fwhm_mm"] == 4
    for key in ("psnr_fg", "interpolation_psnr_fg", "gain_db"):
        assert np.isfinite(side["held_out"][key])
    assert np.isfinite(side["self_consistency_psnr_fg"]) and side["network"]["upscale_axis"] == "rows"
    assert Path(side["weights"]).is_file()
    # an existing output is refused before any work
    code, _, err = _run(capsys, "-i", src, "-o", out_path, "--iters", "2")
    assert code == 2 and "exists" in err


def test_relative_paths_as_in_the_readme(tmp_path, capsys, monkeypatch):
    """``w2amsn self-sr -i thick.nii.gz -o iso.nii.gz`` from the scan's folder: relative input and
    output, the default workdir beside the output (BasicSR trains with that folder as its cwd)."""
    _thick_colin(tmp_path)
    monkeypatch.chdir(tmp_path)
    code, _, err = _run(capsys, "-i", "thick.nii.gz", "-o", "iso.nii.gz", "--iters", "1")
    assert code == 0, err
    assert nib.load(tmp_path / "iso.nii.gz").shape == (40, 48, 48)
    side = json.loads((tmp_path / "iso.json").read_text())
    assert Path(side["weights"]).is_absolute() and Path(side["weights"]).is_file()
    assert Path(side["workdir"]) == tmp_path / ".iso.nii.gz.self-sr"


def test_one_volume_stored_as_4d_is_a_3d_scan(tmp_path, capsys):
    """A scan saved with a 4th axis of length 1 (as some converters write one volume) is planned
    and run as the 3-D scan it is; the output is 3-D on the refined grid."""
    src, truth = _thick_colin(tmp_path)
    inp = nib.load(src)
    four = _save(tmp_path / "four.nii.gz", np.asarray(inp.dataobj)[..., None], (1.0, 1.0, 4.0))
    code, out, err = _run(capsys, "-i", four, "-o", tmp_path / "o.nii.gz", "--dry-run")
    assert code == 0, err
    assert json.loads(out)["geometry"]["out_shape"] == [40, 48, 48]
    code, _, err = _run(capsys, "-i", four, "-o", tmp_path / "o.nii.gz", "--iters", "1",
                        "--workdir", tmp_path / "w")
    assert code == 0, err
    assert nib.load(tmp_path / "o.nii.gz").shape == truth.shape == (40, 48, 48)


@pytest.mark.slow
def test_default_budget_beats_cubic(tmp_path):
    """The default recipe on a Colin27 crop made 4 mm thick (Gaussian profile) beats cubic
    B-spline interpolation along the coarse axis by more than 1 dB (foreground PSNR)."""
    from w2amsn_plugin.selfsr import SelfSRSettings, run_self_sr
    from w2amsn_plugin.selfsr.evaluation import cubic_baseline, score_volume

    src, truth = _thick_colin(tmp_path, size=(96, 112, 96), profile="gaussian")
    out, record = run_self_sr(src, tmp_path / "o.nii.gz", SelfSRSettings(workdir=tmp_path / "w"),
                              progress=False)
    thick = nib.load(src).get_fdata(dtype=np.float32)
    truth_data = truth.get_fdata(dtype=np.float32)
    ours = score_volume(out, truth_data, 2)["psnr_fg"]
    cubic = score_volume(cubic_baseline(thick, 2, truth_data.shape[2]), truth_data, 2)["psnr_fg"]
    assert ours > cubic + 1.0, (ours, cubic)
    assert record["held_out"]["gain_db"] > 1.0


def test_minutes_become_training_seconds():
    """--minutes: the time already spent, the start-up reserve and the probe's inference estimate
    come off the budget; training gets the rest, and the iterations expected in it are that
    divided by the loop's step (the probe's times the loop overhead)."""
    from w2amsn_plugin.selfsr.budget import MIN_ITERATIONS, plan_minutes, step_seconds
    from w2amsn_plugin.selfsr.experiment import self_sr_options

    opt = self_sr_options("t", {"volume": "x.npy", "spacing": [1, 1, 4]}, [3], 4)
    step = step_seconds(opt)
    assert 0 < step < 30
    short, long = (plan_minutes(m, opt, 10_000, step=step) for m in (2.0, 4.0))
    assert MIN_ITERATIONS <= short.iterations < long.iterations and short.seconds < long.seconds
    # 5 minutes at 1 s a step, no inference: 270 s left after the reserve, 1.1 s per iteration
    plan = plan_minutes(5.0, opt, 0, step=1.0)
    assert plan.seconds == pytest.approx(270) and plan.iterations == 245 and plan.step == 1.0
    # inference costs a third of a step per training batch's worth of LR pixels: 30 s here
    train = opt["datasets"]["train"]
    batch_pixels = train["batch_size_per_gpu"] * (train["gt_size"] // 4) * train["gt_size"]
    assert plan_minutes(5.0, opt, 90 * batch_pixels, step=1.0).seconds == pytest.approx(240)
    assert plan_minutes(5.0, opt, 0, step=1.0, spent=60).seconds == pytest.approx(210)  # e.g. reading
    tiny = plan_minutes(0.01, opt, 10**9, step=1.0)  # inference alone exceeds it
    assert tiny.iterations == MIN_ITERATIONS and tiny.seconds == pytest.approx(MIN_ITERATIONS * 1.1)


def test_a_time_budget_trains_for_its_seconds():
    """The options of a time budget: BasicSR's TimedCosineLR over the seconds, the iteration cap
    ITERATION_CAP times the expected iterations, validation and checkpoints spaced by those."""
    from w2amsn_plugin.selfsr.experiment import DEFAULT_RECIPE, ITERATION_CAP, self_sr_options
    from dataclasses import replace

    opt = self_sr_options("t", {"volume": "x.npy", "spacing": [1, 1, 4]}, [3], 4,
                          replace(DEFAULT_RECIPE, total_iter=500), seconds=123.0)
    assert opt["train"]["scheduler"] == {"type": "TimedCosineLR", "seconds": 123.0,
                                         "eta_min": DEFAULT_RECIPE.lr * 0.01}
    assert opt["train"]["total_iter"] == ITERATION_CAP * 500 and opt["val"]["val_freq"] == 100
    assert opt["datasets"]["train"]["samples_per_epoch"] == DEFAULT_RECIPE.batch * ITERATION_CAP * 500
    fixed = self_sr_options("t", {"volume": "x.npy", "spacing": [1, 1, 4]}, [3], 4,
                            replace(DEFAULT_RECIPE, total_iter=500))
    assert fixed["train"]["total_iter"] == 500
    assert fixed["train"]["scheduler"]["type"] == "CosineAnnealingRestartLR"


def test_default_budget_is_minutes(tmp_path, capsys):
    """Without --iters the plan is the recipe's wall-time budget (iterations decided on the
    machine by the probe); --iters overrides it."""
    from w2amsn_plugin.selfsr.experiment import DEFAULT_RECIPE

    src = _save(tmp_path / "a.nii.gz", np.random.default_rng(0).random((32, 32, 8)), (1.0, 1.0, 4.0))
    code, out, _ = _run(capsys, "-i", src, "-o", tmp_path / "o.nii.gz", "--dry-run")
    plan = json.loads(out)
    assert code == 0 and plan["minutes"] == DEFAULT_RECIPE.minutes and plan["iterations"] is None
    assert f"_{DEFAULT_RECIPE.minutes:g}min_" in plan["experiment"]
    code, out, _ = _run(capsys, "-i", src, "-o", tmp_path / "o.nii.gz", "--dry-run", "--iters", "7")
    plan = json.loads(out)
    assert code == 0 and plan["minutes"] is None and plan["iterations"] == 7


def test_rerun_of_a_budget_resumes_its_seconds_and_init_warm_starts(tmp_path, capsys):
    """A time budget trains for the seconds it planned (the sidecar says how many iterations fit
    them); a rerun with the same --workdir resumes that plan from its newest checkpoint (no new
    probe); --init starts a new run from the weights; end to end through the command."""
    src, _ = _thick_colin(tmp_path, size=(24, 32, 32))
    work = tmp_path / "w"
    budget = ("--minutes", "0.01", "--workdir", work)
    code, _, err = _run(capsys, "-i", src, "-o", tmp_path / "a.nii.gz", *budget)
    assert code == 0, err
    side = json.loads((tmp_path / "a.json").read_text())
    assert side["budget_minutes"] == 0.01 and side["train_budget_seconds"] > 0
    assert side["probe_step_seconds"] > 0
    assert side["iterations"] >= 1 and "about" in err and "of training left" in err
    options = yaml.safe_load(Path(side["options"]).read_text())
    assert options["train"]["scheduler"]["type"] == "TimedCosineLR"
    assert options["train"]["scheduler"]["seconds"] == side["train_budget_seconds"]
    code, _, err = _run(capsys, "-i", src, "-o", tmp_path / "again.nii.gz", *budget)
    assert code == 0, err
    assert "as first planned" in err
    again = json.loads((tmp_path / "again.json").read_text())
    assert again["train_budget_seconds"] == side["train_budget_seconds"]
    assert again["probe_step_seconds"] is None  # no new probe
    # resumed from the newest checkpoint with the seconds it had left: about as many iterations
    # as the first run in all, not that many more
    freq = options["logger"]["save_checkpoint_freq"]
    assert side["iterations"] - freq <= again["iterations"] <= side["iterations"] + freq + 2
    code, _, err = _run(capsys, "-i", src, "-o", tmp_path / "b.nii.gz", "--iters", "2",
                        "--init", side["weights"], "--workdir", tmp_path / "w2")
    assert code == 0, err
    side_b = json.loads((tmp_path / "b.json").read_text())
    assert side_b["init"] == side["weights"] and side_b["network"]["num_feat"] == side["network"]["num_feat"]
    assert side_b["iterations"] == 2 and side_b["train_budget_seconds"] is None
    assert side_b["probe_step_seconds"] is None
    options = (Path(side_b["options"])).read_text()
    assert side["weights"] in options  # BasicSR's path.pretrain_network_g


@pytest.mark.parametrize("degradation", [None, "bicubic"])
def test_in_plane_mode_end_to_end(tmp_path, capsys, degradation):
    """--mode in-plane --scale 2 writes a volume twice as fine in the slice plane, on the same
    field of view, with the sidecar's degradation (the default or --degradation's)."""
    src, _ = _thick_colin(tmp_path, size=(32, 32, 24))
    out_path = tmp_path / "sr.nii.gz"
    chosen = ["--degradation", degradation] if degradation else []
    code, _, err = _run(capsys, "-i", src, "-o", out_path, "--mode", "in-plane", "--scale", "2",
                        "--iters", "2", "--workdir", tmp_path / "w", *chosen)
    assert code == 0, err
    out, inp = nib.load(out_path), nib.load(src)
    assert out.shape == (inp.shape[0] * 2, inp.shape[1] * 2, inp.shape[2])
    assert np.allclose(voxel_corners_world(out.affine, out.shape), voxel_corners_world(inp.affine, inp.shape))
    side = json.loads(out_path.with_name("sr.json").read_text())
    assert side["mode"] == "in-plane" and side["slice_profile"] is None
    assert side["degradation"] == (degradation or DEFAULT_DEGRADATION)
    datasets = yaml.safe_load(Path(side["options"]).read_text())["datasets"]
    assert datasets["train"]["degradation"] == datasets["val"]["degradation"] == side["degradation"]
    assert side["network"]["upscale_axis"] == "both" and np.isfinite(side["held_out"]["gain_db"])


@pytest.mark.parametrize("zooms,axis", [((1.0, 1.0, 1.0), 2), ((2.0, 2.0, 3.0), 2), ((3.0, 1.0, 1.0), 0)])
def test_in_plane_plan_picks_the_slice_axis(tmp_path, capsys, zooms, axis):
    """In-plane mode refines the plane normal to the largest spacing (the last axis when tied)."""
    src = _save(tmp_path / "a.nii.gz", np.ones((32, 32, 32)), zooms)
    code, out, _ = _run(capsys, "-i", src, "-o", tmp_path / "o.nii.gz", "--mode", "in-plane",
                        "--scale", "2", "--dry-run")
    plan = json.loads(out)
    assert code == 0 and plan["coarse_axis"] == axis and plan["network_factor"] == 2
    assert plan["slice_profile"] is None and plan["degradation"] == DEFAULT_DEGRADATION
