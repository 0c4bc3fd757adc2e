"""``w2amsn calibrate``: bicubic scores under each protocol reading against Table III's Bicubic
column, on a small fake IXI tree (real anatomy, IXI's stored orientations)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import w2amsn_plugin  # noqa: F401,I001  (compat before basicsr)
from w2amsn_plugin.cli import w2amsn_main
from w2amsn_plugin.data.calibration import SHIPPED, TABLE_III_BICUBIC, Variant, volume_sums
from w2amsn_plugin.data.degradations import bicubic_downscale
from w2amsn_plugin.data.fake_ixi import make_fake_ixi_tree
from w2amsn_plugin.data.ixi import crop_stack, load_canonical
from w2amsn_plugin.data.normalization import normalize_intensity
from w2amsn_plugin.data.planes import plane_stack
from w2amsn_plugin.data.png16 import quantize
from w2amsn_plugin.data.degradations import bicubic_upsample
from w2amsn_plugin.metrics import (calculate_psnr_fg, calculate_psnr_mr, calculate_ssim_fg,
                                   calculate_ssim_mr)

CROP = (48, 60, 3)  # width, height, slices


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ixi")
    make_fake_ixi_tree(root, 3, ("T1",), shape=(64, 72, 20), voxel_mm=(1.0, 1.0, 1.2))
    return root


def test_table_iii_bicubic_column_is_the_papers():
    assert TABLE_III_BICUBIC["T1"][2] == (33.80, 0.9525)
    assert TABLE_III_BICUBIC["PD"][4] == (29.13, 0.8799)
    assert TABLE_III_BICUBIC["T2"][3] == (29.80, 0.9093)
    assert sum(len(v) for v in TABLE_III_BICUBIC.values()) == 9


def test_scores_equal_the_plugins_metrics_slice_by_slice(tree: Path):
    path = sorted(tree.glob("*.nii.gz"))[0]
    sums = volume_sums(path, [2], ["acquisition"], CROP)
    norm = normalize_intensity(load_canonical(path)[0], 99.5)[0]
    stack, _ = crop_stack(plane_stack(norm, 0), CROP[1], CROP[0], CROP[2])  # T1: sagittal
    hr = quantize(stack, 16) / 65535.0
    lr = quantize(np.clip(bicubic_downscale(hr, 2), 0, 1), 16) / 65535.0
    sr = quantize(np.clip(bicubic_upsample(torch.from_numpy(lr), 2).numpy(), 0, 1), 16) / 65535.0
    for border, crop_border in (("scale", 2), ("none", 0)):
        for region, psnr_fn, ssim_fn in (("whole", calculate_psnr_mr, calculate_ssim_mr),
                                         ("foreground", calculate_psnr_fg, calculate_ssim_fg)):
            psnr = [psnr_fn(s, g, crop_border=crop_border) for s, g in zip(sr, hr)]
            ssim = [ssim_fn(s, g, crop_border=crop_border) for s, g in zip(sr, hr)]
            acc = sums[(Variant("acquisition", 99.5, 16, border, region), 2)]
            assert acc[0] / acc[1] == pytest.approx(np.nanmean(psnr), abs=1e-9)
            assert acc[2] / acc[3] == pytest.approx(np.nanmean(ssim), abs=1e-9)


def test_cli_prints_the_table_and_picks_a_variant(tree: Path, tmp_path: Path, capsys):
    out = tmp_path / "cal.json"
    args = ["calibrate", "--ixi-root", str(tree), "--modality", "T1", "--scales", "2", "4",
            "--n-train", "0", "--n-test", "2", "--n-val", "0", "--crop", *map(str, CROP[:2]), "3",
            "--workers", "1", "--no-progress", "--json", str(out)]
    assert w2amsn_main(args) == 0
    text = capsys.readouterr().out
    assert "| **paper, Table III** | 33.80/0.9525 | 28.28/0.8312 | |" in text
    report = json.loads(out.read_text())
    variants = report["variants"]
    assert len(variants) == 2 * 2 * 2 * 2 * 2  # plane x percentile x bits x border x region
    assert report["closest"] == variants[0]["variant"] and f"closest: {variants[0]['variant']}" in text
    distances = [v["distance_psnr_db"] for v in variants]
    assert distances == sorted(distances)
    shipped = [v for v in variants if v["shipped"]]
    assert len(shipped) == 1 and shipped[0]["variant"] == SHIPPED.label
    assert f"| {SHIPPED.label} * |" in text
    assert len(report["test_subjects"]) == 2


def test_bad_options_are_one_line(tree: Path, capsys):
    base = ["calibrate", "--ixi-root", str(tree), "--modality", "T1", "--no-progress"]
    assert w2amsn_main(base + ["--scales", "5"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Table III has scales 2, 3 and 4 only" in err[0]
    assert w2amsn_main(base) == 2  # 3 subjects, the paper's split asks for 576
    assert "has 3 subjects, but the split asks for 576" in capsys.readouterr().err
