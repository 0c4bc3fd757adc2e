"""Whole-volume inference (w2amsn_plugin.infer, `w2amsn infer`) on crops of the shipped Colin27."""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
import yaml

import w2amsn_plugin  # noqa: F401  (makes basicsr importable, registers W2AMSN)
from basicsr.utils.matlab_functions import imresize
from basicsr.utils.registry import ARCH_REGISTRY
from nibabel import orientations
from torch import nn

from w2amsn_plugin import device_caps, inference as infer
from w2amsn_plugin.inference import engine, tiling
from w2amsn_plugin.inference import geometry as geo
from w2amsn_plugin.data.planes import ANATOMICAL_PLANES
from w2amsn_plugin.archs import W2AMSN
from w2amsn_plugin.cli import w2amsn_main
from w2amsn_plugin.data.samples import sample_path

# sizes that are multiples of nothing; Colin27 voxel [60:97, 80:123, 70:75] is brain + skull
CROP = (slice(60, 97), slice(80, 123), slice(70, 75))
TINY = {"type": "W2AMSN", "num_feat": 4, "num_block": 1}


class InferTestBicubic(nn.Module):
    """Identity-like model: MATLAB-bicubic upsampling (= basicsr imresize), no parameters."""

    def __init__(self, upscale: int = 2) -> None:
        super().__init__()
        self.upscale = upscale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return infer.bicubic_upsample(x, self.upscale)


if "InferTestBicubic" not in ARCH_REGISTRY:
    ARCH_REGISTRY.register(InferTestBicubic)


@pytest.fixture(scope="module")
def colin_crop(tmp_path_factory) -> Path:
    """37x43x5 uint8 crop of Colin27 with qform code 1 (scanner) and sform code 4 (MNI)."""
    img = nib.load(sample_path("colin27_t1"))
    sub = img.slicer[CROP]
    hdr = sub.header.copy()
    qform = sub.affine.copy()
    qform[:3, 3] += [0.5, -0.25, 1.0]  # differs from the sform: both must be mapped
    hdr.set_qform(qform, code=1)
    hdr.set_sform(sub.affine, code=4)
    path = tmp_path_factory.mktemp("colin") / "colin_crop.nii.gz"
    nib.save(nib.Nifti1Image(np.asanyarray(sub.dataobj), hdr.get_best_affine(), hdr), path)
    return path


def _experiment(root: Path, net_opt: dict, scale: int, state: dict | None = None,
                key: str = "params") -> Path:
    """A BasicSR-like experiment folder: <root>/<name>.yml and models/net_g_latest.pth."""
    (root / "models").mkdir(parents=True, exist_ok=True)
    opt = {"name": root.name, "scale": scale, "network_g": {**net_opt, "upscale": scale}}
    (root / f"{root.name}.yml").write_text(yaml.safe_dump(opt))
    if state is None:
        torch.manual_seed(scale)
        state = W2AMSN(**{k: v for k, v in opt["network_g"].items() if k != "type"}).state_dict()
    weights = root / "models" / "net_g_latest.pth"
    torch.save({key: state}, weights)
    return weights


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory) -> dict[int, Path]:
    return {s: _experiment(tmp_path_factory.mktemp(f"tiny_x{s}"), TINY, s) for s in (2, 3, 4)}


@pytest.fixture(scope="module")
def bicubic_weights(tmp_path_factory) -> dict[int, Path]:
    return {s: _experiment(tmp_path_factory.mktemp(f"bicubic_x{s}"), {"type": "InferTestBicubic"},
                           s, state={}) for s in (2, 3)}


def _infer(*args: str | Path) -> int:
    return w2amsn_main(["infer", "--no-progress", "--no-bf16", *map(str, args)])


def _save_like(ref: Path, data: np.ndarray, path: Path, affine=None) -> Path:
    img = nib.load(ref)
    hdr = img.header.copy()
    hdr.set_data_dtype(data.dtype)
    nib.save(nib.Nifti1Image(data, img.affine if affine is None else affine, hdr), path)
    return path


def _bicubic_reference(volume: np.ndarray, scale: int, plane_axis: int) -> np.ndarray:
    """basicsr imresize of every slice (float64 -> float32), independent of infer's matrices."""
    slices = np.moveaxis(volume.astype(np.float32), plane_axis, 0)
    out = np.stack([imresize(s, scale) for s in slices])
    return np.moveaxis(out, 0, plane_axis)


# --------------------------------------------------------------------------- bicubic, tiling

@pytest.mark.parametrize("shape,scale", [((7, 9), 2), ((13, 5), 3), ((40, 48), 4), ((2, 3), 2)])
def test_bicubic_upsample_equals_basicsr_imresize(shape, scale):
    x = np.random.default_rng(0).random(shape).astype(np.float32)
    got = infer.bicubic_upsample(torch.from_numpy(x), scale).numpy()
    np.testing.assert_allclose(got, imresize(x, scale), atol=1e-6)


