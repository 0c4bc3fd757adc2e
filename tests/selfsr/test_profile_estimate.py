"""The slice profile estimated from the scan (``--profile auto``): on an isotropic random field
with a power-law spectrum, made thick by the evaluation's independent code, the estimate finds
the thickness of Gaussian slices, a slice gap, and the narrower effective width of rectangular
slices; noise does not move it; too little data gives no estimate; the plan uses it."""
from __future__ import annotations

import functools
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from w2amsn_plugin.cli import w2amsn_main
from w2amsn_plugin.selfsr.evaluation import make_thick
from w2amsn_plugin.selfsr.pipeline import SelfSRSettings, plan_run
from w2amsn_plugin.selfsr import profile_estimate
from w2amsn_plugin.selfsr.profile_estimate import (AUTO_SNAP, MAX_MISFIT_DB, SEGMENT, ProfileEstimate,
                                                   _noise_spectrum, _welch, auto_profile,
                                                   estimate_slice_fwhm)


@functools.lru_cache(maxsize=4)
def _field(n: int = 64, seed: int = 0) -> np.ndarray:
    """An isotropic random field, power ~ 1/|f|^2 (anatomy-like), on 0.2 .. 1."""
    rng = np.random.default_rng(seed)
    f = np.fft.fftfreq(n)
    radius = np.sqrt(f[:, None, None] ** 2 + f[None, :, None] ** 2 + f[None, None, :] ** 2)
    amplitude = 1.0 / np.where(radius > 0, radius, np.inf)
    v = np.fft.ifftn(np.fft.fftn(rng.standard_normal((n, n, n))) * amplitude).real
    field = (0.2 + 0.8 * (v - v.min()) / (v.max() - v.min())).astype(np.float32)
    field.setflags(write=False)  # cached: shared by the tests
    return field


def _thick(profile: str, thickness: float, factor: int = 4, seed: int = 0) -> np.ndarray:
    return make_thick(_field(seed=seed), np.eye(4), 2, factor, profile, thickness).data


@pytest.mark.parametrize("seed", [0, 1])
def test_finds_gaussian_thickness_gap_and_rect(seed):
    full = estimate_slice_fwhm(_thick("gaussian", 4, seed=seed), (1.0, 1.0, 4.0))
    gap = estimate_slice_fwhm(_thick("gaussian", 2, seed=seed), (1.0, 1.0, 4.0))
    rect = estimate_slice_fwhm(_thick("rect", 4, seed=seed), (1.0, 1.0, 4.0))
    assert 0.9 <= full.fraction <= 1.15 and full.fwhm_mm == pytest.approx(4 * full.fraction)
    assert 0.4 <= gap.fraction <= 0.7
    assert 0.5 <= rect.fraction < AUTO_SNAP  # a rectangle of width T reads as FWHM ~0.65 T
    assert auto_profile(full, 4.0).thickness == 4.0
    assert auto_profile(gap, 4.0).thickness == pytest.approx(gap.fwhm_mm)
    assert auto_profile(rect, 4.0).kind == "gaussian" and auto_profile(rect, 4.0).thickness < 4 * AUTO_SNAP


def test_other_spacings_and_factors():
    """1.5 mm pixels, 6 mm slices (x4): the estimate is in the scan's millimetres; x3; x2.5 (slice
    centres between pixels); pixels of 1 x 2 mm in the slice plane."""
    e = estimate_slice_fwhm(_thick("gaussian", 4), (1.5, 1.5, 6.0))
    assert 0.9 <= e.fraction <= 1.15 and e.fwhm_mm == pytest.approx(6.0 * e.fraction)
    x3 = estimate_slice_fwhm(_thick("gaussian", 3, factor=3), (1.0, 1.0, 3.0))
    assert 0.9 <= x3.fraction <= 1.15
    x25 = estimate_slice_fwhm(_thick("gaussian", 2.5, factor=2.5), (1.0, 1.0, 2.5))
    x25_gap = estimate_slice_fwhm(_thick("gaussian", 1.25, factor=2.5), (1.0, 1.0, 2.5))
    assert x25.fraction >= AUTO_SNAP and 0.4 <= x25_gap.fraction <= 0.7
    thick = _thick("gaussian", 4)
    wide = estimate_slice_fwhm(0.5 * (thick[:, 0::2] + thick[:, 1::2]), (1.0, 2.0, 4.0))
    assert 0.9 <= wide.fraction <= 1.15


