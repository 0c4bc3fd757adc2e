"""The paper's experiments as one table, rendered into BasicSR options dicts.

Every YAML under ``options/`` is generated from this module by ``w2amsn make-options``
(``scripts/make_options.py``; ``tests/test_options.py`` checks the committed files equal the
generated ones). Layout of each file follows BasicSR: general -> datasets -> network_g -> path ->
train -> val -> logger -> dist_params.

Schedule (paper section IV-B; docs/reproducing.md): 500 volumes x 96 slices = 48,000 training
slices per epoch, batch 96 of 32x32 LR patches -> 500 iterations per epoch; 1000 epochs =
500k iterations; Adam(0.9, 0.999, eps 1e-8), lr 1e-4 halved every 200 epochs (100k
iterations); L1 loss.
"""
from __future__ import annotations

import copy
from pathlib import Path
from dataclasses import dataclass, field
from typing import Any

import yaml

from .archs.presets import ABLATIONS, PRESETS, experiment_tag, preset, trainable
from .data.prepared import PreparedDataset
from .protocol import IXI_DATASET, PAPER, database_path

__all__ = ["Experiment", "ARCHS", "MODALITIES", "SCALES", "experiments", "train_options",
           "eval_options", "prepared_options", "METRICS_FIRST", "metrics_options", "best_metric",
           "paper_train_section",
           "dataset_dir", "DEMO_CROP", "DEMO_DATA_DIR", "DEMO_TESTSET_DIR", "DEMO_VALSET_DIR",
           "DEMO_PLUS_SLICE_STEP", "demo_test_slice_mm",
           "DEMO_AUGMENT", "DEMO_BASELINES", "DEMO_BASELINE_MINUTES", "demo_uses_planes",
           "demo_option_files", "demo_network", "demo_baseline_options",
           "demo_train_options", "demo_eval_options", "OPTIONS_HEADER", "options_text",
           "demo_option_texts", "option_files", "write_option_files"]

#: every registered network preset (archs/*_arch.py): Table III's methods and W²AMSN-S
ARCHS = tuple(PRESETS)
MODALITIES = PAPER.modalities
SCALES = PAPER.scales

BATCH = 96
LR_PATCH = 32
#: one patch per training slice and epoch: 500 volumes x 96 slices / batch 96 = 500
ITERS_PER_EPOCH = PAPER.split.n_train * PAPER.slices_per_volume // BATCH


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
    #: iterations per "epoch" (ours: one patch per training slice; 1000 is EDSR/RCAN's) and the
    #: total (None: the paper's 1000 epochs); docs/reproducing.md, "The data protocol"
    iters_per_epoch: int = ITERS_PER_EPOCH
    total_iter: int | None = None

    @property
    def iterations(self) -> int:
        return self.total_iter or 1000 * self.iters_per_epoch

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
        size = experiment_tag(self.network())
        if not trainable(self.arch):  # no training run to describe
            return f"{self.stem}{'_' + size if size else ''}_IXI"
        n = self.iterations
        length = f"{n // 1000}k" if n % 1000 == 0 else f"{n}it"
        return f"{self.stem}{'_' + size if size else ''}_{IXI_DATASET}_{length}_B{BATCH}"


def _ablations() -> list[Experiment]:
    """Every entry of :data:`w2amsn_plugin.archs.presets.ABLATIONS` (section IV-D), on the data
    the paper ran it on. The full model of each table is the main run of the same modality and
    scale (e.g. Table I's +MS/CW is ``train/W2AMSN/train_W2AMSN_PD_x2.yml``)."""
    return [Experiment("W2AMSN", ab.modality, ab.scale, f"ablation_{name.split('-')[0]}",
                       name.replace("-", "_"), dict(ab.overrides), f"{ab.source} ablation {name}")
            for name, ab in ABLATIONS.items()]


