"""The slice profile, the training pairs and the patch dataset of ``w2amsn self-sr``, checked
against independent computations (w2amsn_plugin.selfsr.evaluation makes thick volumes with its own
code) and against the geometry convention of the output grid."""
from __future__ import annotations

import re

import numpy as np
import pytest

import w2amsn_plugin  # noqa: F401  (compat patches before BasicSR)
from w2amsn_plugin.selfsr.errors import SelfSRError
from w2amsn_plugin.selfsr.evaluation import make_thick
from w2amsn_plugin.selfsr.patch_dataset import SelfSRPatchDataset
from w2amsn_plugin.selfsr.slice_profile import SliceProfile, apply_along, load_profile
from w2amsn_plugin.selfsr.training_pairs import build_pairs, resample_axis

RNG = np.random.default_rng(0)


def _phantom(shape=(40, 36, 12)) -> np.ndarray:
    """Smooth blobs plus texture in [0, 1], background zero at the border."""
    x, y = np.meshgrid(np.linspace(-1, 1, shape[0]), np.linspace(-1, 1, shape[1]), indexing="ij")
    head = (x ** 2 + y ** 2 < 0.7).astype(np.float32)
    vol = np.stack([head * (0.5 + 0.3 * np.sin(5 * x + z) * np.cos(4 * y)) for z in range(shape[2])], -1)
    return (vol + 0.05 * head[..., None] * RNG.random(shape)).astype(np.float32)


@pytest.mark.parametrize("kind", ["gaussian", "rect"])
@pytest.mark.parametrize("k", [2, 3, 4])
def test_profile_rows_are_centred_and_normalised(kind, k):
    profile = SliceProfile(kind, thickness=k * 1.0)
    centres = np.arange(8, 18) + (k - 1) / 2  # far from the borders (no truncation)
    m = profile.matrix(centres, 30, 1.0)
    assert np.allclose(m.sum(1), 1, atol=1e-6)
    assert np.allclose((m * np.arange(30)).sum(1), centres, atol=1e-5)  # symmetric about the centre
    if kind == "rect":  # the box of k pixels: exactly the mean of the slab
        assert np.allclose(m[0, 8:8 + k], 1 / k) and np.count_nonzero(m[0] > 1e-9) == k


def test_gaussian_fwhm():
    """Gaussian profile of FWHM 5 mm on 0.1 mm pixels: the half-maximum width is 5 mm."""
    m = SliceProfile("gaussian", 5.0).matrix(np.array([100.0]), 201, 0.1)[0]
    above = np.flatnonzero(m >= m.max() / 2)
    assert (above[-1] - above[0] + 1) * 0.1 == pytest.approx(5.0, abs=0.2)


def test_gap_profile_is_narrower_than_the_spacing():
    """Thickness 2 mm at 4 mm spacing (a gap): each thick slice sees only its central 2 mm."""
    m = SliceProfile("rect", 2.0).matrix(np.array([5.5]), 12, 1.0)[0]
    assert np.allclose(m[5:7], 0.5) and m[:5].sum() == 0 and m[7:].sum() == 0


@pytest.mark.parametrize("k", [2, 4])
def test_pairs_equal_an_independent_thick_volume(k):
    """Rows r0, r0+k, ... of the all-phase blurred stack are the thick slices that
    evaluation.make_thick computes with its own code (exact slab means, rectangular profile)."""
    vol = _phantom((40, 36, 12))
    pairs = build_pairs(vol, (1.0, 1.0, float(k)), float(k), k, SliceProfile("rect", float(k)))
    o = pairs.orientations[0]  # degraded axis 0 -> rows; (slices z, rows x, cols y)
    thick = make_thick(vol, np.eye(4), 0, k, "rect").data  # (40/k, 36, 12)
    lr = o.blurred[:, 0::k, :]  # (12, 40/k, 36)
    inner = slice(1, -1)  # the borders differ by design (renormalised vs clipped slab)
    assert np.allclose(lr.transpose(1, 2, 0)[inner], thick[inner], atol=1e-5)
    assert np.array_equal(o.hr.transpose(1, 2, 0), vol)


def test_non_integer_factor_resamples_training_slices_once():
    """Factor 2.5 (k = 3): the fine stack has pixels of S/k = 2.5/3 mm, 40 -> 48 rows."""
    vol = _phantom((40, 40, 10))
    pairs = build_pairs(vol, (1.0, 1.0, 2.5), 2.5, 3, SliceProfile("gaussian", 2.5))
    assert pairs.orientations[0].hr.shape == (10, 48, 40)
    assert pairs.orientations[1].hr.shape == (10, 48, 40)
    const = np.full((20, 8, 3), 0.7, np.float32)
    assert np.allclose(resample_axis(const, 0, 27), 0.7, atol=1e-5)


