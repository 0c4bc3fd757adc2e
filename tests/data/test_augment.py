"""On-the-fly MR augmentation: each step does what it says, the dataset hook makes the LR
patch from the augmented HR patch with MATLAB bicubic, and bad options are refused by name."""
from __future__ import annotations

import numpy as np
import pytest

from w2amsn_plugin.data.augment import (MRAugment, bias_field, epi_readout, gibbs_ringing, nyquist_ghost,
                                        resample, rician_noise, t2_like)
from w2amsn_plugin.data.degradations import bicubic_downscale

OFF = dict(p_zoom=0, p_gamma=0, p_invert=0, p_bias=0, p_window=0, p_noise=0)


def _phantom(n: int = 64) -> np.ndarray:
    yy, xx = np.mgrid[:n, :n]
    r = np.hypot(yy - n / 2, xx - n / 2)
    head = np.where(r < n * 0.4, 0.8, 0.0) + np.where(r < n * 0.15, -0.6, 0.0)
    return head.astype(np.float32)


def test_every_step_off_is_the_identity():
    img = _phantom()
    out = MRAugment(**OFF)(img, 64, np.random.default_rng(0))
    np.testing.assert_array_equal(out, img)


def test_rician_noise_has_the_asked_sigma_and_no_negative_values():
    rng = np.random.default_rng(0)
    flat = np.full((256, 256), 0.75, np.float32)
    noisy = rician_noise(flat, 0.75 / 20, rng)
    assert noisy.min() >= 0
    assert abs(noisy.std() - 0.75 / 20) < 0.003  # Gaussian-like at high SNR
    assert abs(noisy.mean() - 0.75) < 0.003
    background = rician_noise(np.zeros((256, 256), np.float32), 0.05, rng)
    assert abs(background.mean() - 0.05 * np.sqrt(np.pi / 2)) < 0.003  # Rayleigh floor


def test_bias_field_is_smooth_positive_and_bounded():
    field = bias_field((64, 64), 0.3, np.random.default_rng(1))
    assert field.min() >= np.exp(-0.3) - 1e-6 and field.max() <= np.exp(0.3) + 1e-6
    assert np.abs(np.diff(field, axis=0)).max() < 0.05  # no pixel-scale structure
    assert bias_field((8, 9, 10), 0.2, np.random.default_rng(1)).shape == (8, 9, 10)


def test_t2_like_inverts_inside_the_head_and_keeps_the_background_dark():
    img = _phantom()
    out = t2_like(img)
    assert out[0, 0] == 0  # background
    assert out[32, 32] > out[32 + 15, 32]  # the dark centre (CSF-like) became the brighter part


def test_zoom_crops_larger_and_resamples_to_the_patch_size():
    aug = MRAugment(**{**OFF, "p_zoom": 1.0, "max_zoom": 3.0})
    rng = np.random.default_rng(0)
    sides = [aug.crop_size(64, rng) for _ in range(50)]
    assert 64 <= min(sides) and max(sides) <= 192 and len(set(sides)) > 10
    out = aug(np.ones((150, 150), np.float32) * 0.5, 64, rng)
    assert out.shape == (64, 64) and np.allclose(out, 0.5, atol=1e-4)
    assert resample(np.zeros((10, 12), np.float32), (5, 6)).shape == (5, 6)


def test_all_steps_keep_values_in_range_and_change_the_patch():
    aug = MRAugment(**{k: 1.0 for k in OFF})
    out = aug(_phantom(), 64, np.random.default_rng(3))
    assert out.shape == (64, 64) and out.dtype == np.float32
    assert 0 <= out.min() and out.max() <= 1 and not np.allclose(out, _phantom())


@pytest.mark.parametrize("opt, word", [({"p_nois": 0.5}, "p_nois"), ({"p_noise": 2}, "p_noise"),
                                       ({"snr": [40, 10]}, "snr"), ({"max_zoom": 0.5}, "max_zoom")])
def test_bad_options_are_refused_by_name(opt, word):
    with pytest.raises(ValueError, match=word):
        MRAugment.from_options(opt)


def test_dataset_hook_makes_lr_from_the_augmented_hr(tmp_path):
    from w2amsn_plugin.data.demo_testset import DemoScan, build_slice_set
    from w2amsn_plugin.data.ixi_paired_dataset import IXIPairedDataset
    from w2amsn_plugin.protocol import database_path
    from w2amsn_plugin.data.samples import sample_path

    build_slice_set([DemoScan("Colin27", str(sample_path("colin27_t1")), "")], "T1", "test", tmp_path,
                    (64, 64, 16), slice_mm=8, log=lambda m: None)
    opt = {"dataroot_gt": database_path(str(tmp_path), "T1", "test"),
           "dataroot_lq": database_path(str(tmp_path), "T1", "test", 2), "io_backend": {"type": "lmdb"},
           "scale": 2, "phase": "train", "gt_size": 32, "mr_augment": {"p_noise": 1.0, "snr": [10, 10]}}
    ds = IXIPairedDataset(opt)
    np.random.seed(0)
    item = ds[0]
    gt, lq = item["gt"][0].numpy(), item["lq"][0].numpy()
    assert gt.shape == (32, 32) and lq.shape == (16, 16)
    np.testing.assert_allclose(lq, np.clip(bicubic_downscale(gt, 2), 0, 1), atol=1e-5)
    with pytest.raises(ValueError, match="mr_augment"):
        IXIPairedDataset({**opt, "mr_augment": {"gamma_x": 1}})


def test_epi_readout_blurs_and_shifts_along_one_axis_only():
    img = _phantom()
    blurred = epi_readout(img, 1.5, 0.0, 0, np.random.default_rng(0))
    # rows (axis 0) blurred: a column profile changes, a row profile of a constant band does not
    assert not np.allclose(blurred[:, 32], img[:, 32])
    flat = np.tile(np.linspace(0, 1, 64, dtype=np.float32), (64, 1))  # varies along axis 1 only
    np.testing.assert_allclose(epi_readout(flat, 1.5, 0.0, 0, np.random.default_rng(0)), flat, atol=1e-6)
    moved = epi_readout(flat.T.copy(), 0.0, 2.0, 0, np.random.default_rng(1))
    shift = np.abs(moved - flat.T).max() * 63  # a gradient of 1/63 per pixel: displacement in pixels
    assert 0.1 < shift <= 2.0 + 1e-4


def test_gibbs_ringing_rings_at_edges_and_keeps_full_kspace_unchanged():
    img = _phantom()
    np.testing.assert_allclose(gibbs_ringing(img, 1.0, 1), img, atol=1e-5)
    rung = gibbs_ringing(img, 0.5, 1)
    assert rung.max() > img.max() + 0.03  # overshoot at the edges
    np.testing.assert_allclose(rung[:, 32].mean(), img[:, 32].mean(), atol=0.05)


def test_nyquist_ghost_is_a_half_fov_copy():
    img = _phantom()
    ghosted = nyquist_ghost(img, 0.1, 0)
    np.testing.assert_allclose(ghosted - img, 0.1 * np.roll(img, 32, axis=0), atol=1e-6)


def test_artefact_steps_are_off_by_default_and_validated():
    img = _phantom()
    on = MRAugment(**OFF, p_epi=1.0, p_gibbs=1.0, p_ghost=1.0)(img, 64, np.random.default_rng(0))
    assert not np.allclose(on, img) and on.min() >= 0 and on.max() <= 1
    assert MRAugment().p_epi == MRAugment().p_gibbs == MRAugment().p_ghost == 0.0
    with pytest.raises(ValueError, match="p_gibbs"):
        MRAugment.from_options({"p_gibbs": 2})
