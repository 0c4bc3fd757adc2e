"""W²AMSN (paper section III) and the 1-channel baselines: shapes, gradients, every ablation of
section IV-D, the blocks against direct computations of the paper's equations, BasicSR
construction, channels_last and bf16 autocast. Tiny networks only (a <= 4, t <= 2)."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml

import w2amsn_plugin  # noqa: F401  (registers the archs)
from basicsr.archs import build_network
from basicsr.archs.edsr_arch import EDSR
from w2amsn_plugin.archs import ABLATIONS, PRESETS, W2AMSN, ablation, preset
from w2amsn_plugin.archs.w2amsn_blocks import CAB, NCAB, W2AMSB, PixelShuffleUpsampler, prime_factors

torch.manual_seed(0)
TINY = {"num_feat": 4, "num_block": 2, "widen": 2}
#: Parameters of the default W2AMSN (a=32, t=20, S2/W2 width a), x2 and x4: the README figures.
DEFAULT_PARAMS = {2: 9_462_313, 4: 9_499_305}
DEFAULT_PARAMS_S = {2: 3_618_961}


def tiny(opt: dict, seed: int = 0) -> torch.nn.Module:
    """Build ``opt`` (a network_g dict) shrunk to a tiny width/depth, keeping its ablation."""
    opt = copy.deepcopy(opt)
    opt["num_feat"] = max(2, opt["num_feat"] // 16)
    opt["num_block"] = 2
    opt["widen"] = min(opt.get("widen", 4), 2)
    torch.manual_seed(seed)
    return build_network(opt)


def n_params(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


# ---- shapes, gradients --------------------------------------------------------------------
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_output_shape_odd_input(scale: int) -> None:
    net = W2AMSN(upscale=scale, **TINY)
    out = net(torch.rand(2, 1, 37, 41))
    assert out.shape == (2, 1, 37 * scale, 41 * scale)


@pytest.mark.parametrize("scale,stages", [(1, 0), (5, 1), (6, 2), (8, 3), (9, 2)])
def test_any_integer_scale(scale: int, stages: int) -> None:
    net = W2AMSN(upscale=scale, **TINY)
    assert sum(isinstance(m, torch.nn.PixelShuffle) for m in net.upsample) == stages
    assert net(torch.rand(1, 1, 5, 7)).shape == (1, 1, 5 * scale, 7 * scale)


def test_prime_factors() -> None:
    assert prime_factors(1) == []
    assert prime_factors(12) == [2, 2, 3]
    assert prime_factors(49) == [7, 7]


def test_upsampler_layout_matches_basicsr() -> None:
    """For 2^n and 3 the upsampler's state_dict keys/shapes equal BasicSR's Upsample."""
    from basicsr.archs.arch_util import Upsample
    for scale in (2, 3, 4, 8):
        ours = {k: v.shape for k, v in PixelShuffleUpsampler(scale, 8).state_dict().items()}
        theirs = {k: v.shape for k, v in Upsample(scale, 8).state_dict().items()}
        assert ours == theirs


def test_gradient_reaches_every_parameter() -> None:
    net = W2AMSN(upscale=2, **TINY)
    net(torch.rand(2, 1, 9, 11)).square().mean().backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing
    assert any(n.endswith("lambdas") for n, _ in net.named_parameters())


def test_lambdas_initialised_to_one_and_absent_without_weighted_fusion() -> None:
    net = W2AMSN(**TINY)
    assert all(torch.equal(b.lambdas, torch.ones(2)) for b in net.body)
    fixed = W2AMSN(weighted_fusion=False, **TINY)
    assert not any("lambdas" in n for n, _ in fixed.named_parameters())


def test_no_grad_path_equals_autograd_path() -> None:
    """Inference fills a preallocated x_c; training concatenates once: same output."""
    net = W2AMSN(**TINY).eval()
    x = torch.rand(2, 1, 10, 12)
    with torch.no_grad():
        fast = net(x)
    torch.testing.assert_close(fast, net(x).detach())


# ---- every preset and ablation builds and runs (add an entry, get a test) ----------------
VARIANTS = {**{f"preset:{k}": preset(k, 2) for k in PRESETS if PRESETS[k]["type"] == "W2AMSN"},
            **{f"ablation:{k}": ablation(k) for k in ABLATIONS}}


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_variant_builds_and_runs(name: str) -> None:
    opt = VARIANTS[name]
    net = tiny(opt)
    x = torch.rand(1, 1, 7, 9)
    out = net(x)
    s = opt["upscale"]
    assert out.shape == (1, 1, 7 * s, 9 * s) and torch.isfinite(out).all()
    out.mean().backward()
    assert all(p.grad is not None for p in net.parameters())


def _signature(opt: dict) -> tuple:
    """Module tree and parameter names/shapes of ``opt`` built on the meta device."""
    kwargs = {k: v for k, v in opt.items() if k != "type"}
    with torch.device("meta"):
        net = W2AMSN(**kwargs)
    return repr(net), sorted((k, tuple(v.shape)) for k, v in net.state_dict().items())


@pytest.mark.parametrize("name", sorted(ABLATIONS))
def test_ablation_changes_the_network(name: str) -> None:
    """Each ablation's overrides take effect: the network differs from the paper's full model."""
    variant = ABLATIONS[name]
    assert variant.overrides and variant.modality in ("PD", "T1", "T2")
    assert _signature(ablation(name)) != _signature(preset("W2AMSN", variant.scale))


@pytest.mark.parametrize("block,glob", [(b, g) for b in ("ncab", "cab", "none")
                                        for g in ("ncab", "cab", "none")])
def test_attention_kinds_land_in_place(block: str, glob: str) -> None:
    net = W2AMSN(block_attention=block, global_attention=glob, **TINY)
    kind = {NCAB: "ncab", CAB: "cab", torch.nn.Identity: "none"}
    assert kind[type(net.global_attention)] == glob
    assert all(kind[type(a)] == block for b in net.body for a in b.attention)
    assert net(torch.rand(1, 1, 6, 6)).shape == (1, 1, 12, 12)


@pytest.mark.parametrize("bad", [{"block_attention": "se"}, {"global_attention": "NCAB"},
                                 {"upscale": 0}, {"upscale": 2.5}, {"kernel_sizes": [4, 5]},
                                 {"kernel_sizes": []}, {"num_feat": 0}, {"mid_feat": -1}])
def test_bad_arguments_give_one_clear_error(bad: dict) -> None:
    with pytest.raises(ValueError, match=next(iter(bad))):
        W2AMSN(**{**TINY, **bad})


# ---- blocks against the paper's equations -------------------------------------------------
@pytest.mark.parametrize("pool_first", [True, False])
def test_ncab_equals_eqs_5_6(pool_first: bool) -> None:
    """F_A(x) = Softmax_c(GAP(C1u(x))) ⊙ C1l(x) + x, computed directly on a fixed tensor."""
    torch.manual_seed(1)
    c = 6
    ncab = NCAB(c, pool_first=pool_first)
    x = torch.randn(3, c, 5, 7)
    wu, bu = ncab.upper.weight.view(c, c), ncab.upper.bias
    wl, bl = ncab.lower.weight.view(c, c), ncab.lower.bias
    upper = torch.einsum("oc,nchw->nohw", wu, x) + bu.view(1, c, 1, 1)
    w_a = torch.softmax(upper.mean(dim=(2, 3)), dim=1).view(3, c, 1, 1)          # eq. 5
    expected = w_a * (torch.einsum("oc,nchw->nohw", wl, x) + bl.view(1, c, 1, 1)) + x  # eq. 6
    torch.testing.assert_close(ncab(x), expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ncab.attention_weights(x).sum(dim=1), torch.ones(3, 1, 1))


def test_w2amsb_equals_eqs_9_13() -> None:
    """The block against a literal transcription of eqs. 9-13, with eq. 10's concatenation orders
    [σS1, σW1] and [σW1, σS1] (our 5x5 weight stores the swapped halves) and λ ≠ 1."""
    torch.manual_seed(2)
    a, wide, mid = 3, 6, 4
    block = W2AMSB(a, mid, widen=2, kernel_sizes=(3, 5), res_scale=1.0)
    with torch.no_grad():
        block.lambdas.copy_(torch.tensor([0.7, 1.6]))
    x = torch.randn(2, a, 8, 9)
    s1 = F.conv2d(x, block.widen[0].weight, block.widen[0].bias, padding=1)          # eq. 9
    w1 = F.conv2d(x, block.widen[1].weight, block.widen[1].bias, padding=2)
    w5 = block.mix[1].weight
    w5_paper = torch.cat([w5[:, wide:], w5[:, :wide]], dim=1)  # weight for [σW1, σS1]
    s2 = F.conv2d(torch.cat([s1.relu(), w1.relu()], 1), block.mix[0].weight, block.mix[0].bias, padding=1)
    w2 = F.conv2d(torch.cat([w1.relu(), s1.relu()], 1), w5_paper, block.mix[1].bias, padding=2)  # eq. 10
    s3, w3 = block.attention[0](s2), block.attention[1](w2)                          # eq. 11
    lam = block.lambdas
    s_prime = F.conv2d(torch.cat([lam[0] * s3, lam[1] * w3], 1), block.fusion.weight, block.fusion.bias)  # 12
    torch.testing.assert_close(block(x), s_prime + x, rtol=1e-5, atol=1e-5)          # eq. 13


def test_w2amsn_global_part_equals_eqs_4_7_8() -> None:
    torch.manual_seed(3)
    net = W2AMSN(upscale=2, **TINY)
    x = torch.rand(1, 1, 6, 7)
    x_s = net.sfe(x)                                                                 # eq. 1
    feats = [x_s]
    for block in net.body:                                                           # eqs. 2-3
        feats.append(block(feats[-1]))
    x_a = net.global_attention(torch.cat(feats, 1))                                  # eqs. 4, 7
    y = net.conv_last(net.upsample(net.global_fusion(x_a) + x_s))                    # eq. 8
    torch.testing.assert_close(net(x), y)


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("grad", [False, True])
def test_folded_global_attention_equals_layer_by_layer(channels_last: bool, grad: bool) -> None:
    """fold_global (C1g and the global NCAB as one per-sample 1x1 map) is the same function."""
    net = W2AMSN(num_feat=4, num_block=3, widen=2).eval()
    ref = copy.deepcopy(net)
    ref.fold_global = False
    x = torch.rand(2, 1, 9, 11)
    if channels_last:
        net, ref = net.to(memory_format=torch.channels_last), ref.to(memory_format=torch.channels_last)
        x = x.to(memory_format=torch.channels_last)
    with torch.set_grad_enabled(grad):
        torch.testing.assert_close(net(x), ref(x), rtol=1e-5, atol=1e-6)


# ---- parameter counts (the README's figures), BasicSR construction --------------------------
def test_default_parameter_count_is_the_readme_figure() -> None:
    with torch.device("meta"):
        assert {s: n_params(W2AMSN(upscale=s)) for s in DEFAULT_PARAMS} == DEFAULT_PARAMS
        assert n_params(W2AMSN(num_block=8)) == DEFAULT_PARAMS_S[2]
    readme = Path(__file__).resolve().parents[2] / "docs" / "model-size.md"
    text = readme.read_text(encoding="utf-8") if readme.exists() else ""
    if "# Model size" not in text:
        pytest.skip("docs/model-size.md has no 'Model size' section yet")
    assert f"{DEFAULT_PARAMS[2]:,}" in text and f"{DEFAULT_PARAMS_S[2]:,}" in text


def test_builds_from_basicsr_yaml() -> None:
    opt = yaml.safe_load("""
    type: W2AMSN
    num_in_ch: 1
    num_out_ch: 1
    num_feat: 4
    num_block: 2
    upscale: 3
    widen: 2
    mid_feat: 6
    kernel_sizes: [3, 5]
    weighted_fusion: true
    block_attention: cab
    global_attention: ncab
    """)
    net = build_network(opt)
    assert isinstance(net, W2AMSN) and net.body[0].mix[0].out_channels == 6
    assert net(torch.rand(1, 1, 5, 5)).shape == (1, 1, 15, 15)


# ---- speed paths: channels_last, bf16 autocast --------------------------------------------
@pytest.mark.parametrize("grad", [False, True])
def test_channels_last_matches_nchw(grad: bool) -> None:
    net = W2AMSN(upscale=2, **TINY).eval()
    x = torch.rand(2, 1, 11, 13)
    with torch.set_grad_enabled(grad):
        ref = net(x)
        net_cl = copy.deepcopy(net).to(memory_format=torch.channels_last)
        out = net_cl(x.to(memory_format=torch.channels_last))
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("channels_last", [False, True])
def test_bf16_autocast_close_to_fp32(channels_last: bool) -> None:
    net = W2AMSN(upscale=2, **TINY).eval()
    x = torch.rand(2, 1, 12, 12)
    with torch.no_grad():
        ref = net(x)
        if channels_last:
            net, x = net.to(memory_format=torch.channels_last), x.to(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = net(x)
    assert out.shape == ref.shape
    assert (out.float() - ref).abs().max() < 0.05 * ref.abs().max() + 1e-3


# ---- 1-channel baselines -----------------------------------------------------------------
def test_basicsr_edsr_fails_on_one_channel() -> None:
    """Why EDSRGray exists: BasicSR 1.4.2's EDSR hard-codes a 3-value mean (edsr_arch.py:42)."""
    net = EDSR(1, 1, num_feat=8, num_block=1, upscale=2)
    with pytest.raises(RuntimeError):
        net(torch.rand(1, 1, 8, 8))


