"""Faults and bad input a careful user hits with ``w2amsn infer``: each is one line on
stderr naming the file or value, exit 2 (130 for Ctrl-C), no traceback, and nothing at the output
paths. In-process through ``w2amsn_main``; Ctrl-C, kill -9 and a closed pipe in a subprocess."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
import yaml

import w2amsn_plugin  # noqa: F401  (registers W2AMSN)
from w2amsn_plugin.archs import W2AMSN
from w2amsn_plugin.cli import w2amsn_main
from w2amsn_plugin.inference import output
from w2amsn_plugin.results.output_paths import output_folder_problem

TINY = {"type": "W2AMSN", "num_feat": 4, "num_block": 1, "upscale": 2}
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """A 24x20x6 float volume, an experiment with tiny x2 weights, and bad weights files."""
    root = tmp_path_factory.mktemp("faults")
    rng = np.random.default_rng(0)
    vol = root / "lr.nii.gz"
    nib.save(nib.Nifti1Image((rng.random((24, 20, 6)) * 100).astype(np.float32), np.eye(4)), vol)
    exp = root / "exp"
    (exp / "models").mkdir(parents=True)
    (exp / "exp.yml").write_text(yaml.safe_dump({"name": "exp", "scale": 2, "network_g": TINY}))
    torch.manual_seed(0)
    weights = exp / "models" / "net_g_latest.pth"
    state = W2AMSN(**{k: v for k, v in TINY.items() if k != "type"}).state_dict()
    torch.save({"params": state}, weights)
    good = weights.read_bytes()
    bad = {"empty.pth": b"", "truncated.pth": good[:len(good) // 2],
           "garbage.pth": bytes(rng.integers(0, 256, 4096, dtype=np.uint8))}
    for name, payload in bad.items():
        (exp / "models" / name).write_bytes(payload)
    other = {"params": W2AMSN(num_feat=8, num_block=2, upscale=2).state_dict()}
    torch.save(other, exp / "models" / "other_arch.pth")
    return {"volume": vol, "weights": weights, "root": root,
            **{name.split(".")[0]: exp / "models" / name for name in (*bad, "other_arch.pth")}}


def _one_error(capsys, code: int, needle: str, expected_code: int = 2) -> str:
    err = capsys.readouterr().err.strip()
    assert code == expected_code, err
    assert err.startswith("w2amsn infer: error: ") and "\n" not in err, err
    assert needle in err, err
    return err


def _infer(files, *args) -> int:
    return w2amsn_main(["infer", "--no-progress", "--no-bf16", "--weights", str(files["weights"]),
                        *map(str, args)])


def _entries(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


# --------------------------------------------------------------------------- the input is safe

def test_output_naming_the_input_is_refused(files, tmp_path, capsys):
    data = np.asanyarray(nib.load(files["volume"]).dataobj)
    for name in ("scan.nii", "scan.nii.gz"):
        scan = tmp_path / name
        nib.save(nib.Nifti1Image(data, np.eye(4)), scan)
        before = scan.read_bytes()
        (tmp_path / "sub").mkdir(exist_ok=True)
        link = tmp_path / f"link_{name}"
        link.symlink_to(scan)
        hard = tmp_path / f"hard_{name}"
        os.link(scan, hard)
        for out in (scan, tmp_path / "sub" / ".." / name, link, hard):
            _one_error(capsys, _infer(files, "--input", scan, "--output", out),
                       "would overwrite the input")
            _one_error(capsys, _infer(files, "--input", out, "--output", scan),
                       "would overwrite the input")
        assert scan.read_bytes() == before
    pair = tmp_path / "pair.img"
    nib.save(nib.AnalyzeImage(data.astype(np.int16), np.eye(4)), pair)
    _one_error(capsys, _infer(files, "--input", pair, "--output", tmp_path / "pair.hdr"),
               "would overwrite the input")


def _unwritable_folder(tmp_path: Path) -> Path:
    """A folder no file can be created in: a read-only one, or (for root, who writes there all
    the same, as the creating probe finds) /proc, a file system nobody writes files into."""
    locked = tmp_path / "ro"
    locked.mkdir(mode=0o500)
    return locked if output_folder_problem(locked) is not None else Path("/proc")


def test_output_folder_problems_are_refused_before_the_work(files, tmp_path, capsys, monkeypatch):
    folder = tmp_path / "folder.nii.gz"
    folder.mkdir()
    _one_error(capsys, _infer(files, "--input", files["volume"], "--output", folder), "is a folder")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    _one_error(capsys, _infer(files, "--input", files["volume"], "--output",
                              blocker / "deeper" / "sr.nii.gz"), f"{blocker} is a file")
    locked = _unwritable_folder(tmp_path)
    ran = []
    monkeypatch.setattr("w2amsn_plugin.inference.pipeline._run", lambda *a: ran.append(1))
    _one_error(capsys, _infer(files, "--input", files["volume"], "--output", locked / "sr.nii.gz"),
               f"cannot write in {locked}")
    assert not ran and not (locked / "sr.nii.gz").exists()


# --------------------------------------------------------------------------- bad arguments

@pytest.mark.parametrize("name,needle", [
    ("empty", "weights file is empty (0 bytes)"), ("truncated", "not a PyTorch checkpoint"),
    ("garbage", "not a PyTorch checkpoint"), ("other_arch", "weights do not fit network_g")])
def test_bad_weights_are_one_line(files, tmp_path, capsys, name, needle):
    code = w2amsn_main(["infer", "--input", str(files["volume"]), "--output",
                        str(tmp_path / "sr.nii.gz"), "--weights", str(files[name]),
                        "--opt", str(files["weights"].parents[1] / "exp.yml")])
    err = _one_error(capsys, code, needle)
    assert str(files[name]) in err
    assert _entries(tmp_path) == set()


@pytest.mark.parametrize("args,needle", [
    (("--device", "banana"), "device 'banana': not a device"),
    (("--tile", "1"), "tile 1: tiles under 8 px are refused"),
    (("--tile", "7"), "tile 7: tiles under 8 px are refused"),
    (("--max-pixels", "100", "--tile-overlap", "2"), "leaves tiles of 6 px"),
    (("--batch", "0"), "batch (0)"),
    (("--max-pixels", "0"), "max_pixels (0)"),
    (("--volume-index", "1"), "--volume-index 1 out of range (0..0)"),
    (("--threads", "0"), "--threads 0: must be at least 1"),
    (("--plane", "oblique"), "--plane oblique: choose from acquisition, sagittal, coronal, axial"),
])
def test_bad_values_are_one_line(files, tmp_path, capsys, args, needle):
    code = _infer(files, "--input", files["volume"], "--output", tmp_path / "sr.nii.gz", *args)
    _one_error(capsys, code, needle)
    assert _entries(tmp_path) == set()


def test_constant_volume_names_the_file(files, tmp_path, capsys):
    flat = tmp_path / "flat.nii.gz"
    nib.save(nib.Nifti1Image(np.full((12, 12, 3), 7, np.int16), np.eye(4)), flat)
    err = _one_error(capsys, _infer(files, "--input", flat, "--output", tmp_path / "sr.nii.gz"),
                     "volume is constant")
    assert str(flat) in err and not (tmp_path / "sr.nii.gz").exists()
    series = tmp_path / "series.nii.gz"
    good = np.asanyarray(nib.load(files["volume"]).dataobj)
    nib.save(nib.Nifti1Image(np.stack([good, np.zeros_like(good)], -1), np.eye(4)), series)
    _one_error(capsys, _infer(files, "--input", series, "--output", tmp_path / "s.nii.gz"),
               f"{series} volume 1: volume is constant")


def test_tiny_volume_is_run_with_one_warning(files, tmp_path, capsys):
    tiny = tmp_path / "tiny.nii.gz"
    nib.save(nib.Nifti1Image(np.random.default_rng(1).random((10, 10, 10)).astype(np.float32),
                             np.eye(4)), tiny)
    assert _infer(files, "--input", tiny, "--output", tmp_path / "sr.nii.gz") == 0
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("w2amsn infer: warning: ")
    assert "slices of 10x10 px are smaller than" in err[0] and "zero padding" in err[0]
    assert nib.load(tmp_path / "sr.nii.gz").shape == (20, 20, 10)


# --------------------------------------------------------------------------- leftovers

def test_stale_partial_files_are_removed_on_the_next_run(files, tmp_path):
    out = tmp_path / "sr.nii.gz"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    stale = [output.partial_path(out, int(dead)), output.partial_path(tmp_path / "sr.json", int(dead))]
    for path in stale:
        path.write_bytes(b"half")
    alive = output.partial_path(out, os.getppid())  # a running process: left alone
    alive.write_bytes(b"busy")
    assert all(p.name.startswith(".sr.w2amsn-partial-") for p in stale)
    assert _infer(files, "--input", files["volume"], "--output", out) == 0
    assert _entries(tmp_path) == {"sr.nii.gz", "sr.json", alive.name}


# --------------------------------------------------------------------------- subprocesses

# the CLI with every forward call slowed down (and announced), or the final save stalled
_WRAPPER = r"""
import sys, time
import nibabel
from w2amsn_plugin.inference import engine
mode = sys.argv.pop(1)
if mode == "slow-forward":
    real = engine._forward_fn
    def slow(*args, **kwargs):
        forward = real(*args, **kwargs)
        def call(x):
            print("FORWARD", file=sys.stderr, flush=True)
            time.sleep(0.3)
            return forward(x)
        return call
    engine._forward_fn = slow
