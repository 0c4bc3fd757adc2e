"""``w2amsn prepare`` on a user's own folders: a BIDS dataset, a plain folder of NIfTI and MGH files,
subjects grouped by a regex, unreadable and small volumes, a symlinked folder, a killed worker,
Ctrl-C, a full disk, and reproducible databases with zeroed pages. Volumes are the shipped real
MR samples (perturbed copies, :mod:`w2amsn_plugin.data.fake_ixi`), cut small so each run takes
seconds."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import pytest
from processes import child_pids

import w2amsn_plugin  # noqa: F401  (compat before basicsr)
from w2amsn_plugin.cli import w2amsn_main
from w2amsn_plugin.data import prepare
from w2amsn_plugin.data.fake_bids import make_fake_bids_tree
from w2amsn_plugin.data.fake_ixi import make_fake_ixi_tree
from w2amsn_plugin.data.lmdb_io import read_meta_keys, readonly_env
from w2amsn_plugin.data.calibration import VolumeJob
from w2amsn_plugin.data.prep_pool import WorkerDied, WorkerPool
from w2amsn_plugin.protocol import parse_slice_key

SHAPE = (64, 60, 20)  # stored shape: small, so a volume takes well under a second
SMALL = ["--crop", "48", "48", "4", "--scales", "2", "--no-progress"]


@pytest.fixture(scope="module")
def volumes(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Eight distinct fake T1 volumes (.nii.gz)."""
    return make_fake_ixi_tree(tmp_path_factory.mktemp("src"), 8, ("T1",), shape=SHAPE, seed=3)


def _manifest(out: Path, name: str) -> dict:
    return json.loads((out / name).read_text())


def _keys(path: Path) -> list[str]:
    with readonly_env(path).begin() as txn:
        return [k.decode() for k, _ in txn.cursor()]


def test_bids_dataset_subjects_never_share_a_split(volumes, tmp_path, capsys):
    root, out = make_fake_bids_tree(tmp_path / "toy-bids", volumes), tmp_path / "db"
    assert w2amsn_main(["prepare", "--root", str(root), "--out", str(out), "--workers", "1",
                        "--split", "4", "1", "1", *SMALL]) == 0
    m = _manifest(out, "toy-bids_T1w_split.json")
    assert m["source"]["layout"] == "bids" and m["modality"] == "T1w" and m["skipped"] == {}
    assert sorted(m["volumes"]) == ["sub-01", "sub-02", "sub-03_ses-1", "sub-03_ses-2",
                                    "sub-04", "sub-05", "sub-06"]
    sets = [set(m["splits"][s]) for s in ("train", "val", "test")]
    assert sum(map(len, sets)) == 6 and not (sets[0] & sets[1] or sets[0] & sets[2] or
                                            sets[1] & sets[2])
    assert {m["volumes"]["sub-03_ses-1"]["split"], m["volumes"]["sub-03_ses-2"]["split"]} == {
        next(s for s in ("train", "val", "test") if "sub-03" in m["splits"][s])}
    for split in ("train", "val", "test"):
        keys = _keys(out / f"toy-bids_T1w_{split}_HR.lmdb")
        assert keys == read_meta_keys(out / f"toy-bids_T1w_{split}_LR_bicubic_X2.lmdb")
        subjects = {m["volumes"][parse_slice_key(k)[0]]["subject"] for k in keys}
        assert subjects == set(m["splits"][split])
    stamp = json.loads((out / "toy-bids_T1w_train_HR.lmdb" / "w2amsn_protocol.json").read_text())
    assert stamp["manifest"] == "toy-bids_T1w_split.json"
    assert stamp["protocol_id"] == m["protocol"]["id"]


def test_plain_folder_of_nifti_and_mgz_grouped_by_regex(volumes, tmp_path):
    root, out = tmp_path / "scans", tmp_path / "db"
    (root / "deep" / "er").mkdir(parents=True)
    for i, src in enumerate(volumes[:6]):
        img = nib.load(str(src))
        subject, scan = f"pat{i // 2}", f"scan{i % 2}"
        if i % 3 == 0:
            nib.save(nib.MGHImage(img.get_fdata().astype("float32"), img.affine),
                     str(root / "deep" / f"{subject}_{scan}.mgz"))
        elif i % 3 == 1:
            nib.save(img, str(root / "deep" / "er" / f"{subject}_{scan}.nii"))
        else:
            shutil.copy(src, root / f"{subject}_{scan}.nii.gz")
    (root / "notes.txt").write_text("not a volume")
    assert w2amsn_main(["prepare", "--root", str(root), "--out", str(out), "--workers", "1",
                        "--name", "clinic", "--suffix", "T1", "--subject-regex",
                        r"^(?P<subject>pat\d+)_", "--split", "1", "1", "1", *SMALL]) == 0
    m = _manifest(out, "clinic_T1_split.json")
    assert len(m["volumes"]) == 6 and m["source"]["layout"] == "folder"
    for split in ("train", "val", "test"):
        (subject,) = m["splits"][split]
        assert sorted(v for v, rec in m["volumes"].items() if rec["split"] == split) == [
            f"{subject}_scan0", f"{subject}_scan1"]
    assert {Path(rec["file"]).suffix for rec in m["volumes"].values()} == {".mgz", ".nii", ".gz"}


