"""The methods of the paper's Tables II and III (archs/*_arch.py): every registered preset builds
through BasicSR at x2/x3/x4 with the right output shape, the new networks have the parameter
counts of independent formulas of their papers' configurations, and each trains (the L1 loss
falls on a tiny batch). NLM, which has no weights, is checked for what it does instead."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

import w2amsn_plugin  # noqa: F401  (registers the archs)
from basicsr.archs import build_network
from w2amsn_plugin.archs import PRESETS, preset, trainable
from w2amsn_plugin.archs.bicubic import downscale as bicubic_downscale_torch
from w2amsn_plugin.archs.bicubic import upsample as bicubic_upsample
from w2amsn_plugin.archs.nlm_arch import nlm_filter

#: tiny widths per preset (the structure kept; only for speed)
TINY: dict[str, dict] = {
    "SRCNN": {"num_feat": [8, 4], "kernel_sizes": [5, 3, 3]},
    "VDSR": {"num_feat": 8, "num_layer": 4},
    "RDN": {"num_feat": 8, "num_block": 2, "num_layer": 2, "growth": 4},
    "CSN": {"num_feat": 8, "num_block": 2, "num_unit": 2},
    "CSFM": {"num_feat": 16, "num_block": 2, "num_csar": 2, "reduction": 4},
    "EDSR": {"num_feat": 8, "num_block": 2},
    "RCAN": {"num_feat": 16, "num_group": 2, "num_block": 2, "squeeze_factor": 4},
    "W2AMSN": {"num_feat": 4, "num_block": 2, "widen": 2},
    "W2AMSN-S": {"num_feat": 4, "num_block": 2, "widen": 2},
    "NLM": {"num_iter": 2, "bp_iter": 1},
}


def _tiny(name: str, scale: int) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_network({**preset(name, scale), **copy.deepcopy(TINY.get(name, {}))})


def test_every_preset_has_a_tiny_configuration() -> None:
    assert set(PRESETS) <= set(TINY), "add a tiny configuration for the new network to TINY"


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("name", sorted(PRESETS))
def test_output_shape_and_scale(name: str, scale: int) -> None:
    net = _tiny(name, scale).eval()
    x = torch.rand(2, 1, 12, 10)
    with torch.no_grad():
        y = net(x)
    assert y.shape == (2, 1, 12 * scale, 10 * scale) and torch.isfinite(y).all()


# --- parameter counts: the papers' configurations, written out layer by layer -----------------
def _conv(k: int, cin: int, cout: int) -> int:
    return k * k * cin * cout + cout


def _subpixel(g0: int, scale: int) -> int:
    steps = [2, 2] if scale == 4 else [scale]
    return sum(_conv(3, g0, g0 * r * r) for r in steps)


def _srcnn(scale: int) -> int:  # 9-5-5, n1 = 64, n2 = 32
    return _conv(9, 1, 64) + _conv(5, 64, 32) + _conv(5, 32, 1)


def _vdsr(scale: int) -> int:  # 20 layers of 64
    return _conv(3, 1, 64) + 18 * _conv(3, 64, 64) + _conv(3, 64, 1)


def _rdn(scale: int, d: int = 16, c: int = 8, g: int = 64, g0: int = 64) -> int:
    rdb = sum(_conv(3, g0 + i * g, g) for i in range(c)) + _conv(1, g0 + c * g, g0)
    return (_conv(3, 1, g0) + _conv(3, g0, g0) + d * rdb + _conv(1, d * g0, g0) + _conv(3, g0, g0)
            + _subpixel(g0, scale) + _conv(3, g0, 1))


def _csn(scale: int, f: int = 64, b: int = 16, u: int = 4) -> int:
    half = f // 2
    unit = _conv(3, half, half) * 2
    dense = sum(_conv(3, half * (k + 1), half) + _conv(3, half, half) for k in range(u))
    csb = u * unit + dense + _conv(1, f, f)
    return _conv(3, 1, f) + b * csb + _conv(3, f, f) + _subpixel(f, scale) + _conv(3, f, 1)


def _csfm(scale: int, c: int = 64, m: int = 16, b: int = 16, r: int = 16, gamma: int = 2) -> int:
    csar = (2 * _conv(3, c, c) + _conv(1, c, c // r) + _conv(1, c // r, c)
            + _conv(1, c, gamma * c) + _conv(1, gamma * c, 1) + _conv(1, 2 * c, c))
    gates = sum(_conv(1, (i + 2) * c, c) for i in range(m))
    return _conv(3, 1, c) + m * b * csar + gates + _conv(3, c, c) + _subpixel(c, scale) + _conv(3, c, 1)


FORMULAS = {"SRCNN": _srcnn, "VDSR": _vdsr, "RDN": _rdn, "CSN": _csn, "CSFM": _csfm}


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("name", sorted(FORMULAS))
def test_parameter_count_matches_the_formula(name: str, scale: int) -> None:
    with torch.device("meta"):
        net = build_network(preset(name, scale))
    assert sum(p.numel() for p in net.parameters()) == FORMULAS[name](scale)


def test_rdn_has_table_ii_size() -> None:
    """D=16, C=8, G=G0=64 at x2 is Table II's 22.12M (one channel in and out)."""
    assert round(_rdn(2) / 1e6, 2) == 22.12


