"""The one-axis (rows only) tail of W²AMSN used by ``w2amsn self-sr``."""
from __future__ import annotations

import pytest
import torch
import w2amsn_plugin  # noqa: F401  (compat patches, registers the archs)
from basicsr.archs import build_network

from w2amsn_plugin.archs.w2amsn_blocks import RowPixelShuffle, RowShuffleUpsampler


def test_row_pixel_shuffle_is_pixel_shuffle_on_one_axis():
    """Row p·h + i of channel c is input channel c·p + i at row h, columns untouched."""
    x = torch.randn(2, 6, 4, 5)
    y = RowPixelShuffle(3)(x)
    assert y.shape == (2, 2, 12, 5)
    for c in range(2):
        for h in range(4):
            for i in range(3):
                assert torch.equal(y[:, c, 3 * h + i], x[:, 3 * c + i, h])


@pytest.mark.parametrize("scale,stages", [(1, 0), (2, 1), (3, 1), (4, 2), (5, 1), (6, 2)])
def test_row_upsampler_stages(scale, stages):
    up = RowShuffleUpsampler(scale, 4)
    assert sum(isinstance(m, RowPixelShuffle) for m in up) == stages
    assert up(torch.randn(1, 4, 3, 7)).shape == (1, 4, 3 * scale, 7)


@pytest.mark.parametrize("scale", [2, 3, 4, 5])
def test_registered_w2amsn_rows_tail(scale):
    """Built from a BasicSR options dict like every variant; the body is the paper's (same
    parameter names as the two-axis network apart from the tail); only rows grow."""
    opt = {"type": "W2AMSN", "num_feat": 8, "num_block": 2, "upscale": scale, "upscale_axis": "rows"}
    net = build_network(dict(opt))
    both = build_network({**opt, "upscale_axis": "both"})
    body = {k for k in net.state_dict() if not k.startswith("upsample.")}
    assert body == {k for k in both.state_dict() if not k.startswith("upsample.")}
    x = torch.randn(2, 1, 6, 9, requires_grad=True)
    y = net(x)
    assert y.shape == (2, 1, 6 * scale, 9)
    y.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_bad_upscale_axis():
    with pytest.raises(ValueError, match="upscale_axis"):
        build_network({"type": "W2AMSN", "num_feat": 8, "num_block": 1, "upscale": 2,
                       "upscale_axis": "cols"})


@pytest.mark.parametrize("axis", ["rows", "both"])
def test_input_residual_adds_the_linear_interpolation(axis):
    """With every weight of the last conv zero the network is exactly linear interpolation of
    its input (so a constant image stays constant, a ramp along rows stays a ramp)."""
    net = build_network({"type": "W2AMSN", "num_feat": 8, "num_block": 1, "upscale": 4,
                         "upscale_axis": axis, "input_residual": True})
    torch.nn.init.zeros_(net.conv_last.weight)
    torch.nn.init.zeros_(net.conv_last.bias)
    x = torch.arange(6.0).view(1, 1, 6, 1).expand(1, 1, 6, 5).contiguous()
    y = net(x)
    cols = 5 if axis == "rows" else 20
    assert y.shape == (1, 1, 24, cols)
    centre = y[0, 0, 2:-2, 0]  # away from the clamped borders: i = (j + 0.5)/4 - 0.5
    j = torch.arange(2, 22, dtype=torch.float32)
    assert torch.allclose(centre, (j + 0.5) / 4 - 0.5, atol=1e-5)
    plain = build_network({"type": "W2AMSN", "num_feat": 8, "num_block": 1, "upscale": 4,
                           "upscale_axis": axis})
    plain.load_state_dict(net.state_dict())
    assert not torch.allclose(net(x), plain(x))