def _dataset_opt(tmp_path, vol, phase, k=4, **extra):
    np.save(tmp_path / "scan.npy", vol)
    return {"name": phase, "type": "SelfSRPatchDataset", "phase": phase, "volume": str(tmp_path / "scan.npy"),
            "spacing": [1.0, 1.0, float(k)], "scale": k, "degradation": "slice_profile",
            "profile": {"kind": "gaussian", "thickness": float(k)}, "val_slices": [5, 6],
            "gt_size": 16, "samples_per_epoch": 64, **extra}


def test_dataset_pairs_held_out_slices_and_flips(tmp_path):
    vol = _phantom((40, 36, 12))
    train = SelfSRPatchDataset(_dataset_opt(tmp_path, vol, "train"))
    assert set(train.slices) == set(range(12)) - {5, 6}
    for i in range(20):
        item = train[i]
        assert item["lq"].shape == (1, 4, 16) and item["gt"].shape == (1, 16, 16)
        assert item["slice_index"] not in (5, 6)
    val = SelfSRPatchDataset(_dataset_opt(tmp_path, vol, "val"))
    assert len(val) == 4 and {val[i]["slice_index"] for i in range(4)} == {5, 6}
    assert val[0]["gt"].shape == (1, 40, 36) and val[0]["lq"].shape == (1, 10, 36)
    # a vertical flip of the pair is a pair: the degradation of the flipped GT is the flipped LR
    profile = SliceProfile("gaussian", 4.0)
    gt = vol[:, :, 3]
    centres = np.arange(0, 40, 4) + 1.5
    lr = apply_along(gt, profile.matrix(centres, 40, 1.0), 0)
    lr_of_flipped = apply_along(gt[::-1], profile.matrix(centres, 40, 1.0), 0)
    assert np.allclose(lr_of_flipped, lr[::-1], atol=1e-6)


def test_patches_prefer_anatomy(tmp_path):
    """Anatomy in one corner only: most patches overlap it."""
    vol = np.zeros((64, 64, 8), np.float32)
    vol[:16, :16] = 0.8
    train = SelfSRPatchDataset(_dataset_opt(tmp_path, vol, "train", background_weight=0.02))
    hits = sum(float(train[i]["gt"].max()) > 0.5 for i in range(60))
    assert hits >= 25  # uniform corners would hit about a tenth of the time (6 of 60)


def test_in_plane_pairs_are_bicubic(tmp_path):
    from w2amsn_plugin.data.degradations import bicubic_downscale

    vol = _phantom((40, 36, 12))
    val = SelfSRPatchDataset(_dataset_opt(tmp_path, vol, "val", k=2, degradation="bicubic"))
    item = val[0]
    assert item["gt"].shape == (1, 40, 36) and item["lq"].shape == (1, 20, 18)
    assert np.allclose(item["lq"][0].numpy(), bicubic_downscale(vol[:, :, 5], 2), atol=1e-6)


