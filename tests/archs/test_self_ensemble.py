"""x8 geometric self-ensemble: transforms, inverses, equivariant and non-equivariant networks."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from w2amsn_plugin.archs.self_ensemble import NUM_TRANSFORMS, inverse_transform, self_ensemble, transform


def _asymmetric(n: int = 2, h: int = 6, w: int = 9) -> torch.Tensor:
    """A batch with no symmetry: every pixel a different integer (sums of 8 stay exact)."""
    return torch.arange(n * h * w, dtype=torch.float32).view(n, 1, h, w)


def _reference_d4(x: torch.Tensor) -> list[tuple[torch.Tensor, callable]]:
    """The 8 symmetries as rot90^k and flip+rot90^k, each with its own inverse (independent code)."""
    out = []
    for flip in (False, True):
        for k in range(4):
            y = torch.rot90(x.flip(-1) if flip else x, k, dims=(-2, -1))

            def inverse(z, k=k, flip=flip):
                z = torch.rot90(z, -k, dims=(-2, -1))
                return z.flip(-1) if flip else z
            out.append((y, inverse))
    return out


def _tiny_sr_net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 3, padding=1),
                         nn.PixelShuffle(2)).eval()


@pytest.mark.parametrize("k", range(NUM_TRANSFORMS))
def test_each_inverse_undoes_its_transform(k):
    x = _asymmetric()
    y = transform(x, k)
    assert torch.equal(inverse_transform(y, k), x)
    if k:
        assert y.shape != x.shape or not torch.equal(y, x)


def test_the_8_transforms_are_the_8_symmetries_of_the_square():
    x = _asymmetric(1, 7, 7)
    ours = [transform(x, k) for k in range(NUM_TRANSFORMS)]
    reference = [y for y, _ in _reference_d4(x)]
    for y in reference:  # every symmetry appears exactly once
        assert sum(torch.equal(y, o) for o in ours) == 1


@pytest.mark.parametrize("shape", [(2, 1, 6, 9), (1, 1, 8, 8)])
def test_identity_network_gives_the_input_back(shape):
    x = _asymmetric(*shape[:1], *shape[2:])
    assert torch.equal(self_ensemble(lambda t: t, x), x)


def test_equivariant_networks_equal_their_plain_output():
    x = torch.rand(2, 1, 10, 14, generator=torch.Generator().manual_seed(1))

    def bicubic(t):
        return F.interpolate(t, scale_factor=2, mode="bicubic", align_corners=False)
    laplace = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]]).view(1, 1, 3, 3)

    def identity_plus_bicubic_detail(t):
        up = bicubic(t)
        return up + 0.1 * F.conv2d(up, laplace, padding=1)
    for net in (bicubic, identity_plus_bicubic_detail):
        torch.testing.assert_close(self_ensemble(net, x), net(x), atol=1e-6, rtol=0)


@pytest.mark.parametrize("shape", [(2, 1, 6, 9), (1, 1, 8, 8)])
def test_random_network_matches_independent_reference(shape):
    net = _tiny_sr_net()
    x = torch.rand(shape, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ours = self_ensemble(net, x)
        reference = torch.stack([inv(net(y)) for y, inv in _reference_d4(x)]).mean(0)
        plain = net(x)
    assert ours.shape == plain.shape == (shape[0], 1, 2 * shape[2], 2 * shape[3])
    torch.testing.assert_close(ours, reference, atol=1e-6, rtol=0)
    assert (ours - plain).abs().max() > 1e-3  # the ensemble really averages different outputs


@pytest.mark.parametrize("shape, batches", [((3, 1, 6, 9), [12, 12]), ((3, 1, 8, 8), [24])])
def test_runs_the_network_on_one_or_two_batches(shape, batches):
    seen = []

    def forward(t):
        seen.append(t.shape[0])
        return t * 2
    self_ensemble(forward, torch.rand(shape))
    assert seen == batches


def test_keeps_the_networks_output_dtype():
    x = torch.rand(1, 1, 8, 8)
    assert self_ensemble(lambda t: t.to(torch.bfloat16), x).dtype == torch.bfloat16


def test_rejects_non_nchw_input():
    with pytest.raises(ValueError, match="NCHW"):
        self_ensemble(lambda t: t, torch.rand(1, 8, 8))