def test_plan_tiles_bounds_pixels_per_call():
    assert infer.plan_tiles(40, 48, 8) == infer.TilePlan(batch=8, tile=None)
    plan = infer.plan_tiles(256, 256, 8, max_pixels=3 * 256 * 256)
    assert (plan.batch, plan.tile) == (3, None)
    assert infer.plan_tiles(256, 256, None, max_pixels=5 * 256 * 256).batch == 5  # no cap
    # the x8 ensemble runs at the plain plan: 8 calls per batch, each of the plain size
    plain = infer.plan_tiles(181, 217, 8)
    assert plain.forward_calls(181, 181, 217, self_ensemble=True) == 8 * plain.forward_calls(
        181, 181, 217) == 8 * 181
    plan = infer.plan_tiles(300, 200, 8, max_pixels=100 * 100, overlap=10)
    assert plan.tile == 80
    (win_h, win_w), boxes = plan.windows(300, 200)
    assert plan.batch * win_h * win_w <= 100 * 100
    covered = np.zeros((300, 200), int)
    for wy, wx, y0, y1, x0, x1 in boxes:  # tiles partition the slice, windows hold them
        covered[y0:y1, x0:x1] += 1
        assert 0 <= wy <= y0 and y1 <= wy + win_h <= 300
        assert (y0 - wy >= 10 or wy == 0) and (wy + win_h - y1 >= 10 or wy + win_h == 300)
        assert (x0 - wx >= 10 or wx == 0) and (wx + win_w - x1 >= 10 or wx + win_w == 200)
    assert (covered == 1).all()


def test_tiled_equals_untiled_for_a_local_network():
    """Without global pooling W2AMSN is local (receptive field ~8 LR px here): tiles with
    12 px of overlap reproduce the untiled result."""
    torch.manual_seed(0)
    net = W2AMSN(num_feat=4, num_block=1, upscale=2, block_attention="none",
                 global_attention="none")
    vol = np.random.default_rng(1).random((3, 50, 37)).astype(np.float32)
    whole = engine._run_plan(vol, net, 2, 0, infer.TilePlan(batch=8), False, False, "cpu", False)
    tiled = engine._run_plan(vol, net, 2, 0, infer.TilePlan(batch=5, tile=16, overlap=12),
                            False, False, "cpu", False)
    assert np.abs(tiled - whole).max() < 1e-5


# --------------------------------------------------------------------------- Python API

@pytest.mark.parametrize("plane_axis", [0, 1, 2])
def test_super_resolve_volume_with_bicubic_model(plane_axis):
    vol = np.random.default_rng(2).random((9, 11, 6)).astype(np.float32)
    out = infer.super_resolve_volume(vol, InferTestBicubic(3), 3, plane_axis=plane_axis, batch=2,
                                     bf16=False)
    expected = [n * (1 if ax == plane_axis else 3) for ax, n in enumerate(vol.shape)]
    assert out.dtype == np.float32 and list(out.shape) == expected
    np.testing.assert_allclose(out, _bicubic_reference(vol, 3, plane_axis), atol=1e-5)
    # bicubic commutes with flips and transposes: the x8 self-ensemble gives it back
    ens = infer.super_resolve_volume(vol, InferTestBicubic(3), 3, plane_axis=plane_axis,
                                     self_ensemble=True, bf16=False)
    np.testing.assert_allclose(ens, out, atol=1e-5)


def test_super_resolve_volume_batches_agree_and_reject_bad_input():
    torch.manual_seed(0)
    net = W2AMSN(num_feat=4, num_block=1, upscale=2)
    vol = np.random.default_rng(3).random((6, 20, 17)).astype(np.float32)
    one = infer.super_resolve_volume(vol, net, 2, plane_axis=0, batch=1, bf16=False)
    six = infer.super_resolve_volume(vol, net, 2, plane_axis=0, batch=6, bf16=False)
    np.testing.assert_allclose(one, six, atol=1e-5)
    with pytest.raises(ValueError, match="NaN"):
        infer.super_resolve_volume(np.where(vol > 0.99, np.nan, vol), net, 2)
    with pytest.raises(ValueError, match="3-D"):
        infer.super_resolve_volume(vol[0], net, 2)
    with pytest.raises(ValueError, match="expected"):  # a x2 network called as x3
        infer.super_resolve_volume(vol, net, 3, bf16=False)


def test_load_model_prefers_params_ema_and_reports_bad_files(tmp_path):
    torch.manual_seed(0)
    opt = {**TINY, "upscale": 2}
    ema = W2AMSN(**{k: v for k, v in opt.items() if k != "type"})
    weights = _experiment(tmp_path / "exp", TINY, 2)
    torch.save({"params": W2AMSN(num_feat=4, num_block=1).state_dict(),
                "params_ema": ema.state_dict()}, weights)
    net, scale = infer.load_model(weights)
    assert scale == 2 and not net.training
    for name, value in ema.state_dict().items():
        torch.testing.assert_close(net.state_dict()[name], value)
    net2, _ = infer.load_model(weights, opt={"scale": 2, "network_g": opt})
    assert isinstance(net2, W2AMSN)

    with pytest.raises(infer.InferenceError, match="not found"):
        infer.load_model(tmp_path / "missing.pth")
    lonely = tmp_path / "lonely" / "net.pth"
    lonely.parent.mkdir()
    torch.save({"params": ema.state_dict()}, lonely)
    with pytest.raises(infer.InferenceError, match="pass --opt"):
        infer.load_model(lonely)
    (tmp_path / "bad.yml").write_text("name: x\nscale: 2\n")
    with pytest.raises(infer.InferenceError, match="network_g"):
        infer.load_model(weights, opt=tmp_path / "bad.yml")
    with pytest.raises(infer.InferenceError, match="disagree"):
        infer.load_model(weights, opt={"scale": 3, "network_g": opt})
    with pytest.raises(infer.InferenceError, match="do not fit"):
        infer.load_model(weights, opt={"scale": 2, "network_g": {**opt, "num_feat": 8}})