@pytest.mark.parametrize("arch,kwargs", [
    ("EDSRGray", {"num_feat": 8, "num_block": 2}),
    ("RCANGray", {"num_feat": 16, "num_group": 2, "num_block": 2}),
    ("MSRResNet", {"num_feat": 8, "num_block": 2}),
    ("RRDBNet", {"num_feat": 8, "num_block": 1, "num_grow_ch": 4}),
])
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_one_channel_baselines(arch: str, kwargs: dict, scale: int) -> None:
    if arch == "RRDBNet" and scale == 3:
        pytest.skip("BasicSR's RRDBNet supports x1, x2, x4 only")
    scale_key = "scale" if arch == "RRDBNet" else "upscale"  # BasicSR's RRDBNet says `scale`
    net = build_network({"type": arch, "num_in_ch": 1, "num_out_ch": 1, scale_key: scale, **kwargs})
    x = torch.rand(1, 1, 8, 10)  # even: RRDBNet x2 pixel-unshuffles its input
    assert net(x).shape == (1, 1, 8 * scale, 10 * scale)


def test_swinir_one_channel() -> None:
    net = build_network({"type": "SwinIR", "upscale": 2, "in_chans": 1, "img_size": 8,
                         "window_size": 4, "embed_dim": 8, "depths": [1], "num_heads": [2],
                         "mlp_ratio": 1, "upsampler": "pixelshuffle", "img_range": 1.0})
    assert net(torch.rand(1, 1, 8, 12)).shape == (1, 1, 16, 24)


