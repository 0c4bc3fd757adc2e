"""What ``w2amsn infer`` does to the files around it: outputs published together under a lock
(two runs into one output never mix image and sidecar, or the two files of a pair), an existing
output refused without --force, names too long refused before any work (and long ones that fit
written, with temporary names that fit), damaged headers one line each, also under --dry-run."""
from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
import yaml

from w2amsn_plugin.cli import w2amsn_main
from w2amsn_plugin.inference import InferenceError, output
from w2amsn_plugin.results.files import name_max, temp_path

TINY = {"type": "W2AMSN", "num_feat": 4, "num_block": 1, "upscale": 2}


@pytest.fixture(scope="module")
def job(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("publish")
    rng = np.random.default_rng(0)
    path = root / "lr.nii.gz"
    nib.save(nib.Nifti1Image((rng.random((34, 36, 3)) * 100 + 1).astype(np.float32), np.eye(4)), path)
    exp = root / "exp"
    (exp / "models").mkdir(parents=True)
    (exp / "exp.yml").write_text(yaml.safe_dump({"name": "exp", "scale": 2, "network_g": TINY}))
    from w2amsn_plugin.archs import W2AMSN

    torch.manual_seed(0)
    weights = exp / "models" / "net_g_latest.pth"
    torch.save({"params": W2AMSN(num_feat=4, num_block=1, upscale=2).state_dict()}, weights)
    return {"input": path, "weights": weights}


def _infer(job, *args) -> int:
    return w2amsn_main(["infer", "--no-bf16", "-i", str(job["input"]), "-w", str(job["weights"]),
                        *map(str, args)])


def _one_error(capsys, code: int, needle: str) -> str:
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("w2amsn infer: error: ") and "\n" not in err, err
    assert needle in err, err
    return err


def _files(folder: Path, name: str = "sr") -> output.OutputFiles:
    image = folder / f"{name}.img"
    return output.OutputFiles(image, (image, image.with_suffix(".hdr")), folder / f"{name}.json")


def _save_pair(tag: float):
    def save(path: Path) -> None:
        nib.save(nib.Nifti1Pair(np.full((2, 2, 2), tag, np.float32), np.eye(4)), path)
    return save


def _publisher(files: output.OutputFiles, tag: float, overwrite: bool, errors: list):
    def run() -> None:
        try:
            output.write_outputs(files, _save_pair(tag), lambda: json.dumps({"tag": tag}), overwrite)
        except InferenceError as err:
            errors.append(str(err))
    return threading.Thread(target=run)


def test_two_runs_publish_one_after_the_other(tmp_path):
    """While another run holds the folder's lock (publishing its own image, pair header and
    sidecar), a run waits with nothing visible, then replaces all three together."""
    files, errors = _files(tmp_path), []
    with output.publish_lock(tmp_path):
        worker = _publisher(files, 2.0, True, errors)
        worker.start()
        time.sleep(1.0)  # the worker has written its temporary files and waits for the lock
        assert not any(p.exists() for p in files.all), "published without the lock"
        _save_pair(1.0)(files.image)
        files.sidecar.write_text(json.dumps({"tag": 1.0}))
    worker.join(30)
    assert not errors
    for path in files.image_files:  # header and data of one run, and its sidecar
        assert np.asanyarray(nib.load(files.image).dataobj).max() == 2.0, path
    assert json.loads(files.sidecar.read_text()) == {"tag": 2.0}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sr.hdr", "sr.img", "sr.json"]


def test_an_output_written_meanwhile_is_not_overwritten_without_force(tmp_path):
    files, errors = _files(tmp_path), []
    with output.publish_lock(tmp_path):
        worker = _publisher(files, 2.0, False, errors)
        worker.start()
        time.sleep(1.0)
        _save_pair(1.0)(files.image)
        files.sidecar.write_text(json.dumps({"tag": 1.0}))
    worker.join(30)
    assert len(errors) == 1 and "another run wrote it while this one ran" in errors[0]
    assert np.asanyarray(nib.load(files.image).dataobj).max() == 1.0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sr.hdr", "sr.img", "sr.json"]


def test_existing_output_needs_force(job, tmp_path, capsys):
    out = tmp_path / "sr.nii.gz"
    assert _infer(job, "-o", out) == 0
    capsys.readouterr()
    _one_error(capsys, _infer(job, "-o", out), "exists; pass --force")
    inode = out.stat().st_ino
    assert _infer(job, "-o", out, "--force") == 0 and out.stat().st_ino != inode  # replaced
    out.unlink()  # the sidecar alone also counts: it would be replaced
    _one_error(capsys, _infer(job, "-o", out, "--dry-run"), "sr.json: exists")


def test_long_output_names(job, tmp_path, capsys, monkeypatch):
    """A 250-character name is written (its temporary names are cut to fit); one longer than the
    file system takes is one line before any work."""
    limit = name_max(tmp_path)
    fits = tmp_path / ("s" * (250 - len(".nii.gz")) + ".nii.gz")
    assert len(temp_path(fits, ".nii.gz").name.encode()) <= limit
    assert _infer(job, "-o", fits, "-q") == 0
    assert fits.is_file() and sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [fits.name, fits.name[:-len(".nii.gz")] + ".json"])
    ran = []
    monkeypatch.setattr("w2amsn_plugin.inference.pipeline._run", lambda *a: ran.append(1))
    too_long = tmp_path / ("t" * limit + ".nii.gz")
    _one_error(capsys, _infer(job, "-o", too_long), f"bytes, longer than the {limit} bytes")
    assert not ran


def test_singular_sform_without_qform_is_one_line(job, tmp_path, capsys):
    path = tmp_path / "flat.nii"
    img = nib.Nifti1Image(np.random.default_rng(0).random((6, 6, 4)).astype(np.float32), np.eye(4))
    img.set_qform(None, code=0)
    nib.save(img, path)
    raw = bytearray(path.read_bytes())
    raw[312:328] = bytes(16)  # srow_z of the NIfTI-1 header: a flat sform, no third axis
    path.write_bytes(bytes(raw))
    assert nib.load(path).header["sform_code"] > 0 and nib.load(path).header["qform_code"] == 0
    for extra in ((), ("--dry-run",)):
        _one_error(capsys, _infer(job, "-i", path, "-o", tmp_path / "sr.nii", *extra),
                   "affine is singular or not finite (sform code 2, qform code 0)")
    assert not (tmp_path / "sr.nii").exists()


def test_header_claiming_more_voxels_than_memory_is_one_line(job, tmp_path, capsys):
    path = tmp_path / "huge.nii"
    nib.save(nib.Nifti1Image(np.ones((2, 2, 2), np.int16), np.eye(4)), path)
    raw = bytearray(path.read_bytes())
    raw[42:48] = np.array([30000] * 3, "<i2").tobytes()  # dim[1..3] of the NIfTI-1 header
    path.write_bytes(bytes(raw))
    for extra in ((), ("--dry-run",)):
        _one_error(capsys, _infer(job, "-i", path, "-o", tmp_path / "sr.nii", *extra),
                   "claims 30000x30000x30000 voxels")