def test_unreadable_volumes_are_skipped_and_counted_or_fatal_with_strict(volumes, tmp_path,
                                                                        capsys):
    root = tmp_path / "scans"
    root.mkdir()
    for i in range(5):
        shutil.copy(volumes[i], root / f"s{i}.nii.gz")
    (root / "garbage.nii").write_bytes(b"not a nifti header" * 40)
    data = volumes[5].read_bytes()
    (root / "cut.nii.gz").write_bytes(data[: len(data) // 2])  # header fine, voxel data truncated
    out = tmp_path / "db"
    assert w2amsn_main(["prepare", "--root", str(root), "--out", str(out), "--workers", "1",
                        "--split", "4", "1", "1", *SMALL]) == 0
    err = capsys.readouterr().err
    assert "garbage.nii: cannot read NIfTI header" in err  # found reading the headers
    assert "cut.nii.gz: cannot read voxel data" in err  # found by a worker
    assert "skipped 2 volume(s)" in err and "cut, garbage" in err
    m = _manifest(out, "scans_T1w_split.json")
    assert sorted(m["skipped"]) == ["cut", "garbage"]
    assert len(m["volumes"]) == 5
    assert w2amsn_main(["prepare", "--root", str(root), "--out", str(tmp_path / "db2"),
                        "--strict", "--split", "5", "1", "1", *SMALL]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "garbage.nii: cannot read NIfTI header" in err[0]


def test_small_volumes_are_padded_or_skipped_as_the_manifest_says(volumes, tmp_path):
    root = tmp_path / "scans"
    make_fake_ixi_tree(root, 4, ("T1",), shape=SHAPE, seed=5)
    make_fake_ixi_tree(tmp_path / "tiny", 1, ("T1",), shape=(40, 40, 20), seed=6)
    shutil.copy(next((tmp_path / "tiny").iterdir()), root / "tiny.nii.gz")
    for rule in ("pad", "skip"):
        out = tmp_path / rule
        n_train = "3" if rule == "pad" else "2"  # pad: 5 usable volumes, skip: 4
        assert w2amsn_main(["prepare", "--root", str(root), "--out", str(out), "--workers", "1",
                            "--small-volumes", rule, "--split", n_train, "1", "1", *SMALL]) == 0
        m = _manifest(out, "scans_T1w_split.json")
        assert m["options"]["small_volumes"] == rule
        if rule == "pad":
            assert m["volumes"]["tiny"]["padded"] is True
            assert "zero-padded" in m["preprocessing"]["crop"]
        else:
            assert "tiny" in m["skipped"] and "tiny" not in m["volumes"]
            assert "skipped" in m["preprocessing"]["crop"]


def test_symlinked_modality_folder_is_followed(volumes, tmp_path):
    real = tmp_path / "elsewhere"
    make_fake_ixi_tree(real, 3, ("T1",), shape=SHAPE)
    root = tmp_path / "ixi"
    root.mkdir()
    (root / "T1").symlink_to(real, target_is_directory=True)
    (real / "loop").symlink_to(root, target_is_directory=True)  # a loop ends, it does not hang
    out = tmp_path / "db"
    assert w2amsn_main(["prepare-ixi", "--ixi-root", str(root), "--modality", "T1", "--out",
                        str(out), "--n-train", "1", "--n-test", "1", "--n-val", "1",
                        "--workers", "1", *SMALL]) == 0
    assert len(_manifest(out, "IXI_T1_split.json")["volumes"]) == 3


def test_identical_runs_give_identical_bytes_with_zeroed_pages(volumes, tmp_path):
    root = make_fake_bids_tree(tmp_path / "toy", volumes)
    outs = [tmp_path / "a", tmp_path / "b"]
    for out, workers in zip(outs, ("1", "2")):  # two workers finish in any order
        assert w2amsn_main(["prepare", "--root", str(root), "--out", str(out), "--workers", workers,
                            "--split", "4", "1", "1", *SMALL]) == 0
    names = sorted(p.name for p in outs[0].glob("*.lmdb"))
    assert len(names) == 6
    for name in names:
        a, b = (out / name / "data.mdb" for out in outs)
        assert a.read_bytes() == b.read_bytes(), name
        assert not (outs[0] / name / "lock.mdb").exists()
        data = a.read_bytes()
        for secret in (str(tmp_path).encode(), sys.executable.encode(), b"authkey", b"/tmp/"):
            assert secret not in data, (name, secret)


def test_pool_results_errors_and_a_killed_worker_that_names_its_task():
    with WorkerPool(2, initializer=None) as pool:
        assert sorted(pool.imap_unordered(abs, [-3, 2, -1])) == [1, 2, 3]
        with pytest.raises(TypeError):
            list(pool.imap_unordered(abs, ["x"]))
        with pytest.raises(WorkerDied, match=r"^9: the worker .* died \(killed by signal 9 "
                                             r"\(SIGKILL"):
            list(pool.imap_unordered(signal.raise_signal, [signal.SIGKILL] * 3))


def _prepare_cmd(root: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "w2amsn_plugin.cli", "prepare", "--root", str(root),
            "--out", str(out), "--workers", "2", "--split", "6", "1", "1", "--crop", "96", "96",
            "24", "--scales", "2", "3", "4", "--no-progress"]


@pytest.mark.slow
def test_kill_9_of_a_worker_ends_prepare_naming_the_volume_and_a_rerun_resumes(tmp_path):
    root = tmp_path / "scans"
    make_fake_ixi_tree(root, 8, ("T1",), shape=(120, 136, 40), seed=9)
    out = tmp_path / "db"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen(_prepare_cmd(root, out), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    done = out / ".scans_T1w_staging" / "done.jsonl"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and not (done.is_file() and done.read_text()):
        time.sleep(0.2)  # kill in the middle: after the first volume is staged
    workers = [p for p in child_pids(proc.pid)
               if b"spawn_main" in Path(f"/proc/{p}/cmdline").read_bytes()]
    assert workers, "no worker process found"
    os.kill(workers[0], signal.SIGKILL)  # what the out-of-memory killer does
    _, err = proc.communicate(timeout=180)
    assert proc.returncode == 2, err
    lines = [line for line in err.splitlines() if "error" in line]
    assert len(lines) == 1 and "the worker process working on it died" in lines[0]
    assert "Traceback" not in err and "scans" in lines[0] and "rerun" in lines[0]
    rerun = subprocess.run(_prepare_cmd(root, out), capture_output=True, text=True, env=env,
                           timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert "0 already done" not in rerun.stderr and "already done" in rerun.stderr
    assert len(_manifest(out, "scans_T1w_split.json")["volumes"]) == 8


def test_ctrl_c_while_workers_start_gives_one_line_and_no_traceback(tmp_path):
    root = tmp_path / "scans"
    make_fake_ixi_tree(root, 8, ("T1",), shape=SHAPE, seed=9)
    proc = subprocess.Popen(_prepare_cmd(root, tmp_path / "db"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            env=dict(os.environ, OMP_NUM_THREADS="1"))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(child_pids(proc.pid)) < 2:
        time.sleep(0.05)
    time.sleep(0.3)  # the workers are importing torch
    os.killpg(proc.pid, signal.SIGINT)  # a terminal's Ctrl-C reaches the whole process group
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err


def test_disk_full_while_staging_is_one_line_and_keeps_the_staged_volumes(volumes, tmp_path,
                                                                          monkeypatch, capsys):
    root = make_fake_bids_tree(tmp_path / "toy", volumes)
    out = tmp_path / "db"
    real_put = prepare.Staging.commit
    calls = []

    def full_disk(self, *args, **kwargs):
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        calls.append(1)
        return real_put(self, *args, **kwargs)

    monkeypatch.setattr(prepare.Staging, "commit", full_disk)
    args = ["prepare", "--root", str(root), "--out", str(out), "--workers", "1",
            "--split", "4", "1", "1", *SMALL]
    assert w2amsn_main(args) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("w2amsn prepare: error")]
    assert len(err) == 1 and "No space left on device" in err[0] and "3/7 volumes" in err[0]
    assert (out / ".toy_T1w_staging" / "done.jsonl").read_text().count("\n") == 3
    monkeypatch.setattr(prepare.Staging, "commit", real_put)
    assert w2amsn_main(args) == 0
    assert "3 already done" in capsys.readouterr().err


def test_io_error_while_publishing_is_one_line_and_a_rerun_finishes(volumes, tmp_path,
                                                                    monkeypatch, capsys):
    root = make_fake_bids_tree(tmp_path / "toy", volumes)
    out = tmp_path / "db"

    def failing_copy(*_args, **_kwargs):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(prepare, "write_sorted_copy", failing_copy)
    args = ["prepare", "--root", str(root), "--out", str(out), "--workers", "1",
            "--split", "4", "1", "1", *SMALL]
    assert w2amsn_main(args) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("w2amsn prepare: error")]
    assert len(err) == 1 and "Input/output error" in err[0] and "7/7 volumes" in err[0]
    assert not list(out.glob("*.lmdb"))  # nothing published
    monkeypatch.undo()
    assert w2amsn_main(args) == 0
    assert "7 already done" in capsys.readouterr().err
    assert len(list(out.glob("*.lmdb"))) == 6


def test_a_dead_calibrate_worker_is_named_by_its_volume():
    job = VolumeJob("/scans/IXI101-HH-1001-T2.nii.gz", [2, 3, 4], (96, 96, 16))
    err = WorkerDied(job, -9)
    assert str(err).startswith("/scans/IXI101-HH-1001-T2.nii.gz: the worker process working on it died")
