"""``--init``: the W²AMSN configuration read back from a checkpoint's weights, and BasicSR's
non-strict load of a two-axis checkpoint into the one-axis network (the tail starts fresh)."""
from __future__ import annotations

import pytest
import torch

import w2amsn_plugin  # noqa: F401  (compat patches before BasicSR, registers the archs)
from basicsr.utils.registry import ARCH_REGISTRY
from w2amsn_plugin.selfsr.errors import SelfSRError
from w2amsn_plugin.selfsr.warm_start import checkpoint_network


@pytest.mark.parametrize("kwargs", [
    {"num_feat": 8, "num_block": 2, "widen": 2},
    {"num_feat": 4, "num_block": 3, "widen": 1, "kernel_sizes": [3], "weighted_fusion": False,
     "block_attention": "cab", "global_attention": "none", "mid_feat": 6, "upsample_feat": 16},
])
def test_configuration_read_from_weights(tmp_path, kwargs):
    net = ARCH_REGISTRY.get("W2AMSN")(upscale=2, **kwargs)
    torch.save({"params": net.state_dict()}, tmp_path / "net_g.pth")
    read = checkpoint_network(tmp_path / "net_g.pth")
    rows = ARCH_REGISTRY.get("W2AMSN")(**{**{k: v for k, v in read.items() if k != "type"},
                                          "upscale": 4, "upscale_axis": "rows"})
    state = net.state_dict()
    body = {k: v for k, v in state.items() if not k.startswith(("upsample.", "conv_last"))}
    missing, unexpected = rows.load_state_dict(body, strict=False)
    assert not unexpected and all(k.startswith(("upsample.", "conv_last")) for k in missing)
    for key in ("num_feat", "num_block", "widen"):
        assert read[key] == kwargs[key]


def test_not_a_w2amsn_checkpoint(tmp_path):
    torch.save({"params": {"conv.weight": torch.zeros(1)}}, tmp_path / "x.pth")
    with pytest.raises(SelfSRError, match="not a W2AMSN checkpoint"):
        checkpoint_network(tmp_path / "x.pth")
    (tmp_path / "junk.pth").write_text("junk")
    with pytest.raises(SelfSRError, match="not a readable"):
        checkpoint_network(tmp_path / "junk.pth")