@pytest.mark.parametrize("gray,parent,kwargs", [
    ("EDSRGray", "EDSR", {"num_feat": 8, "num_block": 2}),
    ("RCANGray", "RCAN", {"num_feat": 16, "num_group": 2, "num_block": 2}),
])
def test_gray_baselines_share_basicsr_state_dict(gray: str, parent: str, kwargs: dict) -> None:
    """Same layers and keys as BasicSR's class: weights move between them; the mean is no weight."""
    ours = build_network({"type": gray, "num_in_ch": 3, "num_out_ch": 3, "mean": [0.4, 0.4, 0.4],
                          "upscale": 2, **kwargs})
    theirs = build_network({"type": parent, "num_in_ch": 3, "num_out_ch": 3, "upscale": 2,
                            "rgb_mean": [0.4, 0.4, 0.4], **kwargs})
    theirs.load_state_dict(ours.state_dict())
    x = torch.rand(1, 3, 6, 6)
    torch.testing.assert_close(ours(x), theirs(x))


def test_gray_mean_is_subtracted_and_validated() -> None:
    net = build_network({"type": "EDSRGray", "num_feat": 8, "num_block": 1, "upscale": 2, "mean": [0.25]})
    assert net.mean.shape == (1, 1, 1, 1) and net.mean.item() == 0.25
    with pytest.raises(ValueError, match="EDSRGray: mean"):
        build_network({"type": "EDSRGray", "num_feat": 8, "num_block": 1, "upscale": 2, "mean": [0.1, 0.2]})


