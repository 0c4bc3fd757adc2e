"""Whole-slice and foreground PSNR/SSIM against scikit-image on real MR slices (shipped sample)."""
from __future__ import annotations

import math

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

import w2amsn_plugin  # noqa: F401  (registers the metrics)
from basicsr.metrics import calculate_metric, calculate_psnr, calculate_ssim
from basicsr.utils.matlab_functions import imresize
from w2amsn_plugin.data.normalization import normalize_intensity
from w2amsn_plugin.data.samples import sample_path
from w2amsn_plugin.metrics import (DEFAULT_FG_THRESHOLD, PSNR_MAX_DB, calculate_psnr_fg, calculate_psnr_mr,
                                   calculate_ssim_fg, calculate_ssim_mr)

# (volume, axial slice): skull with neck, brain mid-level, skull-stripped template near the top
SLICES = [("colin27_t1", 40), ("colin27_t1", 100), ("mni152_2009a_t1", 120)]


def _axial(name: str, z: int) -> np.ndarray:
    vol = np.asarray(nib.as_closest_canonical(nib.load(sample_path(name))).dataobj)
    norm, _, _ = normalize_intensity(vol)
    return norm[:, :, z]


@pytest.fixture(scope="module")
def pairs() -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(label, SR, GT) float64 pairs: GT a real slice, SR its bicubic x2 round trip or a noisy copy."""
    rng = np.random.default_rng(0)
    out = []
    for name, z in SLICES:
        gt = _axial(name, z)
        gt = gt[: gt.shape[0] // 2 * 2, : gt.shape[1] // 2 * 2].astype(np.float64)
        bicubic = np.clip(imresize(imresize(gt, 0.5), 2.0), 0, 1).astype(np.float64)
        noisy = np.clip(gt + rng.normal(0, 0.02, gt.shape), 0, 1)
        out += [(f"{name}:{z}:bicubic", bicubic, gt), (f"{name}:{z}:noise", noisy, gt)]
    return out


def _reference_mask(gt: np.ndarray, threshold: float = DEFAULT_FG_THRESHOLD) -> np.ndarray:
    return ndimage.binary_fill_holes(gt > threshold)


def _skimage_ssim_map(sr: np.ndarray, gt: np.ndarray) -> tuple[float, np.ndarray]:
    return structural_similarity(gt, sr, data_range=1.0, gaussian_weights=True, sigma=1.5,
                                 use_sample_covariance=False, full=True)


def test_sample_slices_have_foreground_and_background(pairs):
    for _, _, gt in pairs:
        frac = _reference_mask(gt).mean()
        assert 0.1 < frac < 0.95


def test_whole_slice_metrics_match_skimage(pairs):
    for label, sr, gt in pairs:
        assert calculate_psnr_mr(sr, gt) == pytest.approx(peak_signal_noise_ratio(gt, sr, data_range=1.0),
                                                          abs=1e-10), label
        assert calculate_ssim_mr(sr, gt) == pytest.approx(_skimage_ssim_map(sr, gt)[0], abs=1e-10), label


def test_foreground_psnr_matches_skimage_on_masked_pixels(pairs):
    for label, sr, gt in pairs:
        mask = _reference_mask(gt)
        expected = peak_signal_noise_ratio(gt[mask], sr[mask], data_range=1.0)
        assert calculate_psnr_fg(sr, gt) == pytest.approx(expected, abs=1e-10), label
        if label.endswith("bicubic"):  # bicubic is exact in the air: the anatomy scores lower
            assert calculate_psnr_fg(sr, gt) < calculate_psnr_mr(sr, gt), label


def test_foreground_ssim_is_mean_of_skimage_map_over_mask(pairs):
    for label, sr, gt in pairs:
        mask = _reference_mask(gt)[5:-5, 5:-5]  # the map's valid part, as skimage's mean uses
        expected = _skimage_ssim_map(sr, gt)[1][5:-5, 5:-5][mask].mean()
        assert calculate_ssim_fg(sr, gt) == pytest.approx(expected, abs=1e-10), label
        if label.endswith("bicubic"):
            assert calculate_ssim_fg(sr, gt) < calculate_ssim_mr(sr, gt), label


def test_crop_border_crops_images_and_mask(pairs):
    _, sr, gt = pairs[0]
    c = 4
    mask = _reference_mask(gt)[c:-c, c:-c]  # mask from the full GT, then cropped
    srx, gtx = sr[c:-c, c:-c], gt[c:-c, c:-c]
    assert calculate_psnr_fg(sr, gt, crop_border=c) == pytest.approx(
        peak_signal_noise_ratio(gtx[mask], srx[mask], data_range=1.0), abs=1e-10)
    assert calculate_ssim_mr(sr, gt, crop_border=c) == pytest.approx(_skimage_ssim_map(srx, gtx)[0],
                                                                     abs=1e-10)
    assert calculate_ssim_fg(sr, gt, crop_border=c) == pytest.approx(
        _skimage_ssim_map(srx, gtx)[1][5:-5, 5:-5][mask[5:-5, 5:-5]].mean(), abs=1e-10)


@pytest.mark.parametrize("metric", [calculate_psnr_mr, calculate_ssim_mr, calculate_psnr_fg,
                                    calculate_ssim_fg])
def test_integer_inputs_equal_float_inputs(pairs, metric):
    _, sr, gt = pairs[1]
    sr8, gt8 = np.round(sr * 255).astype(np.uint8), np.round(gt * 255).astype(np.uint8)
    assert metric(sr8, gt8) == metric(sr8 / 255.0, gt8 / 255.0)
    sr16, gt16 = np.round(sr * 65535).astype(np.uint16), np.round(gt * 65535).astype(np.uint16)
    assert metric(sr16, gt16) == metric(sr16 / 65535.0, gt16 / 65535.0)
    assert metric(sr[..., None], gt[..., None]) == metric(sr, gt)
    assert metric(sr.astype(np.float32), gt.astype(np.float32)) == pytest.approx(metric(sr, gt), rel=1e-5)
    # the uint8 rounding BasicSR's tester applies is visible at MR precision
    assert metric(sr8, gt8) != metric(sr, gt)


def test_uint8_whole_slice_equals_basicsr(pairs):
    _, sr, gt = pairs[0]
    sr8, gt8 = np.round(sr * 255).astype(np.uint8), np.round(gt * 255).astype(np.uint8)
    assert calculate_psnr_mr(sr8, gt8) == pytest.approx(calculate_psnr(sr8[..., None], gt8[..., None], 0),
                                                        abs=1e-10)
    assert calculate_ssim_mr(sr8, gt8) == pytest.approx(calculate_ssim(sr8[..., None], gt8[..., None], 0),
                                                        abs=1e-10)


def test_identical_images_are_finite(pairs):
    _, _, gt = pairs[0]
    assert calculate_psnr_mr(gt, gt) == calculate_psnr_fg(gt, gt) == PSNR_MAX_DB == pytest.approx(100.0)
    assert calculate_ssim_mr(gt, gt) == pytest.approx(1.0, abs=1e-12)
    assert calculate_ssim_fg(gt, gt) == pytest.approx(1.0, abs=1e-12)


def test_empty_foreground_is_skipped_not_inf():
    gt = _axial("colin27_t1", 180)  # above the head: air only
    assert gt.max() <= DEFAULT_FG_THRESHOLD
    sr = np.full_like(gt, 0.01)
    assert math.isnan(calculate_psnr_fg(sr, gt)) and math.isnan(calculate_ssim_fg(sr, gt))
    assert calculate_psnr_mr(sr, gt) == pytest.approx(40.0)
    assert math.isfinite(calculate_ssim_mr(sr, gt))


def test_foreground_only_at_the_border_skips_ssim_but_not_psnr():
    gt = np.zeros((40, 40))
    gt[:3, 10:20] = 0.8
    sr = gt * 0.9
    assert calculate_psnr_fg(sr, gt) == pytest.approx(10 * math.log10(1 / 0.08 ** 2))
    assert math.isnan(calculate_ssim_fg(sr, gt))


def test_mask_fills_holes_and_follows_threshold():
    gt = np.zeros((48, 48))
    gt[8:40, 8:40] = 0.6
    gt[16:32, 16:32] = 0.02  # dark "ventricle" enclosed by tissue
    gt[2:6, 2:6] = 0.08  # faint blob in the air
    sr = gt.copy()
    sr[20, 20] += 0.1  # error inside the hole: counted in the foreground
    n_fg = 32 * 32 + 16
    assert calculate_psnr_fg(sr, gt) == pytest.approx(10 * math.log10(n_fg / 0.01))
    assert calculate_psnr_fg(sr, gt, fg_threshold=0.1) == pytest.approx(10 * math.log10(32 * 32 / 0.01))


def test_registered_and_accepts_every_yaml_key(pairs):
    _, sr, gt = pairs[0]
    opt = {"type": "calculate_psnr_fg", "crop_border": 2, "fg_threshold": 0.1, "better": "higher"}
    assert calculate_metric({"img": sr, "img2": gt}, opt) == calculate_psnr_fg(sr, gt, 2, 0.1)
    for fn in (calculate_ssim_fg, calculate_psnr_mr, calculate_ssim_mr):
        opt = {"type": fn.__name__, "crop_border": 3, "better": "higher"}
        assert calculate_metric({"img": sr, "img2": gt}, opt) == fn(sr, gt, crop_border=3)


@pytest.mark.parametrize("img, img2, kwargs, message", [
    (np.zeros((20, 20)), np.zeros((20, 22)), {}, "shapes differ"),
    (np.zeros((20, 20, 3)), np.zeros((20, 20, 3)), {}, "single-channel"),
    (np.full((20, 20), np.nan), np.zeros((20, 20)), {}, "NaN"),
    (np.zeros((20, 20), np.int32), np.zeros((20, 20), np.int32), {}, "dtype"),
    (np.zeros((20, 20)), np.zeros((20, 20)), {"test_y_channel": True}, "test_y_channel"),
    (np.zeros((20, 20)), np.zeros((20, 20)), {"crop_border": 10}, "crop_border"),
    (np.zeros((10, 10)), np.zeros((10, 10)), {}, "11x11"),
])
def test_bad_inputs_raise_one_clear_error(img, img2, kwargs, message):
    with pytest.raises(ValueError, match=message):
        calculate_ssim_fg(img, img2, **kwargs)