@pytest.mark.parametrize("n", [24, 30])  # an even and an odd coarse size (12, 15)
def test_in_plane_kspace_degradation_is_a_block_centred_truncation(n):
    """--degradation kspace: a band-limited slice comes back as its samples at the blocks'
    centres (the central 1/k of k-space kept, each coarse pixel centred on its k x k block),
    for any leading shape; an unknown degradation is refused."""
    from w2amsn_plugin.selfsr.in_plane import degrade_in_plane, kspace_downscale

    k = 2
    i, j = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    c = (k - 1) / 2
    wave = lambda x, y: 0.5 + 0.3 * np.cos(2 * np.pi * 3 * (x - c) / n) * np.cos(2 * np.pi * 2 * (y - c) / n)  # noqa: E501,E731
    (lr,) = degrade_in_plane(np.stack([wave(i, j)] * 11), k, "kspace")  # 11 slices: chunks of 8
    a, b = np.meshgrid(np.arange(n // k), np.arange(n // k), indexing="ij")
    assert lr.shape == (11, n // k, n // k) and np.allclose(lr, wave(k * a + c, k * b + c), atol=1e-6)
    assert np.allclose(kspace_downscale(wave(i, j), k), lr[0], atol=1e-6)  # a single 2-D slice
    assert np.allclose(kspace_downscale(-wave(i, j), k), lr[0], atol=1e-6)  # the magnitude is kept
    with pytest.raises(ValueError, match="one of"):
        degrade_in_plane(wave(i, j)[None], k, "box")


def test_in_plane_mixed_trains_and_validates_on_both_degradations(tmp_path):
    """--degradation mixed: the held-out slices come degraded both ways, and training patches
    are cut from both low-resolution stacks."""
    from w2amsn_plugin.data.degradations import bicubic_downscale
    from w2amsn_plugin.selfsr.in_plane import kspace_downscale

    vol = _phantom((40, 36, 12))
    val = SelfSRPatchDataset(_dataset_opt(tmp_path, vol, "val", k=2, degradation="mixed"))
    assert len(val) == 2 * 2  # two held-out slices, each degraded both ways
    want = [bicubic_downscale(vol[:, :, z], 2) for z in (5, 6)] + [kspace_downscale(vol[:, :, z], 2)
                                                                   for z in (5, 6)]
    got = [val[i]["lq"][0].numpy() for i in range(len(val))]
    assert all(sum(np.allclose(g, w, atol=1e-5) for g in got) == 1 for w in want)
    train = SelfSRPatchDataset(_dataset_opt(tmp_path, vol, "train", k=2, degradation="mixed"))
    sources = [train.lr[0][0], train.lr[0][1]]  # (slices, rows, cols) bicubic, kspace
    seen = [0, 0]
    np.random.seed(3)
    for i in range(40):
        item = train[i]
        _, z, r, c = (int(v) for v in re.findall(r"\d+", item["key"].removeprefix("scan_")))
        lq = item["lq"][0].numpy()
        for s, src in enumerate(sources):
            patch = src[z, r:r + 8, c:c + 8]
            seen[s] += any(np.allclose(lq, t, atol=1e-6) for t in (patch, patch[::-1], patch[:, ::-1],
                                                                    patch[::-1, ::-1], patch.T,
                                                                    patch[::-1].T, patch[:, ::-1].T,
                                                                    patch[::-1, ::-1].T))
    assert seen[0] >= 5 and seen[1] >= 5 and seen[0] + seen[1] == 40
    with pytest.raises(ValueError, match="one of"):
        SelfSRPatchDataset(_dataset_opt(tmp_path, vol, "train", k=2, degradation="box"))


def test_in_plane_self_consistency_uses_the_trained_degradation():
    """The in-plane sidecar's self-consistency degrades the output again with the run's own
    degradation: the truth of a k-space-made scan scores far higher under kspace than bicubic."""
    from w2amsn_plugin.selfsr.in_plane import kspace_downscale
    from w2amsn_plugin.selfsr.scores import in_plane_self_consistency

    truth = np.clip(_phantom((40, 36, 6)), 0, 1)
    scan = kspace_downscale(truth.transpose(2, 0, 1), 2).transpose(1, 2, 0)
    right = in_plane_self_consistency(truth, scan, 2, "kspace")
    wrong = in_plane_self_consistency(truth, scan, 2, "bicubic")
    both = in_plane_self_consistency(truth, scan, 2, "mixed")
    assert right > 60 and right > wrong + 10 and wrong < both < right


def test_measured_profile_file(tmp_path):
    np.save(tmp_path / "p.npy", np.array([0.0, 1.0, 2.0, 1.0, 0.0]))
    prof = load_profile(tmp_path / "p.npy", 1.0)
    m = prof.matrix(np.array([10.0]), 21, 1.0)[0]
    assert np.allclose(m[9:12], [0.25, 0.5, 0.25]) and m.sum() == pytest.approx(1)
    np.save(tmp_path / "bad.npy", np.ones((3, 3)))
    with pytest.raises(SelfSRError, match="1-D"):
        load_profile(tmp_path / "bad.npy", 1.0)
    (tmp_path / "junk.npy").write_text("no")
    with pytest.raises(SelfSRError, match="not a readable"):
        load_profile(tmp_path / "junk.npy", 1.0)


def test_non_square_slices_give_one_patch_shape(tmp_path):
    """Orientations of a 40x28 slice have 40 and 28 rows: every patch has one shape (they batch)."""
    vol = _phantom((40, 28, 8))
    train = SelfSRPatchDataset(_dataset_opt(tmp_path, vol, "train", gt_size=64))
    shapes = {tuple(train[i]["gt"].shape) for i in range(30)}
    assert shapes == {(1, 28, 28)}


def test_coarse_in_plane_volume_is_block_means_on_the_slice_plane():
    """The in-plane mode's test volume (scripts/self_sr_quality.py --in-plane-scale): block means
    of each slice, whole blocks only, and a header whose largest spacing is the slice axis."""
    from w2amsn_plugin.selfsr.evaluation import make_coarse_in_plane
    from w2amsn_plugin.selfsr.geometry import voxel_spacings

    truth = RNG.random((9, 6, 5)).astype(np.float32)
    coarse = make_coarse_in_plane(truth, np.diag([1.0, 1.0, 1.0, 1.0]), 2, slice_mm=3.0)
    assert coarse.data.shape == (4, 3, 5) and coarse.truth.shape == (8, 6, 5)
    assert np.isclose(coarse.data[1, 2, 3], truth[2:4, 4:6, 3].mean())
    assert np.allclose(voxel_spacings(coarse.affine), [2.0, 2.0, 3.0])


def test_coarse_in_plane_by_kspace_truncation_keeps_the_low_frequencies_block_centred():
    """--made-by fourier: each coarse slice holds exactly the truth's central 1/S of k-space
    (a band-limited slice comes back sample for sample), and its pixels sit on the blocks'
    centres like block means (a smooth slice differs from its block means by little)."""
    from scipy import ndimage

    from w2amsn_plugin.selfsr.evaluation import make_coarse_in_plane

    n, s = 24, 3
    i, j = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    c = (s - 1) / 2  # block centres: coarse pixel (a, b) is the truth at (s a + c, s b + c)
    wave = lambda x, y: 2 + np.cos(2 * np.pi * 2 * (x - c) / n) * np.sin(2 * np.pi * 3 * (y - c) / n)  # noqa: E731
    coarse = make_coarse_in_plane(wave(i, j)[..., None], np.eye(4), s, made_by="fourier")
    a, b = np.meshgrid(np.arange(n // s), np.arange(n // s), indexing="ij")
    assert np.allclose(coarse.data[..., 0], wave(s * a + c, s * b + c), atol=1e-5)
    smooth = ndimage.gaussian_filter(RNG.random((48, 36, 2)), 4).astype(np.float32)
    blocks = make_coarse_in_plane(smooth, np.eye(4), 4).data
    fourier = make_coarse_in_plane(smooth, np.eye(4), 4, made_by="fourier").data
    unshifted = smooth[::4, ::4]
    assert np.abs(fourier - blocks).max() < 0.5 * np.abs(unshifted - blocks).max()
    with pytest.raises(ValueError, match="made_by"):
        make_coarse_in_plane(smooth, np.eye(4), 4, made_by="bicubic")

def test_mixed_profile_trains_on_both_shapes_and_validates_on_both(tmp_path):
    """--profile mixed: each training pair is the Gaussian's or the rectangle's degradation of
    its patch (both occur), validation holds both, and as one profile it is their mean."""
    vol = _phantom((40, 36, 12))
    opt = _dataset_opt(tmp_path, vol, "train", profile={"kind": "mixed", "thickness": 4.0})
    train = SelfSRPatchDataset(opt)
    gauss, rect = (build_pairs(vol, (1.0, 1.0, 4.0), 4.0, 4, SliceProfile(kind, 4.0)) for kind in
                   ("gaussian", "rect"))
    assert all(np.array_equal(train.lr[i][0], gauss.orientations[i].blurred) for i in (0, 1))
    assert all(np.array_equal(train.lr[i][1], rect.orientations[i].blurred) for i in (0, 1))
    seen = {"gaussian": 0, "rect": 0}
    np.random.seed(1)
    for i in range(40):
        item = train[i]
        o, z, r, c = (int(v) for v in re.findall(r"\d+", item["key"].removeprefix("scan_")))
        gt, lq = item["gt"][0].numpy(), item["lq"][0].numpy()
        for kind, pairs in (("gaussian", gauss), ("rect", rect)):
            src = pairs.orientations[o].blurred[z, r:r + 16:4, c:c + 16]
            seen[kind] += any(np.allclose(lq, f(src), atol=1e-6) for f in
                              (lambda a: a, lambda a: a[:, ::-1], lambda a: a[::-1], lambda a: a[::-1, ::-1]))
        assert gt.shape == (16, 16)
    assert seen["gaussian"] >= 10 and seen["rect"] >= 10 and sum(seen.values()) == 40
    val = SelfSRPatchDataset({**opt, "phase": "val"})
    assert len(val) == 8 and len({val[i]["key"] for i in range(8)}) == 8
    m = SliceProfile("mixed", 4.0).matrix(np.array([10.0]), 24, 1.0)
    g = SliceProfile("gaussian", 4.0).matrix(np.array([10.0]), 24, 1.0)
    b = SliceProfile("rect", 4.0).matrix(np.array([10.0]), 24, 1.0)
    assert np.allclose(m, (g + b) / 2, atol=1e-6)
