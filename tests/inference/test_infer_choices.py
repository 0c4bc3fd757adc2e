"""What ``w2amsn infer`` chooses and keeps: edges of magnitude images, clipped integer outputs,
the default plane, the voxel-size advice, the header fields it keeps, the sidecar's provenance,
and the command line habits (-i/-o/-w, --o, --options, --version, -q, --threads, --device auto)."""
from __future__ import annotations

import json
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
import yaml

import w2amsn_plugin  # (first: makes basicsr importable on this torch)
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn

from w2amsn_plugin.cli import w2amsn_main
from w2amsn_plugin.data.degradations import bicubic_upsample
from w2amsn_plugin.results.files import sha256_file

TINY = {"type": "W2AMSN", "num_feat": 4, "num_block": 1}


class ChoicesTestBicubic(nn.Module):
    """MATLAB-bicubic upsampling as a "network": it overshoots at sharp edges like a real one."""

    def __init__(self, upscale: int = 2) -> None:
        super().__init__()
        self.upscale = upscale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return bicubic_upsample(x, self.upscale)


if "ChoicesTestBicubic" not in ARCH_REGISTRY:
    ARCH_REGISTRY.register(ChoicesTestBicubic)


def _experiment(root: Path, net: dict, datasets: dict | None = None,
                protocol: dict | None = None) -> Path:
    """``root/experiments/x2/`` with its YAML and weights; with ``protocol``, a training manifest
    ``root/datasets/IXI_T1/IXI_T1_split.json`` that the options' database points at."""
    exp = root / "experiments" / "x2"
    (exp / "models").mkdir(parents=True)
    opt = {"name": "x2", "scale": 2, "network_g": {**net, "upscale": 2}}
    if protocol is not None:
        (root / "datasets" / "IXI_T1").mkdir(parents=True)
        (root / "datasets" / "IXI_T1" / "IXI_T1_split.json").write_text(json.dumps(
            {"volumes": [], "protocol": protocol}))
        datasets = {"train": {"dataroot_gt": "datasets/IXI_T1/IXI_T1_train_HR.lmdb",
                              **(datasets or {}).get("train", {})}}
    if datasets is not None:
        opt["datasets"] = datasets
    (exp / "x2.yml").write_text(yaml.safe_dump(opt))
    weights = exp / "models" / "net_g_latest.pth"
    if net["type"] == "W2AMSN":
        from w2amsn_plugin.archs import W2AMSN

        torch.manual_seed(0)
        state = W2AMSN(**{k: v for k, v in net.items() if k != "type"}, upscale=2).state_dict()
    else:
        state = {}
    torch.save({"params": state}, weights)
    return weights


@pytest.fixture(scope="module")
def bicubic(tmp_path_factory) -> Path:
    return _experiment(tmp_path_factory.mktemp("bicubic"), {"type": "ChoicesTestBicubic"})


@pytest.fixture(scope="module")
def stripped(tmp_path_factory) -> Path:
    """A skull-stripped-like uint8 volume: a textured block of 60..255 in a zero background."""
    rng = np.random.default_rng(0)
    vol = np.zeros((40, 36, 4), np.uint8)
    vol[8:30, 6:28] = rng.integers(60, 256, (22, 22, 4))
    path = tmp_path_factory.mktemp("stripped") / "lr.nii.gz"
    img = nib.Nifti1Image(vol, np.diag([1.0, 1.0, 2.0, 1.0]))
    img.header["cal_min"], img.header["cal_max"] = 10, 240
    img.header["descrip"] = b"scanner X protocol Y"
    nib.save(img, path)
    return path


def _infer(*args) -> int:
    return w2amsn_main(["infer", "--no-bf16", *map(str, args)])


def _voxels(path: Path) -> np.ndarray:
    return np.asanyarray(nib.load(path).dataobj)


# --------------------------------------------------------------------------- edges

def test_edges_clamped_and_background_kept(stripped, bicubic, tmp_path, capsys):
    lr = _voxels(stripped)
    assert _infer("-i", stripped, "-o", tmp_path / "raw.nii", "-w", bicubic, "--no-edges") == 0
    raw = _voxels(tmp_path / "raw.nii")
    assert raw.min() < 0 and raw.max() > lr.max()  # bicubic's over- and undershoot at the edges
    assert _infer("-i", stripped, "-o", tmp_path / "sr.nii", "-w", bicubic) == 0
    sr = _voxels(tmp_path / "sr.nii")
    assert sr.min() >= lr.min() and sr.max() <= lr.max()
    far = np.repeat(np.repeat(lr == 0, 2, 0), 2, 1)
    far[14:62, 10:58] = False  # the block (8:30, 6:28) grown by its neighbours, at x2
    assert far.any() and np.all(sr[far] == 0) and (sr == 0).mean() > 0.4
    inside = slice(20, 56), slice(16, 52)
    np.testing.assert_array_equal(sr[inside], np.clip(raw[inside], lr.min(), lr.max()))
    edges = json.loads((tmp_path / "sr.json").read_text())["edges"]
    assert edges["enabled"] and edges["volumes"][0]["applied"]
    assert edges["volumes"][0]["range"] == [0.0, float(lr.max())]
    assert edges["volumes"][0]["clamped_voxels"] == int(np.count_nonzero((raw < 0) | (raw > lr.max())))