elif mode == "stall-save":
    real_save = nibabel.save
    def stalled(img, path):
        real_save(img, path)
        print("SAVED", file=sys.stderr, flush=True)
        time.sleep(120)
    nibabel.save = stalled
from w2amsn_plugin.cli import w2amsn_main
sys.exit(w2amsn_main(sys.argv[1:]))
"""


def _spawn(mode: str, files, *args, **popen) -> subprocess.Popen:
    cmd = [sys.executable, "-c", _WRAPPER, mode, "infer", "--no-progress", "--no-bf16",
           "--weights", str(files["weights"]), *map(str, args)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(cmd, cwd=REPO, env=env, text=True, **popen)


def _wait_for(proc: subprocess.Popen, word: str, timeout: float = 120) -> list[str]:
    lines, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        lines.append(line)
        if line.strip() == word:
            return lines
    proc.kill()
    raise AssertionError(f"no {word} line; stderr: {''.join(lines)}")


def test_ctrl_c_during_inference_exits_130_and_writes_nothing(files, tmp_path):
    out = tmp_path / "sr.nii.gz"
    proc = _spawn("slow-forward", files, "--input", files["volume"], "--output", out,
                  "--batch", "1", stderr=subprocess.PIPE, stdout=subprocess.PIPE)
    _wait_for(proc, "FORWARD")
    proc.send_signal(signal.SIGINT)
    rest = proc.stderr.read()
    assert proc.wait(timeout=60) == 130
    lines = [line for line in rest.splitlines() if line.strip() and line != "FORWARD"]
    assert lines == ["w2amsn infer: interrupted; nothing was written"], rest
    assert _entries(tmp_path) == set()


def test_kill_during_the_final_write_leaves_no_visible_output(files, tmp_path):
    out = tmp_path / "sr.nii.gz"
    proc = _spawn("stall-save", files, "--input", files["volume"], "--output", out,
                  stderr=subprocess.PIPE, stdout=subprocess.PIPE)
    _wait_for(proc, "SAVED")
    proc.kill()  # SIGKILL
    proc.wait(timeout=30)
    left = _entries(tmp_path)
    assert left and all(name.startswith(".sr.w2amsn-partial-") for name in left), left
    assert _infer(files, "--input", files["volume"], "--output", out) == 0  # cleans up
    assert _entries(tmp_path) == {"sr.nii.gz", "sr.json"}


def test_dry_run_into_a_closed_pipe_has_no_traceback(files, tmp_path):
    proc = _spawn("none", files, "--input", files["volume"], "--output", tmp_path / "sr.nii.gz",
                  "--dry-run", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # the reader (e.g. `head -3`) has gone before anything was printed
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 0
    assert "Traceback" not in err and "BrokenPipe" not in err, err