@pytest.mark.parametrize("name", sorted(n for n in PRESETS if n != "NLM"))
def test_trains_loss_falls(name: str) -> None:
    net = _tiny(name, 2).train()
    torch.manual_seed(1)
    hr = F.avg_pool2d(torch.rand(4, 1, 32, 32), 2, 1, padding=0)[..., :24, :24]  # smooth-ish
    lr = bicubic_downscale_torch(hr, 2)
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    losses = []
    for _ in range(25):
        loss = F.l1_loss(net(lr), hr)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    # residual networks (VDSR) start at the bicubic error, the others far above it
    assert min(losses[-5:]) < 0.97 * losses[0], losses


def test_nlm_has_no_weights_and_options_test_it_without_any() -> None:
    from w2amsn_plugin import experiments as ex

    assert not trainable("NLM") and all(trainable(n) for n in PRESETS if n != "NLM")
    exp = ex.Experiment("NLM", "T1", 2, "NLM")
    assert ex.eval_options(exp, False)["path"]["pretrain_network_g"] is None
    files = ex.option_files()
    assert "test/NLM/test_NLM_T1_x2.yml" in files and "train/NLM/train_NLM_T1_x2.yml" not in files
    for name in PRESETS:  # the options matrix: every registered network, PD/T1/T2 x2/x3/x4
        arch = name.replace("-", "_")
        for mod in ex.MODALITIES:
            for scale in ex.SCALES:
                assert f"test/{arch}/test_{arch}_{mod}_x{scale}.yml" in files
                assert (f"train/{arch}/train_{arch}_{mod}_x{scale}.yml" in files) == trainable(name)


def _smooth_slice(n: int = 48) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, n), torch.linspace(-1, 1, n), indexing="ij")
    disk = ((xx ** 2 + yy ** 2) < 0.6).float() * 0.6 + ((xx.abs() < 0.2) & (yy.abs() < 0.5)).float() * 0.3
    return F.avg_pool2d(disk[None, None], 3, 1, padding=1)


def test_nlm_upsampling_is_consistent_with_the_lr_image_and_beats_bicubic() -> None:
    hr = _smooth_slice()
    lr = bicubic_downscale_torch(hr, 2)
    net = build_network(preset("NLM", 2)).eval()
    with torch.no_grad():
        out = net(lr)
    bicubic = bicubic_upsample(lr, 2)
    # the back-projection constraint: the degraded result is closer to the LR data than bicubic's
    def lr_error(img: torch.Tensor) -> float:
        return float((bicubic_downscale_torch(img, 2) - lr).abs().mean())

    assert lr_error(out) < lr_error(bicubic)
    assert F.mse_loss(out, hr) < F.mse_loss(bicubic, hr)


def test_nlm_filter_is_the_weighted_mean_of_its_window() -> None:
    """Against a direct loop over one pixel's 7x7 window (3x3 patches, reflect borders)."""
    torch.manual_seed(0)
    x = torch.rand(1, 1, 12, 12)
    h, i, j = 0.3, 6, 5
    out = nlm_filter(x, h)
    pad = F.pad(x, (4, 4, 4, 4), mode="reflect")[0, 0]  # 3 for the window + 1 for the patch
    pp = F.pad(x, (1, 1, 1, 1), mode="replicate")[0, 0]

    def patch_of(img: torch.Tensor, a: int, b: int) -> torch.Tensor:
        return img[a - 1:a + 2, b - 1:b + 2]

    ref_patch = patch_of(pp, i + 1, j + 1)
    num = den = best = 0.0
    for dy in range(-3, 4):
        for dx in range(-3, 4):
            if dy == dx == 0:
                continue
            # the shifted image's patch (its border replicated from the shifted, reflected copy)
            shifted = pad[1 + 3 + dy:1 + 3 + dy + 12, 1 + 3 + dx:1 + 3 + dx + 12]
            sp = F.pad(shifted[None, None], (1, 1, 1, 1), mode="replicate")[0, 0]
            d = ((ref_patch - patch_of(sp, i + 1, j + 1)) ** 2).mean()
            w = float(torch.exp(-d / h ** 2))
            num, den, best = num + w * float(shifted[i, j]), den + w, max(best, w)
    expected = (num + best * float(x[0, 0, i, j])) / (den + best)
    assert float(out[0, 0, i, j]) == pytest.approx(expected, rel=1e-5)