def test_noise_does_not_move_it(monkeypatch):
    """White noise (SD 5 % of the range) leaves the estimate where it was; without the noise
    balancing it reads the slices thinner (the balancing is what the test checks)."""
    clean = _thick("gaussian", 4)
    noisy = clean + np.random.default_rng(3).normal(0, 0.05, clean.shape).astype(np.float32)
    a, b = (estimate_slice_fwhm(v, (1.0, 1.0, 4.0)).fraction for v in (clean, noisy))
    assert a == b
    monkeypatch.setattr(profile_estimate, "_noise_sigma", lambda scan: 0.0)
    c, d = (estimate_slice_fwhm(v, (1.0, 1.0, 4.0)).fraction for v in (clean, noisy))
    assert d <= c - 0.1


def test_noise_spectrum_matches_monte_carlo():
    """The expected Welch periodogram of correlated noise, against 40000 simulated segments."""
    rng = np.random.default_rng(0)
    mix = np.triu(np.ones((SEGMENT, SEGMENT))) * 0.5 + np.eye(SEGMENT)
    covariance = mix @ mix.T
    lines = (mix @ rng.standard_normal((SEGMENT, 40000))).T + 100.0  # all in the foreground
    measured = _welch(lines[:, None, :], 2)
    np.testing.assert_allclose(measured, _noise_spectrum(covariance), rtol=0.05)


def test_too_little_data_gives_no_estimate():
    thick = _thick("gaussian", 4)
    assert estimate_slice_fwhm(thick[:, :, :SEGMENT - 1], (1.0, 1.0, 4.0)) is None
    assert estimate_slice_fwhm(thick[:SEGMENT * 4 - 1, :SEGMENT * 4 - 1], (1.0, 1.0, 4.0)) is None
    assert estimate_slice_fwhm(np.zeros_like(thick), (1.0, 1.0, 4.0)) is None  # no anatomy
    assert auto_profile(None, 4.0).thickness == 4.0
    # a width that explains nothing is not used
    misfit = ProfileEstimate(2.0, 0.5, MAX_MISFIT_DB + 0.1)
    assert not misfit.fits and auto_profile(misfit, 4.0).thickness == 4.0
    assert auto_profile(ProfileEstimate(2.0, 0.5, MAX_MISFIT_DB), 4.0).thickness == 2.0


def test_plan_uses_it_on_any_coarse_axis(tmp_path: Path, capsys):
    """A gap (2 mm slices 4 mm apart) along axis 0 of the file: ``auto`` trains with the
    estimate; a told thickness wins; the dry run reports both."""
    gap = np.moveaxis(_thick("gaussian", 2), 2, 0)
    path = tmp_path / "gap.nii.gz"
    nib.save(nib.Nifti1Image(gap, np.diag([4.0, 1.0, 1.0, 1.0])), path)
    plan = plan_run(path, tmp_path / "o.nii.gz", SelfSRSettings(iters=1))
    assert plan.axis == 0 and plan.profile_estimate is not None
    assert plan.profile.kind == "gaussian"
    assert plan.profile.thickness == pytest.approx(plan.profile_estimate.fwhm_mm)
    assert plan.profile.thickness < 4 * AUTO_SNAP
    told = plan_run(path, tmp_path / "o.nii.gz", SelfSRSettings(iters=1, slice_thickness=2.5))
    assert told.profile.thickness == 2.5 and told.profile_estimate == plan.profile_estimate
    unread = plan_run(path, tmp_path / "o.nii.gz", SelfSRSettings(iters=1), estimate=False)
    assert unread.profile is None and unread.profile_estimate is None

    assert w2amsn_main(["self-sr", "-i", str(path), "-o", str(tmp_path / "o.nii.gz"), "--dry-run"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["slice_profile"]["fwhm_mm"] == pytest.approx(shown["slice_profile_estimate"]["fwhm_mm"])
    assert shown["slice_profile_estimate"]["fraction_of_spacing"] < AUTO_SNAP