def _readings() -> list[Experiment]:
    """Other readings of the paper (docs/reproducing.md, "The data protocol"): Table II's sizes
    with the upsampler on 8a features (T1 x2: Table II's PSNR/SSIM column equals Table III's T1 x2
    row for the six methods both tables hold, and the text says "on T1 dataset for SR x2", although
    the caption says T2); EDSR/RCAN's 1000-iteration "epoch"
    (the schedule doubled: 1M iterations, lr halved every 200k); Table VI's "after 400
    iterations" taken literally (its four variants, T2 x4)."""
    tab2 = [Experiment(arch, "T1", 2, "reading_tab2", "up256", {"upsample_feat": 256},
                       "Table II reading: F_R upsamples on 8a = 256 features (docs/model-size.md)")
            for arch in ("W2AMSN", "W2AMSN-S")]
    epoch = [Experiment("W2AMSN", "T1", 2, "reading_epoch", "epoch1000it", {},
                        "reading: an epoch of 1000 iterations (EDSR/RCAN), 1M iterations",
                        iters_per_epoch=1000)]
    variants = {"tab6_a": ABLATIONS["tab6-a"].overrides, "tab6_b": ABLATIONS["tab6-b"].overrides,
                "tab6_c": ABLATIONS["tab6-c"].overrides, "tab6_d": {}}  # D = the full model
    tab6 = [Experiment("W2AMSN", "T2", 4, "reading_tab6_400it", f"{label}_400it", dict(overrides),
                       "Table VI reading: 'after 400 iterations' taken literally", total_iter=400)
            for label, overrides in variants.items()]
    return tab2 + epoch + tab6


def experiments() -> list[Experiment]:
    """The main matrix (Table III: 4 networks x 3 modalities x 3 scales), the ablations and the
    other readings."""
    main = [Experiment(arch, mod, s, arch.replace("-", "_"))
            for arch in ARCHS for mod in MODALITIES for s in SCALES]
    return main + _ablations() + _readings()


def dataset_dir(modality: str) -> str:
    """Where ``scripts/make_ixi_lmdb.py --modality M --out ...`` is expected to write."""
    return f"datasets/{IXI_DATASET}_{modality}"


def _lmdb(modality: str, split: str, scale: int | None) -> str:
    return database_path(dataset_dir(modality), modality, split, scale)


def _dataset(modality: str, split: str, scale: int, phase: str) -> dict[str, Any]:
    d: dict[str, Any] = {"name": f"{IXI_DATASET}_{modality}_{split}", "type": "IXIPairedDataset",
                         "dataroot_gt": _lmdb(modality, split, None),
                         "dataroot_lq": _lmdb(modality, split, scale),
                         "io_backend": {"type": "lmdb"},
                         "plane": PAPER.plane}  # checked against the databases' manifest
    if phase == "train":
        d.update({"gt_size": LR_PATCH * scale, "use_hflip": True, "use_rot": True, "on_device": "auto",
                  "num_worker_per_gpu": 4, "batch_size_per_gpu": BATCH,
                  "dataset_enlarge_ratio": 1, "prefetch_mode": None})
    return d


#: the metric region the paper's options put first and select ``net_g_best.pth`` with: the paper
#: names no mask, so its Table III is most likely whole-slice (docs/reproducing.md, "Which
#: reading"); ``"foreground"`` puts the head-only metrics first instead
METRICS_FIRST = "whole"


def metrics_options(scale: int, first: str = METRICS_FIRST) -> dict[str, Any]:
    """PSNR/SSIM of the whole slice and of the foreground, ``first``'s pair first; its PSNR is the
    ``best_metric`` (:func:`best_metric`) that selects ``net_g_best.pth``."""
    whole = {"psnr": {"type": "calculate_psnr_mr", "crop_border": scale, "better": "higher"},
             "ssim": {"type": "calculate_ssim_mr", "crop_border": scale, "better": "higher"}}
    fg = {"psnr_fg": {"type": "calculate_psnr_fg", "crop_border": scale, "better": "higher"},
          "ssim_fg": {"type": "calculate_ssim_fg", "crop_border": scale, "better": "higher"}}
    if first not in ("whole", "foreground"):
        raise ValueError(f"metrics first: {first!r} is not 'whole' or 'foreground'")
    return {**whole, **fg} if first == "whole" else {**fg, **whole}


def best_metric(first: str = METRICS_FIRST) -> str:
    """The ``val: best_metric:`` entry of :func:`metrics_options` (its first PSNR)."""
    return "psnr" if first == "whole" else "psnr_fg"