def test_signed_input_is_left_alone(stripped, bicubic, tmp_path):
    signed = (_voxels(stripped).astype(np.float32) - 100)
    path = tmp_path / "signed.nii"
    nib.save(nib.Nifti1Image(signed, np.eye(4)), path)
    assert _infer("-i", path, "-o", tmp_path / "a.nii", "-w", bicubic) == 0
    assert _infer("-i", path, "-o", tmp_path / "b.nii", "-w", bicubic, "--no-edges") == 0
    np.testing.assert_array_equal(_voxels(tmp_path / "a.nii"), _voxels(tmp_path / "b.nii"))
    assert "negative values" in json.loads((tmp_path / "a.json").read_text())["edges"]["volumes"][0]["why"]


def test_clipping_dtype_conversion_warns(stripped, bicubic, tmp_path, capsys):
    assert _infer("-i", stripped, "-o", tmp_path / "u8.nii", "-w", bicubic, "--dtype", "input",
                  "--no-edges") == 0
    err = capsys.readouterr().err.strip().splitlines()
    clipped = [line for line in err if "were outside uint8's range 0..255 and were clipped" in line]
    assert len(clipped) == 1 and clipped[0].startswith("w2amsn infer: warning: ")
    raw = _voxels(tmp_path / "u8.nii")
    assert raw.dtype == np.uint8
    rec = json.loads((tmp_path / "u8.json").read_text())
    assert clipped[0][len("w2amsn infer: warning: "):] in rec["warnings"]
    # with the edges clamped to the input's range nothing is clipped, and nothing is said
    assert _infer("-i", stripped, "-o", tmp_path / "e.nii", "-w", bicubic, "--dtype", "input") == 0
    assert "clipped" not in capsys.readouterr().err


# --------------------------------------------------------------------------- header

def test_display_window_and_description_are_kept(stripped, bicubic, tmp_path):
    assert _infer("-i", stripped, "-o", tmp_path / "sr.nii.gz", "-w", bicubic) == 0
    hdr = nib.load(tmp_path / "sr.nii.gz").header
    assert (float(hdr["cal_min"]), float(hdr["cal_max"])) == (10.0, 240.0)
    assert hdr["descrip"].item().decode() == (f"scanner X protocol Y; w2amsn "
                                              f"{w2amsn_plugin.__version__} x2 acquisition SR")
    long = nib.load(stripped)
    long.header["descrip"] = b"d" * 79
    nib.save(long, tmp_path / "long.nii")
    assert _infer("-i", tmp_path / "long.nii", "-o", tmp_path / "l.nii", "-w", bicubic) == 0
    text = nib.load(tmp_path / "l.nii").header["descrip"].item().decode()
    assert len(text) == 79 and text.startswith("ddd") and text.endswith("x2 acquisition SR")


# --------------------------------------------------------------------------- plane and voxel size

@pytest.mark.parametrize("protocol,datasets,plane,zooms", [
    ({"plane": "axial", "planes": ["axial", "coronal", "sagittal"]}, None, "acquisition", (1, 3, 1)),
    ({"plane": "axial"}, {"train": {"planes": ["axial", "coronal"]}}, "acquisition", (1, 3, 1)),
    ({"plane": "axial"}, None, "axial", (1, 1.5, 2)),
    ({"plane": "acquisition"}, None, "acquisition", (1, 3, 1)),
    (None, None, "acquisition", (1, 3, 1)),
])
def test_default_plane(tmp_path, capsys, protocol, datasets, plane, zooms):
    """A 2x3x2 mm scan: the acquisition plane (its two finest axes) unless the model was trained
    on one anatomical plane only."""
    vol = tmp_path / "aniso.nii"
    rng = np.random.default_rng(0)
    nib.save(nib.Nifti1Image(rng.random((12, 10, 14)).astype(np.float32) + 1,
                             np.diag([2.0, 3.0, 2.0, 1.0])), vol)
    if protocol is None:
        weights = _experiment(tmp_path, TINY, datasets)
    else:
        weights = _experiment(tmp_path, TINY, datasets, protocol)
    assert _infer("-i", vol, "-o", tmp_path / "sr.nii", "-w", weights, "--dry-run", "--json") == 0
    rec = json.loads(capsys.readouterr().out)
    assert rec["plane"]["name"] == plane, rec["plane"]
    assert rec["output"]["voxel_mm"] == list(zooms)


