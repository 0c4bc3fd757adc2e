"""MRSRModel's training step options: ``train: compile`` gives the eager loss curve,
``on_device`` batches train like dataset batches, fused Adam on CUDA."""
from __future__ import annotations

import copy

import pytest
import torch

import w2amsn_plugin  # noqa: F401  (registers MRSRModel, W2AMSN)
from basicsr.models import build_model

NET = {"type": "W2AMSN", "num_in_ch": 1, "num_out_ch": 1, "num_feat": 8, "num_block": 1, "upscale": 2}


def _opt(device: str = "cpu", **train) -> dict:
    return {"name": "step", "model_type": "MRSRModel", "scale": 2, "num_gpu": int(device == "cuda"),
            "is_train": True, "dist": False, "rank": 0, "world_size": 1, "manual_seed": 0,
            "network_g": dict(NET), "path": {"pretrain_network_g": None, "strict_load_g": True,
                                             "resume_state": None},
            "train": {"ema_decay": 0, "optim_g": {"type": "Adam", "lr": 2e-3, "betas": [0.9, 0.999]},
                      "scheduler": {"type": "MultiStepLR", "milestones": [10_000], "gamma": 0.5},
                      "total_iter": 10_000, "warmup_iter": -1,
                      "pixel_opt": {"type": "L1Loss", "loss_weight": 1.0, "reduction": "mean"}, **train},
            "val": {"metrics": {}}}


def _batches(n: int, seed: int = 0) -> list[dict[str, torch.Tensor]]:
    """Smooth random 32x32 HR patches and their 2x box-downscaled LR (a learnable task)."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        hr = torch.nn.functional.interpolate(torch.rand(4, 1, 8, 8, generator=g), size=32, mode="bicubic",
                                             align_corners=False).clamp(0, 1)
        out.append({"lq": torch.nn.functional.avg_pool2d(hr, 2), "gt": hr})
    return out


def _curve(opt: dict, batches: list[dict[str, torch.Tensor]], seed: int = 0) -> list[float]:
    torch.manual_seed(seed)
    model = build_model(copy.deepcopy(opt))
    losses = []
    for i, batch in enumerate(batches, 1):
        model.feed_data(batch)
        model.optimize_parameters(i)
        losses.append(float(model.log_dict["l_pix"]))
    return losses


def test_bad_compile_value_is_one_clear_error():
    with pytest.raises(ValueError, match="train: compile"):
        build_model(_opt(compile="fastest"))


@pytest.mark.slow
def test_compiled_step_follows_the_eager_loss_curve():
    batches = _batches(300)
    eager = _curve(_opt(), batches)
    compiled = _curve(_opt(compile=True), batches)
    assert eager[-1] < 0.5 * eager[0]  # it learns
    head = max(abs(a - b) / a for a, b in zip(eager[:20], compiled[:20]))
    assert head < 1e-3, head  # the same function: equal up to float reassociation at first

    def tail(curve: list[float]) -> float:
        return sum(curve[-100:]) / 100

    # later, float differences grow as in any two runs; "noise" = eager with another init seed
    noise = abs(tail(eager) - tail(_curve(_opt(), batches, seed=1)))
    assert abs(tail(eager) - tail(compiled)) <= max(3 * noise, 0.1 * tail(eager)), (
        tail(eager), tail(compiled), noise)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_adam_is_fused_on_cuda():
    model = build_model(_opt("cuda"))
    assert model.optimizer_g.defaults["fused"] is True
    assert build_model(_opt("cpu")).optimizer_g.defaults.get("fused") in (None, False)
