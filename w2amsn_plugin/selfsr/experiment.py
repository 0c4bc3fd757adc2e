"""The BasicSR experiment of one self-sr run: an ordinary options dict (general -> datasets ->
network_g -> path -> train -> val -> logger -> dist_params), trained by BasicSR's own trainer
with :class:`~w2amsn_plugin.models.mr_sr_model.MRSRModel`, so checkpoints, ``--auto_resume``
and warm starts (``path.pretrain_network_g``) work as in any BasicSR run.

:data:`DEFAULT_NETWORK` is the W²AMSN configuration of the default budget (a W²AMSN-S body
narrowed to fit a CPU budget, with the one-axis tail of :class:`~w2amsn_plugin.archs.W2AMSN`);
:data:`DEFAULT_RECIPE` its schedule (docs/self-sr.md has the measurements behind both).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

__all__ = ["DEFAULT_NETWORK", "DEFAULT_RECIPE", "ITERATION_CAP", "Recipe", "self_sr_options"]

#: under a time budget, training also stops after this many times the iterations the timing
#: probe expects (a machine far faster than probed still ends with a finished schedule)
ITERATION_CAP = 4

DEFAULT_NETWORK: dict[str, Any] = {
    "type": "W2AMSN", "num_in_ch": 1, "num_out_ch": 1, "num_feat": 16, "num_block": 4,
    "widen": 2, "kernel_sizes": [3, 5], "weighted_fusion": True,
    "block_attention": "ncab", "global_attention": "ncab", "input_residual": True,
}


@dataclass(frozen=True)
class Recipe:
    """Training schedule: Adam at ``lr`` cosine-decayed to 1 % over ``total_iter`` iterations (or a
    time budget's seconds, :func:`self_sr_options`) of
    ``batch`` patches of ``gt_size`` px (GT side), L1 loss, validation ``val_points`` times.
    ``minutes``: the default budget, a wall time for the whole run (training and inference) of
    which training gets what a timing probe leaves (:mod:`.budget`), the cosine then running
    over those seconds."""

    total_iter: int = 300
    minutes: float = 10.0
    batch: int = 4
    gt_size: int = 64
    lr: float = 1e-3
    val_points: int = 5
    network: dict[str, Any] = field(default_factory=lambda: copy.deepcopy(DEFAULT_NETWORK))


DEFAULT_RECIPE = Recipe()


def self_sr_options(name: str, dataset: dict[str, Any], val_slices: list[int], scale: int,
                    recipe: Recipe = DEFAULT_RECIPE, *, one_axis: bool = True,
                    init: str | None = None, init_network: dict[str, Any] | None = None,
                    bf16: str | bool = "auto", num_gpu: int | str = 0,
                    seconds: float | None = None) -> dict[str, Any]:
    """BasicSR options for training on one scan. ``dataset`` holds the
    :class:`~.patch_dataset.SelfSRPatchDataset` keys shared by the train and val phases
    (``volume``, ``spacing``, ``degradation``, ``profile``); ``init``: a checkpoint to start from
    (its body must match ``init_network``, which then replaces the recipe's network; the tail is
    loaded where its shape fits). ``seconds``: train for this wall time
    (:class:`~w2amsn_plugin.time_budget.TimedCosineLR`), ``recipe.total_iter`` being the
    iterations expected in it (validation and checkpoints are spaced by it; training stops at
    :data:`ITERATION_CAP` times it at the latest); else train ``recipe.total_iter`` iterations."""
    network = copy.deepcopy(init_network or recipe.network)
    network.update(upscale=scale, upscale_axis="rows" if one_axis else "both")
    total = int(recipe.total_iter)
    last = total if seconds is None else ITERATION_CAP * total
    eta_min = recipe.lr * 0.01
    scheduler = ({"type": "CosineAnnealingRestartLR", "periods": [total], "restart_weights": [1],
                  "eta_min": eta_min} if seconds is None
                 else {"type": "TimedCosineLR", "seconds": float(seconds), "eta_min": eta_min})
    common = {"type": "SelfSRPatchDataset", "scale": scale, "val_slices": list(val_slices), **dataset}
    val_freq = max(1, total // max(1, recipe.val_points))
    return {
        "name": name, "model_type": "MRSRModel", "scale": scale, "num_gpu": num_gpu, "manual_seed": 0,
        "datasets": {
            "train": {**common, "name": "scan_train", "gt_size": max(scale, recipe.gt_size // scale * scale),
                      "samples_per_epoch": recipe.batch * last, "use_hflip": True, "use_vflip": True,
                      "num_worker_per_gpu": 0, "batch_size_per_gpu": recipe.batch,
                      "dataset_enlarge_ratio": 1, "prefetch_mode": None},
            "val": {**common, "name": "scan_val"},
        },
        "network_g": network,
        "path": {"pretrain_network_g": init, "strict_load_g": init is None,
                 "param_key_g": "params", "resume_state": None},
        "train": {"ema_decay": 0, "bf16": bf16,
                  "optim_g": {"type": "Adam", "lr": recipe.lr, "weight_decay": 0,
                              "betas": [0.9, 0.999], "eps": 1.0e-8},
                  "scheduler": scheduler, "total_iter": last, "warmup_iter": -1,
                  "pixel_opt": {"type": "L1Loss", "loss_weight": 1.0, "reduction": "mean"}},
        "val": {"val_freq": val_freq, "save_img": False, "self_ensemble": False,
                "bicubic_reference": False, "results_table": False, "best_metric": "psnr",
                "metrics": {"psnr": {"type": "calculate_psnr_mr", "crop_border": 0, "better": "higher"},
                            "psnr_fg": {"type": "calculate_psnr_fg", "crop_border": 0,
                                        "better": "higher"}}},
        "logger": {"print_freq": max(1, total // 20), "save_checkpoint_freq": val_freq,
                   "use_tb_logger": False, "wandb": {"project": None, "resume_id": None}},
        "dist_params": {"backend": "nccl", "port": 29500},
    }