# --------------------------------------------------------------------------- the CLI

@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("plane", ["axial", "coronal", "sagittal"])
def test_cli_shapes_affines_and_codes(colin_crop, tiny_weights, tmp_path, scale, plane):
    out_path = tmp_path / "sr.nii.gz"
    assert _infer("--input", colin_crop, "--output", out_path, "--weights", tiny_weights[scale],
                  "--plane", plane) == 0
    src, out = nib.load(colin_crop), nib.load(out_path)
    scales = [1 if ax == ANATOMICAL_PLANES[plane] else scale for ax in range(3)]  # input is RAS
    assert out.shape == tuple(n * s for n, s in zip(src.shape, scales))
    assert out.get_data_dtype() == np.float32  # uint8 input: float32 by default
    np.testing.assert_allclose(out.header.get_zooms(), np.array(src.header.get_zooms()) / scales)
    assert (int(out.header["qform_code"]), int(out.header["sform_code"])) == (1, 4)
    vox = geo.upscale_voxel_map(scales)
    np.testing.assert_allclose(out.header.get_sform(), src.header.get_sform() @ vox, atol=1e-5)
    np.testing.assert_allclose(out.header.get_qform(), src.header.get_qform() @ vox, atol=1e-5)
    for aff in ("get_sform", "get_qform"):
        np.testing.assert_allclose(
            geo.voxel_corners_world(getattr(out.header, aff)(), out.shape),
            geo.voxel_corners_world(getattr(src.header, aff)(), src.shape), atol=1e-4)


@pytest.mark.parametrize("dtype", [np.float32, np.uint8, np.int16, np.uint16])
def test_cli_bicubic_model_gives_bicubic_in_input_units(colin_crop, bicubic_weights, tmp_path,
                                                        dtype):
    """Identity-like model -> MATLAB bicubic of the input, bright voxels above the
    normalisation percentile included, in the input's units and dtype."""
    src = nib.load(colin_crop)
    data = np.asanyarray(src.dataobj).astype(np.float32)
    data = {np.float32: data * 3.7 + 0.25, np.uint8: data, np.int16: data * 40 - 1000,
            np.uint16: data * 250}[dtype].astype(dtype)
    lr = _save_like(colin_crop, data, tmp_path / "lr.nii.gz")
    out_path = tmp_path / "sr.nii.gz"
    assert _infer("--input", lr, "--output", out_path, "--weights", bicubic_weights[3],
                  "--no-edges") == 0  # the engine's own values (edges: tests/inference/test_edges.py)
    out = nib.load(out_path)
    assert out.get_data_dtype() == (np.float32 if dtype == np.uint8 else dtype)
    got = np.asanyarray(out.dataobj)
    ref = _bicubic_reference(data, 3, plane_axis=2)
    assert data.max() > np.percentile(data, 99.5)  # the crop has voxels above the clip
    if out.get_data_dtype() == np.float32:
        np.testing.assert_allclose(got, ref, atol=1e-4 * np.abs(data).max())
    else:
        info = np.iinfo(dtype)
        diff = np.abs(got.astype(np.int64) - np.clip(np.rint(ref), info.min, info.max))
        # fp32 steps of ~0.004 at 6e4 (uint16 case) flip the rounding of values near .5
        assert diff.max() <= 1 and (diff > 0).mean() < 5e-3


def test_cli_non_canonical_orientation_round_trip(colin_crop, bicubic_weights, tmp_path):
    """An LPI-like, axis-permuted copy of the crop gives the same voxels in the world, in its
    own orientation, as the RAS original."""
    src = nib.load(colin_crop)
    data = np.asanyarray(src.dataobj)
    to_pil = orientations.ornt_transform(orientations.axcodes2ornt("RAS"),
                                         orientations.axcodes2ornt("PIL"))
    pil_data = orientations.apply_orientation(data, to_pil)
    pil_aff = src.affine @ orientations.inv_ornt_aff(to_pil, data.shape)
    lr = _save_like(colin_crop, np.ascontiguousarray(pil_data), tmp_path / "pil.nii.gz", pil_aff)
    assert nib.aff2axcodes(nib.load(lr).affine) == ("P", "I", "L")
    for path in (colin_crop, lr):
        assert _infer("--input", path, "--output", tmp_path / f"sr_{path.name}",
                      "--weights", bicubic_weights[2], "--plane", "coronal") == 0
    ras, pil = (nib.load(tmp_path / f"sr_{p.name}") for p in (colin_crop, lr))
    assert nib.aff2axcodes(pil.affine) == ("P", "I", "L")
    np.testing.assert_allclose(pil.header.get_zooms(), [1.0, 0.5, 0.5])  # P kept, I and L halved
    back = nib.as_closest_canonical(pil)
    np.testing.assert_array_equal(np.asanyarray(back.dataobj), np.asanyarray(ras.dataobj))
    np.testing.assert_allclose(back.affine, ras.affine, atol=1e-4)
    np.testing.assert_allclose(geo.voxel_corners_world(pil.affine, pil.shape),
                               geo.voxel_corners_world(pil_aff, pil_data.shape), atol=1e-4)