def paper_train_section(iters_per_epoch: int = ITERS_PER_EPOCH, total_iter: int | None = None
                        ) -> dict[str, Any]:
    """The ``train:`` section of the paper's schedule (section IV-B): L1, Adam(0.9, 0.999, 1e-8),
    lr 1e-4 halved every 200 epochs, 1000 epochs (``total_iter`` overrides), no EMA; with the
    default 500 iterations per epoch: halved every 100k iterations, 500k iterations."""
    step, total = 200 * iters_per_epoch, total_iter or 1000 * iters_per_epoch
    return {"ema_decay": 0,
            "optim_g": {"type": "Adam", "lr": 1.0e-4, "weight_decay": 0,
                        "betas": [0.9, 0.999], "eps": 1.0e-8},
            "scheduler": {"type": "MultiStepLR",
                          "milestones": list(range(step, total, step)), "gamma": 0.5},
            "total_iter": total, "warmup_iter": -1,
            "pixel_opt": {"type": "L1Loss", "loss_weight": 1.0, "reduction": "mean"}}


def train_options(exp: Experiment) -> dict[str, Any]:
    """BasicSR training options for ``exp`` with the paper's schedule."""
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
        "train": paper_train_section(exp.iters_per_epoch, exp.total_iter),
        "val": {"val_freq": 5000, "save_img": False, "self_ensemble": False,
                "best_metric": best_metric(), "metrics": metrics_options(exp.scale)},
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
        # a method without weights (NLM) loads none
        "path": {"pretrain_network_g": f"experiments/{exp.name}/models/net_g_latest.pth"
                 if trainable(exp.arch) else None, "strict_load_g": True, "param_key_g": "params"},
        "val": {"save_img": False, "suffix": None, "self_ensemble": self_ensemble,
                "results_table": True,
                "method_name": exp.arch + ("+" if self_ensemble else ""),
                "metrics": metrics_options(exp.scale),
                # NLM: a method without weights, nothing to load
                **({} if trainable(exp.arch) else {"allow_untrained": True})},
    }


