"""Parameters and multiply-adds (MACs) of every network as configured in
:data:`w2amsn_plugin.archs.PRESETS`, next to the paper's Table II (T1 x2; :data:`TABLE_II`, merged
from each arch's file).

Multiply-adds are counted by ``torch.utils.flop_counter`` (convolutions and matrix products;
FLOPs / 2) on a forward pass over the ``meta`` device, so nothing is computed or allocated and the
count takes well under a second. Two MAC counts are returned:

- ``MACs``: what our forward pass executes.
- ``MACs (nominal)``: every layer of the paper run as drawn: each NCAB's upper 1x1 conv over the
  whole feature map (eq. 5) and the global NCAB's lower 1x1 conv before C1g (eqs. 6-8). Ours
  pools first and folds the global NCAB into C1g, the same function (see
  :class:`~w2amsn_plugin.archs.w2amsn_blocks.NCAB` and ``W2AMSN.fold_global``). Table II follows
  this convention (its MACs are params x 120 x 120). The two columns differ only for W²AMSN.
"""
from __future__ import annotations

from typing import Any

import torch
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from .presets import TABLE_II
from .w2amsn_arch import W2AMSN
from .w2amsn_blocks import NCAB

__all__ = ["TABLE_II", "UPSAMPLE_READING", "count"]

#: the reading of F_R (eq. 8) that closes Table II's W²AMSN gap: an EDSR-style upsampler on 8a =
#: 256 features (conv3x3 256 -> 1024 at x2, 2.36M parameters; docs/model-size.md)
UPSAMPLE_READING: dict[str, Any] = {"upsample_feat": 256}


def _build(opt: dict[str, Any]) -> nn.Module:
    kwargs = dict(opt)
    with torch.device("meta"):
        return ARCH_REGISTRY.get(kwargs.pop("type"))(**kwargs)


def _reference_mode(net: nn.Module, on: bool) -> bool:
    """Switch W²AMSN's exact shortcuts off (``on``) or back on; True if the net has any."""
    found = False
    for module in net.modules():
        if isinstance(module, NCAB):
            module.pool_first, found = not on, True
        if isinstance(module, W2AMSN):
            module.fold_global, found = not on, True
    return found


def count(opt: dict[str, Any], size: tuple[int, int] = (120, 120)) -> dict[str, int]:
    """Parameters and MACs (executed and nominal, see module doc) of the network ``opt``
    (a BasicSR ``network_g`` dict) on one ``num_in_ch`` x H x W input."""
    net = _build(opt).eval()
    x = torch.empty(1, opt.get("num_in_ch", 1), *size, device="meta")
    macs = {}
    for key in ("macs", "macs_nominal"):
        has_shortcuts = _reference_mode(net, on=key == "macs_nominal")
        if key == "macs_nominal" and not has_shortcuts:
            macs[key] = macs["macs"]
            continue
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            net(x)
        macs[key] = counter.get_total_flops() // 2
    return {"params": sum(p.numel() for p in net.parameters()), **macs}