def test_cli_4d_input_runs_every_volume(colin_crop, tiny_weights, tmp_path, capsys):
    data = np.asanyarray(nib.load(colin_crop).dataobj)
    series = _save_like(colin_crop, np.stack([data, 255 - data, data // 2], axis=-1),
                        tmp_path / "4d.nii.gz")
    hdr = nib.load(series).header
    hdr.set_zooms((1.0, 1.0, 1.0, 2.5))  # TR kept
    nib.save(nib.Nifti1Image(np.asanyarray(nib.load(series).dataobj), hdr.get_best_affine(), hdr),
             series)
    args = ("--input", series, "--weights", tiny_weights[2])
    assert _infer(*args, "--output", tmp_path / "all.nii.gz") == 0
    assert _infer(*args, "--output", tmp_path / "b.nii.gz", "--volume-index", "5") == 2
    assert "--volume-index 5 out of range (0..2)" in capsys.readouterr().err
    assert _infer(*args, "--output", tmp_path / "c.nii.gz", "--volume-index", "1") == 0
    single = _save_like(colin_crop, (255 - data)[..., None], tmp_path / "4d1.nii.gz")
    assert _infer("--input", single, "--weights", tiny_weights[2],
                  "--output", tmp_path / "d.nii.gz") == 0
    every, c, d = (nib.load(tmp_path / f"{n}.nii.gz") for n in ("all", "c", "d"))
    assert c.shape == d.shape == (74, 86, 5) and every.shape == (74, 86, 5, 3)
    assert every.header.get_zooms() == (0.5, 0.5, 1.0, 2.5)
    np.testing.assert_array_equal(np.asanyarray(c.dataobj), np.asanyarray(d.dataobj))
    # each volume is normalised on its own, as when run alone
    np.testing.assert_allclose(np.asanyarray(every.dataobj)[..., 1], np.asanyarray(c.dataobj),
                               atol=1e-4)
    sidecar = json.loads((tmp_path / "all.json").read_text())
    assert len(sidecar["normalisation"]["windows"]) == 3 and sidecar["input"]["volumes"] == 3


def test_cli_user_errors_are_one_line(colin_crop, tiny_weights, tmp_path, capsys):
    data = np.asanyarray(nib.load(colin_crop).dataobj).astype(np.float32)
    data[3, 4, 2] = np.nan
    nan_path = _save_like(colin_crop, data, tmp_path / "nan.nii.gz")
    cases = [
        (("--input", nan_path, "--output", tmp_path / "o.nii.gz"), "1 NaN/inf voxels"),
        (("--input", tmp_path / "none.nii", "--output", tmp_path / "o.nii.gz"), "not found"),
        (("--input", colin_crop, "--output", tmp_path / "o.txt"), "must end with .nii"),
    ]
    for args, message in cases:
        assert _infer(*args, "--weights", tiny_weights[2]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and err.startswith("w2amsn infer: error:") and "\n" not in err
    assert not (tmp_path / "o.nii.gz").exists()


def test_cli_dry_run_prints_plan_and_writes_nothing(colin_crop, tiny_weights, tmp_path, capsys):
    out_path = tmp_path / "sr.nii.gz"
    assert w2amsn_main(["infer", "--input", str(colin_crop), "--output", str(out_path),
                        "--weights", str(tiny_weights[2]), "--dry-run", "--max-pixels", "400",
                        "--tile-overlap", "4"]) == 0
    text = capsys.readouterr().out
    assert not out_path.exists()
    for part in ("shape 37x43x5", "voxel 1x1x1 mm, RAS", "5 slices of 43x37", "x2",
                 "shape 74x86x5, voxel 0.5x0.5x1 mm, float32", "W2AMSN", "bf16", "tiles of 12 px",
                 "plane   acquisition (default: the training plane is unknown)",
                 "training in-plane voxel size unknown"):
        assert part in text, part


def test_cli_analyze_input_writes_nifti(colin_crop, tiny_weights, tmp_path):
    src = nib.load(colin_crop)
    analyze = tmp_path / "lr.img"
    nib.save(nib.AnalyzeImage(np.asanyarray(src.dataobj).astype(np.int16), src.affine), analyze)
    out_path = tmp_path / "sr.nii"
    assert _infer("--input", analyze, "--output", out_path, "--weights", tiny_weights[2]) == 0
    out = nib.load(out_path)
    assert isinstance(out, nib.Nifti1Image) and out.get_data_dtype() == np.int16
    lr_img = nib.load(analyze)
    np.testing.assert_allclose(geo.voxel_corners_world(out.affine, out.shape),
                               geo.voxel_corners_world(lr_img.affine, lr_img.shape), atol=1e-4)


# --------------------------------------------------------------------------- device_caps

def _proc_cpuinfo(key: str) -> str | None:
    """First ``key`` value of /proc/cpuinfo, read here independently of device_caps."""
    try:
        lines = Path("/proc/cpuinfo").read_text(errors="replace").splitlines()
    except OSError:
        return None
    return next((v.strip() for k, _, v in (ln.partition(":") for ln in lines) if k.strip() == key), None)


def test_device_caps_report_this_machine():
    flags = set((_proc_cpuinfo("flags") or _proc_cpuinfo("Features") or "").split())
    isa = device_caps.cpu_capability()
    assert isa == torch.backends.cpu.get_cpu_capability()
    if isa.startswith("AVX512"):
        assert "avx512f" in flags or not flags
    elif isa == "AVX2":
        assert "avx2" in flags or not flags
    model = _proc_cpuinfo("model name")
    assert device_caps.cpu_model() == (model or device_caps.cpu_model()) and device_caps.cpu_model()
    assert device_caps.cpu_flags() == frozenset(flags)
    native = device_caps.native_bf16("cpu")
    if flags and not flags & {"avx512_bf16", "amx_bf16", "avx_ne_convert", "bf16"}:
        assert native is False, "no bf16 instructions: oneDNN would emulate bf16"
    assert device_caps.resolve_bf16(False, "cpu") is False
    assert device_caps.resolve_bf16(None, "cpu") is native
    # an options file's true | false | auto
    assert device_caps.resolve_bf16_option(False, "cpu") is False
    assert device_caps.resolve_bf16_option("auto", "cpu") is native
    assert device_caps.describe_device("cpu") == (
        f"cpu {device_caps.cpu_model()}, {isa}, {torch.get_num_threads()} threads, "
        f"native bf16: {'yes' if native else 'no'}")


@pytest.mark.parametrize("onednn, flags, native", [
    (True, {"avx512f", "avx512_bf16"}, True), (True, {"amx_bf16"}, True), (True, {"bf16"}, True),
    (True, {"avx512f", "avx2"}, False),  # oneDNN "supports" bf16 on plain AVX512 by emulation
    (True, set(), True),  # no /proc/cpuinfo: trust oneDNN
    (False, {"avx512_bf16"}, False)])
def test_native_bf16_needs_onednn_and_the_instructions(monkeypatch, onednn, flags, native):
    monkeypatch.setattr(device_caps, "_onednn_reports_bf16", lambda: onednn)
    monkeypatch.setattr(device_caps, "cpu_flags", lambda: frozenset(flags))
    device_caps._native_bf16_cpu.cache_clear()
    try:
        assert device_caps.native_bf16("cpu") is native
    finally:
        device_caps._native_bf16_cpu.cache_clear()


def test_explicit_bf16_on_emulating_cpu_warns_once(monkeypatch):
    monkeypatch.setattr(device_caps, "native_bf16", lambda device="cpu": False)
    monkeypatch.setattr(device_caps, "_warned_slow_bf16", set())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert device_caps.resolve_bf16(True, "cpu") is True
        assert device_caps.resolve_bf16(True, "cpu") is True
        assert device_caps.resolve_bf16(None, "cpu") is False
    assert len(caught) == 1 and "slower" in str(caught[0].message)
    assert "\n" not in str(caught[0].message)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_matches_cpu():
    torch.manual_seed(0)
    net = W2AMSN(num_feat=4, num_block=1, upscale=2)
    vol = np.random.default_rng(4).random((20, 17, 4)).astype(np.float32)
    cpu = infer.super_resolve_volume(vol, net, 2, bf16=False, device="cpu")
    gpu = infer.super_resolve_volume(vol, net, 2, bf16=False, device="cuda")  # TF32 convs
    np.testing.assert_allclose(gpu, cpu, atol=2e-3)
    ens_cpu = infer.super_resolve_volume(vol, net, 2, self_ensemble=True, bf16=False)
    ens_gpu = infer.super_resolve_volume(vol, net, 2, self_ensemble=True, device="cuda")  # bf16 auto
    np.testing.assert_allclose(ens_gpu, ens_cpu, atol=1e-2)


# --------------------------------------------------------------------------- the engine

class _CountingNet(nn.Module):
    """Bicubic x2 that records the LR pixels of every call (and fails on big batches when asked)."""

    def __init__(self, oom_above: int | None = None) -> None:
        super().__init__()
        self.pixels: list[int] = []
        self.oom_above = oom_above

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.oom_above is not None and x.shape[0] > self.oom_above:
            raise torch.OutOfMemoryError("fake: out of memory")
        self.pixels.append(x.numel())
        return infer.bicubic_upsample(x, 2)


def _old_ensemble(vol: np.ndarray, net: nn.Module) -> np.ndarray:
    """The ensemble as it was first written: all 8 transforms of whole slices in one call
    (archs.self_ensemble), slice by slice along axis 0."""
    from w2amsn_plugin.archs.self_ensemble import self_ensemble

    with torch.inference_mode():
        x = torch.from_numpy(vol).unsqueeze(1)
        return self_ensemble(lambda t: net(t).float(), x)[:, 0].numpy()


def test_ensemble_runs_at_the_plain_plan_and_gives_the_old_results():
    vol = np.random.default_rng(5).random((4, 40, 37)).astype(np.float32)
    counting = _CountingNet()
    plan = infer.TilePlan(batch=2, tile=16, overlap=4)
    engine._run_plan(vol, counting, 2, 0, plan, False, False, "cpu")
    plain = list(counting.pixels)
    counting.pixels.clear()
    engine._run_plan(vol, counting, 2, 0, plan, True, False, "cpu")
    assert len(counting.pixels) == 8 * len(plain) and max(counting.pixels) == max(plain)
    assert sum(counting.pixels) == 8 * sum(plain)
    assert len(counting.pixels) == plan.forward_calls(4, 40, 37, self_ensemble=True)
    # a short batch (2 square slices, room for 8 windows) takes 4 transforms per call
    for shape, calls in (((2, 16, 16), 2), ((2, 16, 12), 2), ((3, 16, 16), 4)):
        counting.pixels.clear()
        engine._run_plan(vol[:shape[0], :shape[1], :shape[2]], counting, 2, 0,
                         infer.TilePlan(batch=8), True, False, "cpu")
        assert len(counting.pixels) == calls == infer.TilePlan(batch=8).forward_calls(
            *shape, self_ensemble=True)
        assert max(counting.pixels) <= 8 * shape[1] * shape[2]
    torch.manual_seed(0)
    net = W2AMSN(num_feat=4, num_block=1, upscale=2).eval()
    new = infer.super_resolve_volume(vol, net, 2, plane_axis=0, self_ensemble=True, bf16=False)
    np.testing.assert_allclose(new, _old_ensemble(vol, net), atol=1e-5)


def test_tiled_ensemble_equals_untiled_for_a_local_network():
    torch.manual_seed(0)
    net = W2AMSN(num_feat=4, num_block=1, upscale=2, block_attention="none",
                 global_attention="none")
    vol = np.random.default_rng(6).random((2, 45, 38)).astype(np.float32)
    whole = engine._run_plan(vol, net, 2, 0, infer.TilePlan(batch=8), True, False, "cpu")
    tiled = engine._run_plan(vol, net, 2, 0, infer.TilePlan(batch=3, tile=16, overlap=12),
                             True, False, "cpu")
    assert np.abs(tiled - whole).max() < 1e-5


@pytest.mark.parametrize("tile", [None, 12])
def test_device_path_on_cpu_staged_copies_and_normalisation(tile):
    """The CUDA path's pieces on the CPU: per-batch normalisation from the volume's window,
    double-buffered copy-back, equal to normalising the whole volume first (the old way)."""
    from w2amsn_plugin.data.normalization import normalize_intensity

    torch.manual_seed(0)
    net = W2AMSN(num_feat=4, num_block=1, upscale=2).eval()
    vol = (np.random.default_rng(7).random((5, 30, 26)) * 900).astype(np.float32)
    vol[2, 3, 4] = 5000  # above the clip: bicubic of the excess is added back
    norm, lo, hi = normalize_intensity(vol)
    plan = infer.TilePlan(batch=2, tile=tile, overlap=6)
    direct = engine._run_plan(norm, net, 2, 0, plan, False, False, "cpu")
    excess = torch.from_numpy(np.maximum(vol - np.float32(hi), 0) / np.float32(hi - lo))
    expected = (direct + infer.bicubic_upsample(excess, 2).numpy()) * np.float32(hi - lo) + lo
    for staged in (False, True):
        got = engine._run_plan(vol, net, 2, 0, plan, False, False, "cpu",
                               window=engine._Window(lo, hi), staged=staged)
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5 * hi)
    np.testing.assert_allclose(infer.super_resolve_array(vol, net, 2, plane_axis=0, plan=plan,
                                                         bf16=False), expected, rtol=1e-5,
                               atol=1e-5 * hi)


def test_out_of_memory_batches_are_split():
    vol = np.random.default_rng(8).random((7, 9, 11)).astype(np.float32)
    net = _CountingNet(oom_above=2)
    got = engine._run_plan(vol, net, 2, 0, infer.TilePlan(batch=7), False, False, "cpu")
    np.testing.assert_allclose(got, _bicubic_reference(vol, 2, 0), atol=1e-5)
    assert max(net.pixels) <= 2 * 9 * 11
    with pytest.raises(torch.OutOfMemoryError):
        engine._run_plan(vol, _CountingNet(oom_above=0), 2, 0, infer.TilePlan(batch=7), False,
                         False, "cpu")


def test_devices_and_memory_budget():
    assert engine.check_device("cpu") == torch.device("cpu")
    net = W2AMSN(num_feat=4, num_block=1, upscale=2)
    assert not net.conv_last.weight.is_contiguous(memory_format=torch.channels_last)
    assert engine._prepare(net, torch.device("cpu")) is net and not net.training
    assert net.conv_last.weight.is_contiguous(memory_format=torch.channels_last)
    assert tiling.auto_max_pixels("cpu", 4, True) == infer.DEFAULT_MAX_PIXELS
    for bad, message in (("banana", "not a device"), ("meta", "only cpu and cuda")):
        with pytest.raises(infer.InferenceError, match=message):
            engine.check_device(bad)
    if not torch.cuda.is_available():
        with pytest.raises(infer.InferenceError, match="CUDA is not available"):
            engine.check_device("cuda:0")
    with pytest.raises(infer.InferenceError, match="under 8 px"):
        infer.plan_tiles(100, 100, tile=7)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_path_matches_cpu_with_staged_copies():
    torch.manual_seed(0)
    net = W2AMSN(num_feat=4, num_block=1, upscale=2)
    vol = (np.random.default_rng(9).random((6, 40, 33)) * 700).astype(np.float32)
    plan = infer.TilePlan(batch=2, tile=16, overlap=8)
    cpu = infer.super_resolve_array(vol, net, 2, plane_axis=0, plan=plan, bf16=False)
    gpu = infer.super_resolve_array(vol, net, 2, plane_axis=0, plan=plan, bf16=False,
                                    device="cuda")  # TF32 convolutions
    np.testing.assert_allclose(gpu, cpu, atol=2e-3 * 700)
    assert tiling.auto_max_pixels("cuda", 2) >= infer.DEFAULT_MAX_PIXELS


# --------------------------------------------------------------------------- the CLI

def _manifest_experiment(root: Path, protocol: dict | None, scale: int = 2) -> Path:
    """An experiment run in ``root`` (BasicSR layout) whose options name a database beside a
    manifest ``IXI_T1_split.json`` carrying ``protocol`` (none: an older manifest)."""
    db = root / "datasets" / "IXI_T1"
    db.mkdir(parents=True)
    (db / "IXI_T1_split.json").write_text(json.dumps(
        {"volumes": [], **({"protocol": protocol} if protocol is not None else {})}))
    exp = root / "experiments" / "T1_x2"
    weights = _experiment(exp, TINY, scale)
    opt = yaml.safe_load((exp / "T1_x2.yml").read_text())
    opt["datasets"] = {"train": {"dataroot_gt": "datasets/IXI_T1/IXI_T1_train_HR.lmdb",
                                 "gt_size": 40}}
    (exp / "T1_x2.yml").write_text(yaml.safe_dump(opt))
    return weights


def test_training_protocol_is_found_from_the_experiment_root(tmp_path, monkeypatch):
    from w2amsn_plugin.inference.loading import load_model_info
    from w2amsn_plugin.inference.protocol import training_protocol

    weights = _manifest_experiment(tmp_path, {"plane": "sagittal", "in_plane_voxel_mm": [0.9375, 0.9375],
                                              "percentile": 99.0})
    monkeypatch.chdir(weights.parent)  # not the folder training ran in
    model = load_model_info(weights)
    proto = training_protocol(model.options, model.options_path, model.scale)
    assert proto.manifest == tmp_path / "datasets" / "IXI_T1" / "IXI_T1_split.json"
    assert (proto.plane, proto.in_plane_voxel_mm, proto.percentile, proto.lr_patch) == (
        "sagittal", (0.9375, 0.9375), 99.0, 20)
    old = training_protocol({"datasets": {"train": {"dataroot_gt": "nowhere/IXI_T1_train_HR.lmdb"}}},
                            None, 2)
    assert (old.manifest, old.plane, old.in_plane_voxel_mm, old.percentile) == (None,) * 4


def test_cli_plane_and_percentile_default_to_the_training_manifest(colin_crop, tmp_path, capsys):
    weights = _manifest_experiment(tmp_path, {"plane": "coronal", "in_plane_voxel_mm": [1.0, 1.05],
                                              "percentile": 99.0})
    assert _infer("--input", colin_crop, "--output", tmp_path / "sr.nii.gz", "--weights", weights,
                  "--dry-run") == 0
    text = capsys.readouterr().out
    assert "plane   coronal (the model was trained on coronal slices only (training manifest" in text
    assert "percentile 99 (the training manifest" in text
    assert "input in-plane 1x1 mm vs training 1x1.05 mm" in text and "within 30%" in text
    assert _infer("--input", colin_crop, "--output", tmp_path / "sr.nii.gz", "--weights", weights,
                  "--plane", "axial", "--dry-run") == 0
    assert "plane   axial (--plane)" in capsys.readouterr().out


def test_cli_voxel_size_warning_is_one_line(colin_crop, tmp_path, capsys):
    weights = _manifest_experiment(tmp_path, {"plane": "axial", "in_plane_voxel_mm": [0.5, 0.5]})
    out_path = tmp_path / "sr.nii.gz"
    assert _infer("--input", colin_crop, "--output", out_path, "--weights", weights) == 0
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("w2amsn infer: warning: ")
    assert "1x1 mm is 100% off the training slices' 0.5x0.5 mm" in err[0]
    assert json.loads((tmp_path / "sr.json").read_text())["warnings"] == [err[0][23:]]


def test_cli_sidecar_records_the_provenance(colin_crop, tiny_weights, tmp_path, capsys):
    import hashlib

    out_path = tmp_path / "sr.nii.gz"
    assert _infer("--input", colin_crop, "--output", out_path, "--weights", tiny_weights[2],
                  "--self-ensemble") == 0
    rec = json.loads((tmp_path / "sr.json").read_text())
    sha = lambda p: hashlib.sha256(Path(p).read_bytes()).hexdigest()  # noqa: E731
    assert rec["input"]["sha256"] == sha(colin_crop) and rec["input"]["path"] == str(colin_crop)
    assert rec["weights"]["sha256"] == sha(tiny_weights[2]) and rec["weights"]["params"] == "params"
    values = sum(t.numel() for t in torch.load(tiny_weights[2])["params"].values())
    assert rec["network"] == {"type": "W2AMSN", "scale": 2, "values": values}
    options = tiny_weights[2].parents[1] / f"{tiny_weights[2].parents[1].name}.yml"
    assert rec["options"] == {"path": str(options), "sha256": sha(options)}
    assert rec["self_ensemble"] is True
    assert rec["plane"]["name"] == "acquisition" and rec["plane"]["anatomical"] == "axial"
    assert rec["precision"] == "fp32" and rec["tiling"]["forward_calls"] == 8  # 1 batch x 8
    assert set(rec["versions"]) == {"w2amsn_plugin", "torch", "basicsr", "nibabel", "numpy", "python"}
    assert rec["wall_seconds"] > 0 and rec["output"]["dtype"] == "float32"
    lo, hi = rec["normalisation"]["windows"][0]
    data = np.asanyarray(nib.load(colin_crop).dataobj).astype(np.float32)
    assert (lo, hi) == (float(data.min()), float(np.percentile(data, 99.5)))
    descrip = nib.load(out_path).header["descrip"].item().decode()
    original = nib.load(colin_crop).header["descrip"].item().decode()
    assert descrip == f"{original}; w2amsn {w2amsn_plugin.__version__} x2 acquisition SR"
    # --dry-run --json: the same record, planned
    capsys.readouterr()
    assert _infer("--input", colin_crop, "--output", tmp_path / "p.nii.gz", "--weights",
                  tiny_weights[2], "--self-ensemble", "--dry-run", "--json") == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["dry_run"] is True and plan["wall_seconds"] is None
    assert not (tmp_path / "p.nii.gz").exists() and not (tmp_path / "p.json").exists()
    for key in ("input", "weights", "network", "plane", "normalisation", "tiling"):
        assert plan[key] == rec[key] or key == "input" and plan[key]["sha256"] == rec[key]["sha256"]
    # --json after a run prints the sidecar
    assert _infer("--input", colin_crop, "--output", tmp_path / "j.nii", "--weights",
                  tiny_weights[2], "--json") == 0
    assert json.loads(capsys.readouterr().out) == json.loads((tmp_path / "j.json").read_text())


@pytest.mark.parametrize("dtype,choice,expected", [
    (np.uint8, "auto", np.float32), (np.uint8, "input", np.uint8), (np.int8, "auto", np.float32),
    (np.int16, "auto", np.int16), (np.uint16, "auto", np.uint16), (np.int16, "float32", np.float32),
    (np.float64, "auto", np.float32), (np.float64, "input", np.float64), (np.uint8, "int16", np.int16)])
def test_output_dtype_rule(dtype, choice, expected):
    from w2amsn_plugin.inference.volumes import output_dtype

    assert output_dtype(choice, np.dtype(dtype), nib.Nifti1Image)[0] == expected


def test_cli_dtype_choice_and_refusal(colin_crop, bicubic_weights, tmp_path, capsys):
    out = tmp_path / "u8.nii.gz"
    assert _infer("--input", colin_crop, "--output", out, "--weights", bicubic_weights[2],
                  "--dtype", "input") == 0
    assert nib.load(out).get_data_dtype() == np.uint8
    analyze = tmp_path / "lr.img"
    src = nib.load(colin_crop)
    nib.save(nib.AnalyzeImage(np.asanyarray(src.dataobj).astype(np.int16), src.affine), analyze)
    assert _infer("--input", analyze, "--output", tmp_path / "a.img", "--weights",
                  bicubic_weights[2], "--dtype", "uint16") == 2
    err = capsys.readouterr().err.strip()
    assert err == ("w2amsn infer: error: --dtype uint16: Spm2AnalyzeImage cannot store uint16; "
                   "choose another --dtype or output format")
    assert not (tmp_path / "a.img").exists() and not (tmp_path / "a.hdr").exists()


FORMATS = [  # (input class, input name, output name, output class)
    (nib.Nifti1Image, "in.nii.gz", "out.mgz", nib.MGHImage),
    (nib.MGHImage, "in.mgz", "out.mgz", nib.MGHImage),
    (nib.MGHImage, "in.mgh", "out.nii", nib.Nifti1Image),
    (nib.Nifti2Image, "in.nii", "out.nii.gz", nib.Nifti2Image),
    (nib.Nifti1Pair, "in.img", "out.hdr", nib.Nifti1Pair),
    (nib.Spm2AnalyzeImage, "in.img", "out.img", nib.Spm2AnalyzeImage),  # nibabel reads Analyze so
    (nib.MGHImage, "in.mgz", "out.img", nib.Nifti1Pair),
]


@pytest.mark.parametrize("in_class,in_name,out_name,out_class", FORMATS)
def test_cli_formats_in_and_out(colin_crop, bicubic_weights, tmp_path, in_class, in_name,
                                out_name, out_class):
    src = nib.load(colin_crop)
    data = np.asanyarray(src.dataobj).astype(np.int16)
    lr = tmp_path / in_name
    nib.save(in_class(data, src.affine), lr)
    assert type(nib.load(lr)) is in_class
    out_path = tmp_path / out_name
    assert _infer("--input", lr, "--output", out_path, "--weights", bicubic_weights[2]) == 0
    out, lr_img = nib.load(out_path), nib.load(lr)
    assert type(out) is out_class and out.get_data_dtype().newbyteorder("=") == np.int16
    assert out.shape == (74, 86, 5)
    np.testing.assert_allclose(geo.voxel_corners_world(out.affine, out.shape),
                               geo.voxel_corners_world(lr_img.affine, lr_img.shape), atol=1e-4)
    ref = _bicubic_reference(data, 2, plane_axis=2)
    got = np.asanyarray(out.dataobj).astype(np.float64)
    assert np.abs(got - np.clip(np.rint(ref), -32768, 32767)).max() <= 1
    assert (tmp_path / "out.json").is_file()


def test_cli_acquisition_plane_of_an_anisotropic_scan(colin_crop, bicubic_weights, tmp_path, capsys):
    """IXI's T1 is stored sagittal-first with 1.2 mm between sagittal slices: by default
    (acquisition) the sagittal plane is super-resolved, whatever the stored axis order."""
    data = np.asanyarray(nib.load(colin_crop).dataobj).astype(np.float32)
    aff = np.diag([1.2, 0.94, 0.94, 1.0])
    lr = tmp_path / "t1.nii.gz"
    nib.save(nib.Nifti1Image(data, aff), lr)
    assert _infer("--input", lr, "--output", tmp_path / "sr.nii.gz", "--weights",
                  bicubic_weights[2]) == 0
    out = nib.load(tmp_path / "sr.nii.gz")
    assert out.shape == (37, 86, 10)
    np.testing.assert_allclose(out.header.get_zooms(), [1.2, 0.47, 0.47])
    rec = json.loads((tmp_path / "sr.json").read_text())
    assert (rec["plane"]["name"], rec["plane"]["anatomical"], rec["plane"]["ras_axis"]) == (
        "acquisition", "sagittal", 0)
