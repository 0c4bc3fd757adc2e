"""The inference library is what ``w2amsn infer`` runs: ``super_resolve_file`` writes the same
voxels, header and sidecar as the command (run as a user runs it, in a subprocess), and
``super_resolve_image`` gives the same voxels from an image in memory; docs/inference.md's
"From Python" recipe is that call."""
from __future__ import annotations

import json
import re
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
import yaml

from conftest import run_cmd
from w2amsn_plugin.inference import InferenceSettings, plan_file, read_model, super_resolve_file
from w2amsn_plugin.inference import super_resolve_image

REPO = Path(__file__).resolve().parents[2]
TINY = {"type": "W2AMSN", "num_feat": 4, "num_block": 1, "upscale": 2}
#: record keys that differ between two runs of the same job (time, how it was called, where)
_PER_RUN = ("created", "command_line", "wall_seconds", "output")


@pytest.fixture(scope="module")
def job(tmp_path_factory) -> dict[str, Path]:
    """A non-canonical (axes permuted and flipped) 28x9x22 volume with a zero background, and an
    experiment with tiny random x2 weights."""
    root = tmp_path_factory.mktemp("library")
    rng = np.random.default_rng(1)
    vol = np.zeros((28, 9, 22), np.float32)
    vol[4:24, 2:8, 3:19] = rng.random((20, 6, 16)) * 300 + 50
    affine = np.array([[0, 0, -1.2, 10], [-0.9, 0, 0, 20], [0, 2.0, 0, -5], [0, 0, 0, 1]])
    path = root / "lr.nii.gz"
    nib.save(nib.Nifti1Image(vol, affine), path)
    exp = root / "exp"
    (exp / "models").mkdir(parents=True)
    (exp / "exp.yml").write_text(yaml.safe_dump({"name": "exp", "scale": 2, "network_g": TINY}))
    from w2amsn_plugin.archs import W2AMSN

    torch.manual_seed(0)
    weights = exp / "models" / "net_g_latest.pth"
    torch.save({"params": W2AMSN(num_feat=4, num_block=1, upscale=2).state_dict()}, weights)
    return {"input": path, "weights": weights, "root": root}


def _same_record(a: dict, b: dict) -> None:
    assert {k: v for k, v in a.items() if k not in _PER_RUN} == \
        {k: v for k, v in b.items() if k not in _PER_RUN}
    assert {k: v for k, v in a["output"].items() if k not in ("path", "files", "sidecar")} == \
        {k: v for k, v in b["output"].items() if k not in ("path", "files", "sidecar")}


def test_library_call_writes_what_the_command_writes(job):
    """Voxel for voxel, header and sidecar; the command's stderr (a pipe, not a terminal) has no
    progress bar, and its sidecar records its command line."""
    cmd_out = job["root"] / "cmd.nii.gz"
    proc = run_cmd(["w2amsn", "infer", "-i", str(job["input"]), "-o", str(cmd_out), "-w",
                    str(job["weights"]), "--no-bf16"], cwd=job["root"], timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "\r" not in proc.stderr and "super-resolving" not in proc.stderr
    lib_out = job["root"] / "lib.nii.gz"
    result = super_resolve_file(job["input"], lib_out, job["weights"], bf16=False)
    cmd_img, lib_img = nib.load(cmd_out), nib.load(lib_out)
    assert np.array_equal(np.asanyarray(cmd_img.dataobj), np.asanyarray(lib_img.dataobj))
    assert cmd_img.header.get_data_dtype() == lib_img.header.get_data_dtype()
    for key in ("descrip", "qform_code", "sform_code", "pixdim", "dim", "cal_min", "cal_max"):
        assert np.array_equal(cmd_img.header[key], lib_img.header[key]), key
    np.testing.assert_array_equal(cmd_img.affine, lib_img.affine)
    cmd_rec = json.loads((job["root"] / "cmd.json").read_text())
    lib_rec = json.loads((job["root"] / "lib.json").read_text())
    assert lib_rec == json.loads(json.dumps(result.record))
    _same_record(cmd_rec, lib_rec)
    assert cmd_rec["command_line"][1:] == ["infer", "-i", str(job["input"]), "-o", str(cmd_out),
                                           "-w", str(job["weights"]), "--no-bf16"]
    assert lib_rec["command_line"] is None
    # from memory: the same voxels, and the record without paths
    img = super_resolve_image(nib.load(job["input"]), job["weights"], bf16=False)
    assert np.array_equal(np.asanyarray(img.dataobj), np.asanyarray(lib_img.dataobj))
    np.testing.assert_array_equal(img.affine, lib_img.affine)


def test_library_is_not_the_naive_axis2_loop(job):
    """The upright slicing matters: running the engine on the stored array's last axis (the
    old "From Python" recipe) gives other values, so the equality above is not vacuous."""
    from w2amsn_plugin.inference import load_model, super_resolve_array

    net, scale = load_model(job["weights"])
    lr = nib.load(job["input"])
    naive = super_resolve_array(np.asanyarray(lr.dataobj), net, scale, plane_axis=2, bf16=False)
    sr = super_resolve_image(lr, job["weights"], bf16=False, edges=False)
    got = np.asanyarray(sr.dataobj)
    assert naive.shape != got.shape or not np.allclose(naive, got, atol=1e-3 * np.ptp(got))


def test_settings_loaded_models_and_plans_are_reused(job, tmp_path):
    """A model read once serves many calls; unknown settings are a TypeError naming them; a
    plan is decided without building the network and is what the run then uses."""
    spec = read_model(job["weights"])
    settings = InferenceSettings(bf16=False, dtype="float32")
    plan = plan_file(job["input"], tmp_path / "a.nii", spec, settings=settings)
    assert plan.model is spec and plan.plane == "acquisition"
    result = super_resolve_file(job["input"], tmp_path / "a.nii", spec, plan=plan)
    assert result.record["output"]["dtype"] == "float32" and (tmp_path / "a.json").is_file()
    with pytest.raises(TypeError, match="unknown inference setting.*colour"):
        super_resolve_image(nib.load(job["input"]), spec, colour=True)


def test_docs_from_python_recipe_is_the_library_call():
    text = (REPO / "docs" / "inference.md").read_text()
    recipe = text.split("## From Python", 1)[1]
    assert "super_resolve_file(" in recipe and "super_resolve_image(" in recipe
    assert "as_closest_canonical" not in recipe  # the recipe that skipped the upright slicing
    assert not re.search(r"\bissue \d+", text, re.IGNORECASE)
