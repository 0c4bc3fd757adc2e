"""The paper's experiments as one table, rendered into BasicSR options dicts.

Every YAML under ``options/`` is generated from this module by ``scripts/make_options.py``
(``tests/test_options.py`` checks the committed files equal the generated ones). Layout of each
file follows BasicSR: general -> datasets -> network_g -> path -> train -> val -> logger ->
dist_params.

Schedule (paper section IV-B; DESIGN.md section 6): 500 volumes x 96 slices = 48,000 training
slices per epoch, batch 96 of 32x32 LR patches -> 500 iterations per epoch; 1000 epochs =
500k iterations; Adam(0.9, 0.999, eps 1e-8), lr 1e-4 halved every 200 epochs (100k
iterations); L1 loss.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from .archs.presets import preset

__all__ = ["Experiment", "ARCHS", "MODALITIES", "SCALES", "experiments", "train_options",
           "eval_options", "dataset_dir"]

ARCHS = ("W2AMSN", "W2AMSN-S", "EDSR", "RCAN")
MODALITIES = ("PD", "T1", "T2")
SCALES = (2, 3, 4)

TOTAL_ITER = 500_000
ITERS_PER_EPOCH = 500
BATCH = 96
LR_PATCH = 32


@dataclass(frozen=True)
class Experiment:
    """One training run: a network preset (plus overrides) on one modality and scale.

    ``group`` places the files: ``train/<group>/`` and ``test/<group>/``; ``tag`` names an
    ablation variant (``TableI_baseline``, ``Fig6_K3K3``, ...).
    """

    arch: str
    modality: str
    scale: int
    group: str
    tag: str = ""
    overrides: dict[str, Any] = field(default_factory=dict)
    note: str = ""

    @property
    def file_arch(self) -> str:
        return self.arch.replace("-", "_")

    @property
    def stem(self) -> str:
        tag = f"_{self.tag}" if self.tag else ""
        return f"{self.file_arch}_{self.modality}_x{self.scale}{tag}"

    def network(self) -> dict[str, Any]:
        net = preset(self.arch, self.scale)
        net.update(copy.deepcopy(self.overrides))
        return net

    @property
    def name(self) -> str:
        """BasicSR experiment name encoding the set-up (style notes)."""
        net = self.network()
        if net["type"] == "W2AMSN":
            size = f"a{net['num_feat']}t{net['num_block']}"
        elif net["type"] == "RCANGray":
            size = f"g{net['num_group']}b{net['num_block']}f{net['num_feat']}"
        else:
            size = f"b{net['num_block']}f{net['num_feat']}"
        return f"{self.stem}_{size}_IXI_{TOTAL_ITER // 1000}k_B{BATCH}"


def _ablations() -> list[Experiment]:
    out: list[Experiment] = []
    table_i = {"baseline": {"widen": 1, "kernel_sizes": [3]},
               "CW": {"widen": 4, "kernel_sizes": [3]},
               "MS": {"widen": 1, "kernel_sizes": [3, 5]},
               "MS_CW": {"widen": 4, "kernel_sizes": [3, 5]}}
    for tag, ov in table_i.items():
        out.append(Experiment("W2AMSN", "PD", 2, "ablation_TableI", f"TableI_{tag}", ov,
                              "Table I: multi-scale (MS) and channel widening (CW), PD x2"))
    fig6 = {"K3K3": ([3, 3], False), "K5K5": ([5, 5], False), "K3K5": ([3, 5], False),
            "K3K5W": ([3, 5], True)}
    for tag, (ks, wf) in fig6.items():
        out.append(Experiment("W2AMSN", "T1", 2, "ablation_Fig6", f"Fig6_{tag}",
                              {"kernel_sizes": ks, "weighted_fusion": wf},
                              "Fig. 6 / Fig. 5(b): branch kernels and weighted fusion, T1 x2"))
    for a, widen in ((32, 1), (64, 1), (32, 2), (64, 2), (32, 4), (64, 4)):
        out.append(Experiment("W2AMSN", "PD", 2, "ablation_TableIV", f"TableIV_a{a}w{widen}",
                              {"num_feat": a, "widen": widen},
                              f"Table IV: input-middle-output {a}-{a * widen}-{a}, PD x2"))
    for kind in ("none", "cab", "ncab"):
        out.append(Experiment("W2AMSN", "T2", 4, "ablation_TableV", f"TableV_{kind}",
                              {"block_attention": kind, "global_attention": kind},
                              "Table V: attention type (none / RCAN CAB / NCAB), T2 x4"))
    for tag, (blk, glb) in {"A": ("none", "none"), "B": ("ncab", "none"),
                            "C": ("none", "ncab"), "D": ("ncab", "ncab")}.items():
        out.append(Experiment("W2AMSN", "T2", 4, "ablation_TableVI", f"TableVI_{tag}",
                              {"block_attention": blk, "global_attention": glb},
                              "Table VI: attention position (block / network), T2 x4"))
    for t in (5, 10, 15, 20):
        out.append(Experiment("W2AMSN", "T2", 2, "ablation_depth", f"depth_t{t}",
                              {"num_block": t}, "Fig. 5(c): depth t, T2 x2"))
    return out


def experiments() -> list[Experiment]:
    """The main matrix (Table III: 4 networks x 3 modalities x 3 scales) and the ablations."""
    main = [Experiment(arch, mod, s, arch.replace("-", "_"))
            for arch in ARCHS for mod in MODALITIES for s in SCALES]
    return main + _ablations()


def dataset_dir(modality: str) -> str:
    """Where ``scripts/make_ixi_lmdb.py --modality M --out ...`` is expected to write."""
    return f"datasets/IXI_{modality}"


def _lmdb(modality: str, split: str, scale: int | None) -> str:
    name = (f"IXI_{modality}_{split}_HR.lmdb" if scale is None
            else f"IXI_{modality}_{split}_LR_bicubic_X{scale}.lmdb")
    return f"{dataset_dir(modality)}/{name}"


def _dataset(modality: str, split: str, scale: int, phase: str) -> dict[str, Any]:
    d: dict[str, Any] = {"name": f"IXI_{modality}_{split}", "type": "IXIPairedDataset",
                         "dataroot_gt": _lmdb(modality, split, None),
                         "dataroot_lq": _lmdb(modality, split, scale),
                         "io_backend": {"type": "lmdb"}}
    if phase == "train":
        d.update({"gt_size": LR_PATCH * scale, "use_hflip": True, "use_rot": True,
                  "num_worker_per_gpu": 4, "batch_size_per_gpu": BATCH,
                  "dataset_enlarge_ratio": 1, "prefetch_mode": None})
    return d


def _metrics(scale: int) -> dict[str, Any]:
    """Foreground PSNR first: it selects ``net_g_best.pth``; whole-slice values beside it."""
    return {"psnr_fg": {"type": "calculate_psnr_fg", "crop_border": scale, "better": "higher"},
            "ssim_fg": {"type": "calculate_ssim_fg", "crop_border": scale, "better": "higher"},
            "psnr": {"type": "calculate_psnr_mr", "crop_border": scale, "better": "higher"},
            "ssim": {"type": "calculate_ssim_mr", "crop_border": scale, "better": "higher"}}


def train_options(exp: Experiment) -> dict[str, Any]:
    """BasicSR training options for ``exp`` with the paper's schedule."""
    milestones = list(range(100_000, TOTAL_ITER, 100_000))
    return {
        "name": exp.name,
        "model_type": "MRSRModel",
        "scale": exp.scale,
        "num_gpu": "auto",
        "manual_seed": 0,
        "datasets": {"train": _dataset(exp.modality, "train", exp.scale, "train"),
                     "val": _dataset(exp.modality, "val", exp.scale, "val")},
        "network_g": exp.network(),
        "path": {"pretrain_network_g": None, "strict_load_g": True, "resume_state": None},
        "train": {"ema_decay": 0,
                  "optim_g": {"type": "Adam", "lr": 1.0e-4, "weight_decay": 0,
                              "betas": [0.9, 0.999], "eps": 1.0e-8},
                  "scheduler": {"type": "MultiStepLR", "milestones": milestones, "gamma": 0.5},
                  "total_iter": TOTAL_ITER, "warmup_iter": -1,
                  "pixel_opt": {"type": "L1Loss", "loss_weight": 1.0, "reduction": "mean"}},
        "val": {"val_freq": 5000, "save_img": False, "self_ensemble": False,
                "metrics": _metrics(exp.scale)},
        "logger": {"print_freq": 100, "save_checkpoint_freq": 5000, "use_tb_logger": True,
                   "wandb": {"project": None, "resume_id": None}},
        "dist_params": {"backend": "nccl", "port": 29500},
    }


def eval_options(exp: Experiment, self_ensemble: bool) -> dict[str, Any]:
    """BasicSR test options: the IXI test split, the trained ``net_g_latest.pth``."""
    plus = "plus_" if self_ensemble else ""
    return {
        "name": f"test_{plus}{exp.name}",
        "model_type": "MRSRModel",
        "scale": exp.scale,
        "num_gpu": "auto",
        "manual_seed": 0,
        "datasets": {"test_1": _dataset(exp.modality, "test", exp.scale, "test")},
        "network_g": exp.network(),
        "path": {"pretrain_network_g": f"experiments/{exp.name}/models/net_g_latest.pth",
                 "strict_load_g": True, "param_key_g": "params"},
        "val": {"save_img": False, "suffix": None, "self_ensemble": self_ensemble,
                "results_table": True,
                "method_name": exp.arch + ("+" if self_ensemble else ""),
                "metrics": _metrics(exp.scale)},
    }