@pytest.mark.parametrize("name", ["EDSR", "RCAN", "W2AMSN", "W2AMSN-S"])
def test_presets_build_with_paper_sizes(name: str) -> None:
    """Presets build through BasicSR; RCAN and EDSR have Table II's parameter counts at x2 (the
    other methods' counts: tests/archs/test_baseline_archs.py, against layer-by-layer formulas)."""
    with torch.device("meta"):
        net = build_network(preset(name, 2))
    expected = {"W2AMSN": DEFAULT_PARAMS[2], "W2AMSN-S": DEFAULT_PARAMS_S[2],
                "EDSR": 3_140_097, "RCAN": 15_442_337}
    assert n_params(net) == expected[name]
    assert "upscale" not in PRESETS[name]


def test_upsampler_on_8a_features_closes_table_ii_gap():
    """upsample_feat=256 (docs/model-size.md): x2 sizes within 1.2% of Table II, default unchanged."""
    from w2amsn_plugin.archs.complexity import TABLE_II, UPSAMPLE_READING, count
    from w2amsn_plugin.archs.presets import preset

    for name, params in (("W2AMSN", 11_796_105), ("W2AMSN-S", 5_952_753)):
        got = count({**preset(name, 2), **UPSAMPLE_READING})
        assert got["params"] == params
        assert abs(got["params"] / TABLE_II[name][0] - 1) < 0.012
        assert abs(got["macs_nominal"] / TABLE_II[name][1] - 1) < 0.012
    net = W2AMSN(num_feat=8, num_block=1, widen=2, upscale=3, upsample_feat=16)
    assert net(torch.rand(1, 1, 10, 12)).shape == (1, 1, 30, 36)
    assert "upsample_in.weight" not in W2AMSN(num_feat=8, num_block=1).state_dict()