def test_voxel_advice_for_finer_and_coarser_inputs(stripped, tmp_path, capsys):
    """Training at 2 mm, input at 1 mm: finer, so no advice to resample to 2 mm; training at
    0.5 mm: coarser, so resampling to about 0.5 mm is the advice."""
    for voxel, said, unsaid in (([2.0, 2.0], "already finer", "resampling to about"),
                                ([0.5, 0.5], "resampling to about 0.5x0.5 mm", "already finer")):
        root = tmp_path / str(voxel[0])
        weights = _experiment(root, TINY, protocol={"plane": "acquisition",
                                                    "in_plane_voxel_mm": voxel})
        assert _infer("-i", stripped, "-o", root / "sr.nii", "-w", weights, "--dry-run") == 0
        capsys.readouterr()
        assert _infer("-i", stripped, "-o", root / "sr.nii", "-w", weights) == 0
        warnings = [line for line in capsys.readouterr().err.splitlines() if "in-plane voxel" in line]
        assert len(warnings) == 1 and said in warnings[0] and unsaid not in warnings[0], warnings


# --------------------------------------------------------------------------- provenance

def test_sidecar_hashes_and_wall_time_from_reading(stripped, tmp_path, monkeypatch):
    weights = _experiment(tmp_path, TINY, protocol={"plane": "acquisition"})
    from w2amsn_plugin.inference import pipeline

    real = pipeline.read_voxels

    def slow_read(*args):
        time.sleep(0.6)
        return real(*args)

    monkeypatch.setattr(pipeline, "read_voxels", slow_read)
    assert _infer("-i", stripped, "-o", tmp_path / "sr.nii", "-w", weights, "--threads", "1") == 0
    rec = json.loads((tmp_path / "sr.json").read_text())
    options = weights.parents[1] / "x2.yml"
    manifest = tmp_path / "datasets" / "IXI_T1" / "IXI_T1_split.json"
    assert rec["options"] == {"path": str(options.resolve()), "sha256": sha256_file(options)}
    assert rec["training"]["manifest"] == {"path": str(manifest.resolve()),
                                           "sha256": sha256_file(manifest)}
    assert rec["wall_seconds"] >= 0.6 and rec["threads"] == 1


# --------------------------------------------------------------------------- command line

def test_command_line_habits(stripped, tmp_path, capsys):
    weights = _experiment(tmp_path, TINY)
    options = weights.parents[1] / "x2.yml"
    moved = tmp_path / "elsewhere.yml"
    moved.write_bytes(options.read_bytes())
    options.unlink()
    with pytest.raises(SystemExit) as version:
        w2amsn_main(["infer", "--version"])
    assert version.value.code == 0
    assert capsys.readouterr().out.strip() == f"w2amsn infer (w2amsn_plugin {w2amsn_plugin.__version__})"
    # --o is output (not an ambiguous prefix); --opt abbreviates --options; -q prints nothing
    assert _infer("--input", stripped, "--o", tmp_path / "a.nii", "--weights", weights,
                  "--opt", moved, "-q", "--device", "auto") == 0
    out = capsys.readouterr()
    assert out.out == "" and out.err == "" and (tmp_path / "a.nii").is_file()
    rec = json.loads((tmp_path / "a.json").read_text())
    assert rec["options"]["path"] == str(moved.resolve()) and rec["device"].startswith(
        "cuda" if torch.cuda.is_available() else "cpu")
    assert _infer("-i", stripped, "-o", tmp_path / "b.nii", "-w", weights, "--options", moved) == 0
    assert capsys.readouterr().out.startswith(f"wrote {tmp_path / 'b.nii'}")
    assert _infer("-i", stripped, "-w", weights, "--options", moved) == 2
    assert capsys.readouterr().err.strip() == ("w2amsn infer: error: -o/--output is required (the "
                                               "SR volume to write)")


def test_demo_model_defaults_to_the_acquisition_plane():
    """The demo trains on three planes (resliced copies); its options say so, and infer then
    takes each scan's acquisition plane."""
    from w2amsn_plugin.experiments import demo_option_files, demo_option_texts
    from w2amsn_plugin.inference.planning import choose_plane
    from w2amsn_plugin.inference.protocol import training_protocol

    for quick in (False, True):
        opt = yaml.safe_load(demo_option_texts(quick)[demo_option_files(quick)["train"]])
        proto = training_protocol(opt, None, 2)
        assert sorted(proto.planes) == ["axial", "coronal", "sagittal"]
        assert choose_plane(None, proto)[0] == "acquisition"
