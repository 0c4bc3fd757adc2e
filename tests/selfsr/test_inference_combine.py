"""Through-plane inference of ``w2amsn self-sr`` through the plugin's inference engine (a one-axis
network, tiled or not, both orientations) and the combination of the orientations."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import w2amsn_plugin  # noqa: F401  (compat patches, registers the archs)
from w2amsn_plugin.archs import W2AMSN
from w2amsn_plugin.inference.engine import super_resolve_volume
from w2amsn_plugin.inference.tiling import plan_tiles
from w2amsn_plugin.selfsr.combine import combine, fourier_burst_accumulation
from w2amsn_plugin.selfsr.through_plane import super_resolve_orientations

torch.manual_seed(0)


def _net(k: int) -> W2AMSN:
    return W2AMSN(num_feat=4, num_block=1, widen=1, upscale=k, upscale_axis="rows").eval()


def test_engine_one_axis_scale_tiled_equals_untiled():
    """(rows, cols) = (3, 1) through the engine: whole slices and tiles (a network without global
    pooling, so tiles with enough overlap are exact) both equal the network on the slices."""
    net = W2AMSN(num_feat=4, num_block=1, widen=1, upscale=3, upscale_axis="rows",
                 block_attention="none", global_attention="none").eval()
    vol = np.random.default_rng(0).random((3, 40, 50), dtype=np.float32)
    whole = super_resolve_volume(vol, net, (3, 1), plane_axis=0, bf16=False)
    tiled = super_resolve_volume(vol, net, (3, 1), plane_axis=0, bf16=False,
                                 plan=plan_tiles(40, 50, 2, tile=8, overlap=10))
    with torch.no_grad():
        ref = net(torch.from_numpy(vol)[:, None])[:, 0].numpy()
    assert whole.shape == (3, 120, 50)
    assert np.allclose(whole, ref, atol=1e-5) and np.allclose(tiled, ref, atol=1e-5)


def test_orientations_upsample_the_last_axis_along_the_right_slices():
    """Orientation 0 runs the network on volume[x] (rows = z), orientation 1 on volume[:, y]."""
    net = _net(2)
    vol = np.random.default_rng(1).random((5, 6, 4), dtype=np.float32)
    a, b = super_resolve_orientations(vol, net, 2, bf16=False)
    assert a.shape == b.shape == (5, 6, 8)
    with torch.no_grad():
        x2 = net(torch.from_numpy(np.ascontiguousarray(vol[2].T))[None, None])[0, 0].numpy()
        y3 = net(torch.from_numpy(np.ascontiguousarray(vol[:, 3].T))[None, None])[0, 0].numpy()
    assert np.allclose(a[2], x2.T, atol=1e-5)
    assert np.allclose(b[:, 3], y3.T, atol=1e-5)


def test_mean_and_fba():
    rng = np.random.default_rng(2)
    v = rng.random((8, 8, 8)).astype(np.float32)
    assert np.allclose(combine([v, v], "mean"), v) and np.allclose(combine([v, v], "fba"), v, atol=1e-5)
    # FBA keeps, at each frequency, the estimate with more energy: a blurred copy loses to the sharp one
    from scipy import ndimage

    blurred = ndimage.gaussian_filter(v, 1.5).astype(np.float32)
    fused = fourier_burst_accumulation([v, blurred])
    assert np.abs(fused - v).mean() < np.abs(combine([v, blurred], "mean") - v).mean()
    with pytest.raises(ValueError, match="combine"):
        combine([v], "median")