def test_nlm_slice_takes_seconds() -> None:
    """A 120x120 LR slice at x2 in well under a minute on one CPU thread (vectorised)."""
    import time

    net = build_network(preset("NLM", 2)).eval()
    t0 = time.process_time()
    with torch.no_grad():
        net(torch.rand(1, 1, 120, 120))
    assert time.process_time() - t0 < 60


# --- the generated options run through basicsr train / basicsr test ---------------------------
NEW = ("SRCNN", "VDSR", "RDN", "CSN", "CSFM", "NLM")


@pytest.fixture(scope="module")
def t1_lmdb(tmp_path_factory: pytest.TempPathFactory):
    """T1 x2 LMDBs of three fake IXI subjects (train, val, test: one each), 64x64 slices, 2 each."""
    from w2amsn_plugin.data.fake_ixi import make_fake_ixi_tree
    from w2amsn_plugin.data.prepare import PrepConfig, make_ixi_lmdb

    root = tmp_path_factory.mktemp("baseline_lmdb")
    make_fake_ixi_tree(root / "ixi", 3, ("T1",), shape=(70, 70, 6))
    make_ixi_lmdb(PrepConfig(ixi_root=root / "ixi", modality="T1", out=root / "IXI_T1", scales=(2,),
                             n_train=1, n_test=1, n_val=1, crop=(64, 64, 2), workers=1, progress=False),
                  log=lambda m: None)
    return root / "IXI_T1"


def _shrunk(path, name: str, lmdb, out):
    """The committed options file ``path``, on ``lmdb``, with the tiny network of ``name``."""
    from pathlib import Path

    import yaml

    opt = yaml.safe_load(Path(path).read_text())
    opt["num_gpu"] = 0
    opt["network_g"].update(TINY[name])
    for section in opt["datasets"].values():
        for key in ("dataroot_gt", "dataroot_lq"):
            section[key] = str(lmdb / Path(section[key]).name)
    if "train" in opt:
        opt["datasets"].pop("val")
        opt["datasets"]["train"].update({"batch_size_per_gpu": 2, "gt_size": 32, "num_worker_per_gpu": 0,
                                         "on_device": False})
        opt["train"]["total_iter"] = 2
        opt["logger"].update({"print_freq": 1, "save_checkpoint_freq": 2, "use_tb_logger": False})
    out.write_text(yaml.safe_dump(opt, sort_keys=False))
    return out, opt


def _infer_runs(weights, options, tmp_path) -> None:
    """``w2amsn infer`` super-resolves a small NIfTI volume with the trained weights."""
    import nibabel as nib
    import numpy as np

    from w2amsn_plugin.cli import w2amsn_main

    vol = F.avg_pool2d(torch.rand(3, 1, 20, 18), 3, 1, padding=1)[:, 0].permute(1, 2, 0).numpy()
    nib.save(nib.Nifti1Image((vol * 1000).astype(np.float32), np.diag([2.0, 2.0, 4.0, 1.0])),
             tmp_path / "lr.nii.gz")
    assert w2amsn_main(["infer", "-i", str(tmp_path / "lr.nii.gz"), "-o", str(tmp_path / "sr.nii.gz"),
                        "-w", str(weights), "--options", str(options), "-q"]) == 0
    assert nib.load(tmp_path / "sr.nii.gz").shape == (40, 36, 3)


@pytest.mark.parametrize("name", NEW)
def test_generated_options_train_and_test_through_basicsr(name, t1_lmdb, tmp_path, monkeypatch) -> None:
    """``basicsr train -opt`` (2 iterations) then ``basicsr test -opt`` on the committed T1 x2
    options, which writes the method's Table III row (per-volume CSV); ``w2amsn infer`` with the
    trained weights (NLM has none to give it)."""
    import csv
    from pathlib import Path

    from w2amsn_plugin.cli import basicsr_main

    repo = Path(__file__).resolve().parents[2]
    monkeypatch.chdir(tmp_path)
    if trainable(name):
        train, opt = _shrunk(repo / f"options/train/{name}/train_{name}_T1_x2.yml", name, t1_lmdb,
                             tmp_path / "train.yml")
        assert basicsr_main(["train", "-opt", str(train)]) == 0
        weights = tmp_path / "experiments" / opt["name"] / "models" / "net_g_latest.pth"
        assert weights.is_file()
        _infer_runs(weights, train, tmp_path)
    test, opt = _shrunk(repo / f"options/test/{name}/test_{name}_T1_x2.yml", name, t1_lmdb,
                        tmp_path / "test.yml")
    assert basicsr_main(["test", "-opt", str(test)]) == 0
    [table] = sorted((tmp_path / "results" / opt["name"]).glob("*_volumes.csv"))
    with open(table, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["method"] == name]
    assert len(rows) == 1 and float(rows[0]["psnr"]) == pytest.approx(float(rows[0]["psnr"]))  # finite