# --- a user's own prepared dataset (w2amsn make-options --data; data/prepared.py) ---
def _prepared_dataset(data: PreparedDataset, split: str, scale: int, batch: int | None
                      ) -> dict[str, Any]:
    """A :class:`~w2amsn_plugin.data.mr_slice_dataset.MRSliceDataset` section (``batch``: train)."""
    d: dict[str, Any] = {"name": f"{data.dataset}_{data.modality}_{split}", "type": "MRSliceDataset",
                         "dataroot_gt": data.database(split), "dataroot_lq": data.database(split, scale),
                         "io_backend": {"type": "lmdb"}, "plane": data.plane}
    if batch is not None:
        side = min(LR_PATCH * scale, min(data.slice_hw) // scale * scale)  # a patch fits a slice
        d.update({"gt_size": side, "use_hflip": True, "use_rot": True, "on_device": "auto",
                  "num_worker_per_gpu": 4, "batch_size_per_gpu": batch,
                  "dataset_enlarge_ratio": 1, "prefetch_mode": None})
    return d


def prepared_options(data: PreparedDataset, arch: str, scale: int, iters: int | None = None,
                     batch: int = BATCH) -> tuple[dict[str, Any], dict[str, Any]]:
    """Training and test options of network preset ``arch`` at ``scale`` on a prepared dataset:
    the paper's schedule in epochs of its training slices (``iters`` overrides the total), the
    validation and test splits of the same folder. Raises ValueError for a scale it lacks."""
    if scale not in data.scales:
        raise ValueError(f"{data.manifest_path}: holds scales {list(data.scales)}, not {scale}")
    per_epoch = max(1, -(-data.train_slices // batch))
    exp = Experiment(arch, data.modality, scale, "prepared", iters_per_epoch=per_epoch,
                     total_iter=iters)
    total = exp.iterations
    length = f"{total // 1000}k" if total % 1000 == 0 else f"{total}it"
    name = f"{exp.file_arch}_{data.dataset}_{data.modality}_x{scale}_{length}_B{batch}"
    train = train_options(exp) | {"name": name}
    train["datasets"] = {"train": _prepared_dataset(data, "train", scale, batch),
                         "val": _prepared_dataset(data, "val", scale, None)}
    train["val"]["val_freq"] = min(5000, total)
    train["logger"].update(print_freq=min(100, total), save_checkpoint_freq=min(5000, total))
    test = eval_options(exp, False) | {"name": f"test_{name}"}
    test["datasets"] = {"test_1": _prepared_dataset(data, "test", scale, None)}
    if test["path"]["pretrain_network_g"]:
        test["path"]["pretrain_network_g"] = f"experiments/{name}/models/net_g_latest.pth"
    return train, test


# --- the README's demo (w2amsn demo, w2amsn_plugin/commands/demo.py): CPU-sized, measured on a
# 2-core AVX2 machine ---
#: crop (x, y, z) of the demo volumes: 1 mm MNI-space brains fit 176 x 208; z slices per volume
DEMO_CROP = (176, 208, 96)
#: where the demo writes its databases, relative to its working directory
DEMO_DATA_DIR = "datasets/demo"
#: the demo's test set (real scans it never trains or validates on, data/demo_testset.py)
DEMO_TESTSET_DIR = "datasets/demo/testset"
#: the demo's validation set (the held-out volume that selects the checkpoint)
DEMO_VALSET_DIR = "datasets/demo/valset"
#: the x8 self-ensemble test scores every n-th of those (8 per row: it costs 8 forward passes)
DEMO_PLUS_SLICE_STEP = 2
#: the on-the-fly MR augmentation of the demo's training patches (data/augment.py: MRAugment):
#: per patch, with these probabilities, anatomy at 1-3 mm/pixel, an EPI-like readout blur and
#: distortion, Gibbs ringing, N/2 ghosts, a gamma, a T2-like inversion, a bias field, an intensity
#: window and Rician noise at white-matter SNR 12-60 (the artefacts chosen on the validation
#: volume: docs/demo.md)
DEMO_AUGMENT: dict[str, Any] = {
    "p_zoom": 0.5, "max_zoom": 3.0, "p_gamma": 0.5, "gamma": [0.6, 1.7], "p_invert": 0.3,
    "p_bias": 0.5, "bias": 0.3, "p_window": 0.3, "window_lo": 0.05, "window_hi": 0.75,
    "p_noise": 0.7, "snr": [12.0, 60.0], "signal_level": 0.75, "p_epi": 0.3, "p_gibbs": 0.3,
    "p_ghost": 0.2}
_DEMO = {
    # chosen by measurement (docs/demo.md): K3K5 with weighted fusion and NCAB as the paper,
    # t=2 and widening 2 (Table IV's 32-64-32) for a CPU; lr 4e-3 with cosine decay over 1000
    # iterations (the paper's 1e-4 is for 500k iterations); augmented patches of all three
    # planes of the training volume
    "full": {"network": {"num_feat": 32, "num_block": 2, "widen": 2}, "total_iter": 1000,
             "lr": 4e-3, "batch": 16, "lr_patch": 32, "augment": DEMO_AUGMENT, "planes": True,
             "test_slice_mm": 4},  # test slices 4 mm apart: 24 per 96 mm test row
    "quick": {"network": {"num_feat": 8, "num_block": 1, "widen": 2}, "total_iter": 20,
              "lr": 1e-3, "batch": 4, "lr_patch": 24, "augment": DEMO_AUGMENT, "planes": True,
              "test_slice_mm": 16},
}
#: the 1-channel baselines of ``w2amsn demo --baselines``: the paper's presets cut to the demo
#: W²AMSN's ~0.5M parameters (the paper's EDSR/RCAN rows are 40.7M/15.4M)
DEMO_BASELINES = {
    "EDSR": {"num_block": 4},
    "RCAN": {"num_feat": 48, "num_group": 2, "num_block": 4, "squeeze_factor": 8},
}
#: training minutes per network of ``w2amsn demo --baselines`` (the same wall budget for each)
DEMO_BASELINE_MINUTES = 5.0


def demo_uses_planes(quick: bool) -> bool:
    """Whether the demo trains on slices of all three planes of (isotropic) training volumes."""
    return bool(_DEMO["quick" if quick else "full"]["planes"])


def demo_test_slice_mm(quick: bool) -> int:
    """Spacing in mm of the demo's test slices (every n-th slice of each test row)."""
    return int(_DEMO["quick" if quick else "full"]["test_slice_mm"])


def _demo_dataset(split: str, phase: str, recipe: dict[str, Any], plus: bool = False) -> dict[str, Any]:
    root = {"train": DEMO_DATA_DIR, "val": DEMO_VALSET_DIR, "test": DEMO_TESTSET_DIR}[phase]
    d: dict[str, Any] = {"name": f"demo_T1_{split}", "type": "IXIPairedDataset",
                         "dataroot_gt": database_path(root, "T1", split),
                         "dataroot_lq": database_path(root, "T1", split, 2),
                         "io_backend": {"type": "lmdb"}}
    if phase == "train":
        d.update({"gt_size": recipe["lr_patch"] * 2, "use_hflip": True, "use_rot": True,
                  "num_worker_per_gpu": 0, "batch_size_per_gpu": recipe["batch"],
                  "dataset_enlarge_ratio": 1, "prefetch_mode": None})
        if recipe["augment"] is not None:
            d["mr_augment"] = dict(recipe["augment"])
        if recipe["planes"]:  # resliced copies: slices of every anatomical plane (read by infer)
            from .data.planes import ANATOMICAL_PLANES

            d["planes"] = list(ANATOMICAL_PLANES)
    elif plus:
        d["slice_step"] = DEMO_PLUS_SLICE_STEP
    return d


def demo_option_files(quick: bool) -> dict[str, str]:
    """Paths, relative to ``options/``, of the demo's train, test and test-with-ensemble files."""
    tag = "demo_quick" if quick else "demo"
    return {"train": f"demo/train_W2AMSN_{tag}_x2.yml", "test": f"demo/test_W2AMSN_{tag}_x2.yml",
            "test_plus": f"demo/test_W2AMSN_plus_{tag}_x2.yml"}


def demo_network(quick: bool) -> dict[str, Any]:
    net = preset("W2AMSN", 2)
    net.update(_DEMO["quick" if quick else "full"]["network"])
    return net


def demo_train_options(quick: bool) -> dict[str, Any]:
    """Training options of the demo: W²AMSN with reduced a/t on one CPU, cosine-decayed lr."""
    recipe = _DEMO["quick" if quick else "full"]
    tag = "demo_quick" if quick else "demo"
    net = demo_network(quick)
    total = recipe["total_iter"]
    return {
        "name": f"W2AMSN_{tag}_T1_x2_a{net['num_feat']}t{net['num_block']}_{total}it_B{recipe['batch']}",
        "model_type": "MRSRModel", "scale": 2, "num_gpu": "auto", "manual_seed": 0,
        "datasets": {"train": _demo_dataset("train", "train", recipe),
                     "val": _demo_dataset("val", "val", recipe)},
        "network_g": net,
        "path": {"pretrain_network_g": None, "strict_load_g": True, "resume_state": None},
        "train": {"ema_decay": 0,
                  "optim_g": {"type": "Adam", "lr": recipe["lr"], "weight_decay": 0,
                              "betas": [0.9, 0.999], "eps": 1.0e-8},
                  "scheduler": {"type": "CosineAnnealingRestartLR", "periods": [total],
                                "restart_weights": [1], "eta_min": recipe["lr"] * 0.01},
                  "total_iter": total, "warmup_iter": -1,
                  "pixel_opt": {"type": "L1Loss", "loss_weight": 1.0, "reduction": "mean"}},
        # the checkpoint the tests load is chosen on the validation volume alone
        "val": {"val_freq": max(1, total // 5), "save_img": False, "self_ensemble": False,
                "best_metric": best_metric("foreground"), "metrics": metrics_options(2, "foreground")},
        "logger": {"print_freq": max(1, total // 30), "save_checkpoint_freq": total,
                   "use_tb_logger": False, "wandb": {"project": None, "resume_id": None}},
        "dist_params": {"backend": "nccl", "port": 29500},
    }


def demo_eval_options(quick: bool, self_ensemble: bool) -> dict[str, Any]:
    """Test options of the demo: its test set (every DEMO_PLUS_SLICE_STEP-th slice with x8)."""
    recipe = _DEMO["quick" if quick else "full"]
    train = demo_train_options(quick)
    plus = "plus_" if self_ensemble else ""
    return {
        "name": f"test_{plus}{train['name']}",
        "model_type": "MRSRModel", "scale": 2, "num_gpu": "auto", "manual_seed": 0,
        "datasets": {"test_1": _demo_dataset("test", "test", recipe, self_ensemble)},
        "network_g": demo_network(quick),
        "path": {"pretrain_network_g": f"experiments/{train['name']}/models/net_g_best.pth",
                 "strict_load_g": True, "param_key_g": "params"},
        "val": {"save_img": False, "suffix": None, "self_ensemble": self_ensemble,
                "results_table": True, "method_name": "W2AMSN+" if self_ensemble else "W2AMSN",
                "metrics": metrics_options(2, "foreground")},
    }


def demo_baseline_options(quick: bool) -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    """``w2amsn demo --baselines``: method label -> (training, test options) for W²AMSN and the
    :data:`DEMO_BASELINES`, all on the demo's data, augmentation and schedule (the benchmark
    scales the schedule to each network's budget)."""
    out = {"W2AMSN": (demo_train_options(quick), demo_eval_options(quick, False))}
    for label, overrides in DEMO_BASELINES.items():
        net = {**preset(label, 2), **overrides}
        train, test = demo_train_options(quick), demo_eval_options(quick, False)
        tr = train["train"]
        train["name"] = (f"{label}_demo{'_quick' if quick else ''}_T1_x2_{tr['total_iter']}it_"
                         f"B{train['datasets']['train']['batch_size_per_gpu']}")
        test["name"] = f"test_{train['name']}"
        train["network_g"], test["network_g"] = net, dict(net)
        test["path"]["pretrain_network_g"] = f"experiments/{train['name']}/models/net_g_latest.pth"
        test["val"]["method_name"] = label
        out[label] = (train, test)
    return out


# --- the options files ------------------------------------------------------------------------
#: first line of every generated options file
OPTIONS_HEADER = ("# Generated by `w2amsn make-options` from w2amsn_plugin/experiments.py; "
                  "edit the table there, not this file.\n")
HEADLINE = Experiment("W2AMSN", "T1", 2, "W2AMSN")


def options_text(opt: dict[str, Any], note: str = "") -> str:
    """One options dict as the YAML text of a generated file (BasicSR's section order kept)."""
    text = yaml.safe_dump(opt, sort_keys=False, default_flow_style=None, width=100)
    return OPTIONS_HEADER + (f"# {note}\n" if note else "") + text


def demo_option_texts(quick: bool) -> dict[str, str]:
    """The demo's options files: relative path under ``options/`` -> YAML text."""
    note = "The README demo (bash scripts/demo.sh" + (" --quick)" if quick else ")")
    files = demo_option_files(quick)
    return {files["train"]: options_text(demo_train_options(quick), note),
            files["test"]: options_text(demo_eval_options(quick, False), note),
            files["test_plus"]: options_text(demo_eval_options(quick, True), note)}


def option_files() -> dict[str, str]:
    """Every generated options file: relative path under ``options/`` -> YAML text."""
    files: dict[str, str] = {}
    for exp in experiments():
        learned = trainable(exp.arch)  # NLM: nothing to train, no self-ensemble row in Table III
        if learned:
            files[f"train/{exp.group}/train_{exp.stem}.yml"] = options_text(train_options(exp), exp.note)
        files[f"test/{exp.group}/test_{exp.stem}.yml"] = options_text(eval_options(exp, False), exp.note)
        if not exp.tag and learned:  # Table III's W²AMSN+ column and the baselines with self-ensemble
            files[f"test/{exp.group}/test_{exp.file_arch}_plus_{exp.modality}_x{exp.scale}.yml"] = \
                options_text(eval_options(exp, True), "x8 geometric self-ensemble")
    for quick in (False, True):
        files.update(demo_option_texts(quick))
    files["train_W2AMSN_T1_x2.yml"] = options_text(
        train_options(HEADLINE),
        "The headline experiment (same as train/W2AMSN/train_W2AMSN_T1_x2.yml).")
    return files


def write_option_files(files: dict[str, str], out: str | Path, prune: bool = False) -> list[Path]:
    """Write ``files`` under ``out`` (each atomically); with ``prune``, delete the ``*.yml`` under
    ``out`` that are not among them. Returns the paths written."""
    from .results.files import write_text

    out = Path(out)
    if prune and out.is_dir():
        for path in sorted(out.rglob("*.yml")):
            if str(path.relative_to(out)) not in files:
                path.unlink()
    written = []
    for rel, text in files.items():
        write_text(out / rel, text)
        written.append(out / rel)
    return written
