"""MRSRModel: BasicSR's SRModel for single-channel MR slices (paper section IV, Table III).

Differences from ``basicsr.models.sr_model.SRModel`` (tracked: BasicSR 1.4.2):

- ``test`` runs on the bare network (no DDP wrapper, see notes/basicsr.md), restores the train/eval
  mode it found, and with ``val.self_ensemble: true`` averages the x8 geometric self-ensemble
  (W²AMSN+ in Table III).
- ``nondist_validation`` (replaces sr_model.py:136-201) scores the float output clamped to
  [0, 1], not BasicSR's uint8 ``tensor2img`` image; aggregates per slice -> per volume -> per set
  (:mod:`.volume_scores`); scores MATLAB-bicubic on the same slices as a reference; saves 16-bit
  PNGs; writes per-slice/per-volume CSVs and a Table III Markdown. The logged/tensorboard
  value of each metric and BasicSR's best-metric tracking use the per-set value.
- ``_update_best_metric_result``: in training, also saves ``models/net_g_best.pth`` (atomically)
  when the foreground PSNR improves; after a resume it starts from the best value stored in it.
- A NaN or infinite training loss stops the run (``NonFiniteLoss``, one line naming the first such
  iteration) before anything is logged, validated or saved after it, so the newest checkpoint
  is still a finite one; the check costs no host sync per step (the iteration is kept on the
  device and read every ``print_freq``, before each save and validation). A checkpoint that cannot
  be written stops the run too (``SaveFailed``).

Options under ``val:`` besides BasicSR's (``val_freq``, ``save_img``, ``suffix``, ``pbar``,
``metrics``):

- ``self_ensemble`` (bool, False): x8 self-ensemble in test and validation.
- ``bf16`` (true | false | auto, False): bf16 autocast in ``test``; ``auto`` = where the device
  computes bf16 natively (:func:`w2amsn_plugin.device_caps.resolve_bf16`). Metrics still see a
  float32 output, but bf16 costs PSNR: keep it off for numbers you report.
- ``channels_last`` (bool, True): the network (and EMA copy) and the LQ batch in channels_last
  memory format, in test and in training.
- ``uint8_metrics`` (bool, False): round SR, bicubic and GT to uint8 before every metric, as
  BasicSR does (reproduces BasicSR's numbers). Metrics not in
  :data:`w2amsn_plugin.metrics.FLOAT_METRICS` (BasicSR's own, which assume [0, 255]) always get
  uint8 images.
- ``bicubic_reference`` (bool, True): also score MATLAB-bicubic upsampling of the LQ slices.
- ``results_table`` (bool, True in test, False in training): write ``<dataset>_slices.csv``,
  ``<dataset>_volumes.csv`` and ``<dataset>_table.md`` (see :mod:`w2amsn_plugin.results.tables`) under
  ``path.results_root`` (test) or ``path.visualization`` (training; names end in ``_<iter>``).
- ``method_name`` (str): column name in the tables; default ``network_g.type`` plus ``+`` with
  self-ensemble (``W2AMSN+``).
- ``allow_untrained`` (bool, False): lets ``basicsr test`` run with ``pretrain_network_g: ~``
  (random weights); without it such a test is refused before it starts.
- ``best_metric`` (str): the ``val.metrics`` entry that selects ``net_g_best.pth``; default the
  first entry of type ``calculate_psnr_fg``; none -> no best checkpoint. It follows the first
  validation dataset.

Under ``train:`` besides BasicSR's: ``bf16`` (true | false | auto, False): the training forward
pass and losses under bf16 autocast (backward outside it); measured 1.94x faster per step where
bf16 is native (an AVX512-BF16 CPU), about 10x slower where it is emulated (AVX2), so ``auto``.
Losses stay on the device between BasicSR's log lines (no ``.item()`` per iteration).
``compile`` (false | true | a ``torch.compile`` mode such as ``reduce-overhead`` (CUDA graphs) or
``max-autotune-no-cudagraphs``, False): the training forward and backward through
``torch.compile`` (the network's weights, checkpoints and EMA stay the uncompiled module's).
On CUDA, Adam runs ``fused`` (one kernel for every parameter) unless ``optim_g: fused: false``.
``scheduler: type: TimedCosineLR`` (with ``seconds`` and ``eta_min``) trains for a wall time:
cosine annealing over the seconds or ``total_iter``, whichever runs out first, and the loop ends
when the seconds are spent (:mod:`w2amsn_plugin.time_budget`); not with distributed training
(each rank's clock would stop it at a different iteration).
Training items of an ``on_device`` dataset (``bank_index``) are cut on the device by its slice
bank (:mod:`w2amsn_plugin.data.slice_bank`).

Dataset items may carry ``key``, ``subject``, ``modality`` and ``slice_index``
(IXIPairedDataset does); without them the key is the LQ file name and subject, modality and
slice index are parsed from ``<subject>_<modality>_s<slice>`` keys, else the key minus its last
``_`` part is the subject.
"""
from __future__ import annotations

import os
import re
from collections import OrderedDict
from os import path as osp
from typing import Any

import numpy as np
import torch
from basicsr.metrics import calculate_metric
from basicsr.models.sr_model import SRModel
from basicsr.utils import get_root_logger, imwrite, tensor2img
from basicsr.utils.matlab_functions import imresize
from basicsr.utils.registry import MODEL_REGISTRY
from torch import Tensor
from tqdm import tqdm

from .. import device_caps
from ..time_budget import NOT_DISTRIBUTED, TimedCosineLR, is_timed
from ..checkpoints import save_or_stop
from ..run_guard import NonFiniteLoss
from ..metrics import FLOAT_METRICS
from ..archs.self_ensemble import self_ensemble
from ..data.slice_bank import get_bank
from ..results.files import write_csv, write_text
from ..results.tables import BICUBIC, slice_rows, table_iii_markdown, volume_rows
from ..results.volume_scores import SliceScores, aggregate_volumes, set_means

__all__ = ["MRSRModel", "VAL_OPTIONS", "COMPILE_MODES"]

_KEY_RE = re.compile(r"^(?P<subject>.+)_(?P<modality>[A-Za-z0-9]+)_s(?P<slice>\d+)$")
_BOOL_OPTIONS = {"self_ensemble": False, "uint8_metrics": False, "bicubic_reference": True,
                 "channels_last": True}
_BEST_FILE = "net_g_best.pth"
#: ``train: compile`` values besides true/false (``torch.compile`` modes)
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
#: every key MRSRModel reads under ``val:`` (BasicSR 1.4.2's and ours), for the options check
VAL_OPTIONS = frozenset({"val_freq", "save_img", "suffix", "pbar", "metrics", "bf16", "results_table",
                         "method_name", "best_metric", "allow_untrained", *_BOOL_OPTIONS})


def _item(batch: dict[str, Any], name: str, b: int) -> Any:
    """Field ``name`` of the ``b``-th item of a collated batch, or None."""
    value = batch.get(name)
    if value is None:
        return None
    if isinstance(value, Tensor):
        return value[b].item()
    return value[b] if isinstance(value, (list, tuple)) else value


def _slice_info(batch: dict[str, Any], b: int, fallback_index: int) -> tuple[str, str, str, int]:
    """(key, subject, modality, slice_index) of item ``b``, with the fallbacks of the docstring."""
    key = _item(batch, "key", b) or osp.splitext(osp.basename(_item(batch, "lq_path", b) or ""))[0]
    key = key or f"slice{fallback_index:05d}"
    match = _KEY_RE.match(key)
    subject = _item(batch, "subject", b) or (match["subject"] if match else key.rsplit("_", 1)[0])
    modality = _item(batch, "modality", b) or (match["modality"] if match else "-")
    index = _item(batch, "slice_index", b)
    index = int(index) if index is not None else (int(match["slice"]) if match else fallback_index)
    return key, subject, modality, index


def _best_metric(val: dict) -> str | None:
    """The ``val.metrics`` entry that selects net_g_best.pth (module doc: ``best_metric``)."""
    metrics = val.get("metrics") or {}
    fg_psnr = [name for name, m in metrics.items()
               if isinstance(m, dict) and m.get("type") == "calculate_psnr_fg"]
    return val.get("best_metric", fg_psnr[0] if fg_psnr else None)


@MODEL_REGISTRY.register()
class MRSRModel(SRModel):
    """SRModel for 1-channel MR: float metrics, x8 self-ensemble, per-volume tables (module doc)."""

    @staticmethod
    def check_options(opt: dict) -> None:
        """``ValueError`` (one line) for a ``val:`` or ``train:`` option of this model with a bad
        value; :mod:`w2amsn_plugin.option_check` calls it before BasicSR starts, the constructor
        again."""
        val = opt.get("val") or {}
        for name, default in _BOOL_OPTIONS.items():
            if not isinstance(val.get(name, default), bool):
                raise ValueError(f"options 'val: {name}' must be true or false, got {val[name]!r}")
        if not (isinstance(val.get("bf16", False), bool) or val["bf16"] == "auto"):
            raise ValueError(f"options 'val: bf16' must be true, false or auto, got {val['bf16']!r}")
        metrics = val.get("metrics") or {}
        best = _best_metric(val)
        if best is not None and best not in metrics:
            raise ValueError(f"options 'val: best_metric: {best}' is not an entry of "
                             f"val.metrics ({', '.join(metrics) or 'none'})")
        train_bf16 = (opt.get("train") or {}).get("bf16", False)
        if not (isinstance(train_bf16, bool) or train_bf16 == "auto"):
            raise ValueError(f"options 'train: bf16' must be true, false or auto, got {train_bf16!r}")
        train_compile = (opt.get("train") or {}).get("compile", False)
        if not (isinstance(train_compile, bool) or train_compile in COMPILE_MODES):
            raise ValueError(f"options 'train: compile' must be true, false or one of "
                             f"{', '.join(COMPILE_MODES)}, got {train_compile!r}")

    def __init__(self, opt: dict) -> None:
        self.check_options(opt)
        val = opt.get("val") or {}
        self.best_metric = _best_metric(val)
        train_bf16 = (opt.get("train") or {}).get("bf16", False)
        train_compile = (opt.get("train") or {}).get("compile", False)
        self._best_dataset: str | None = None
        super().__init__(opt)
        bf16 = val.get("bf16", False)
        self._bf16 = device_caps.resolve_bf16_option(bf16, self.device)
        self._train_bf16 = self.is_train and device_caps.resolve_bf16_option(train_bf16, self.device)
        self._channels_last = val.get("channels_last", True)
        if self._channels_last:  # NCHW is 1.5-6x slower per layer on AMX/AVX2 CPUs
            for net in (self.net_g, getattr(self, "net_g_ema", None)):
                if net is not None:
                    net.to(memory_format=torch.channels_last)
        self._train_forward = self.net_g
        self._nonfinite_iter = torch.zeros((), dtype=torch.long, device=self.device)
        if self.is_train and train_compile is not False:
            mode = None if train_compile is True else train_compile
            self._train_forward = torch.compile(self.net_g, mode=mode)

    # -- training --------------------------------------------------------------------------
    def feed_data(self, data: dict[str, Any]) -> None:
        """SRModel's ``feed_data``, or, for items of an ``on_device`` dataset (``bank_index``), the
        batch cut on the device by its :class:`~w2amsn_plugin.data.slice_bank.SliceBank`."""
        if "bank_index" in data:
            bank = get_bank(data["bank"][0])
            self.lq, self.gt = bank.sample(data["bank_index"], device=self.device)
            return
        super().feed_data(data)

    def setup_optimizers(self) -> None:
        """SRModel's, with Adam's fused implementation by default on CUDA (module doc)."""
        optim = self.opt["train"]["optim_g"]
        if self.device.type == "cuda" and optim.get("type") == "Adam" and "fused" not in optim:
            optim["fused"] = True
        super().setup_optimizers()

    def setup_schedulers(self) -> None:
        """BaseModel's schedulers, and :class:`~w2amsn_plugin.time_budget.TimedCosineLR` (seconds)."""
        if not is_timed(self.opt):
            super().setup_schedulers()
            return
        if self.opt.get("dist"):
            raise ValueError(NOT_DISTRIBUTED)
        train = self.opt["train"]
        sched = {k: v for k, v in train["scheduler"].items() if k != "type"}
        for optimizer in self.optimizers:
            self.schedulers.append(TimedCosineLR(optimizer, total_iter=int(train["total_iter"]), **sched))

    def optimize_parameters(self, current_iter: int) -> None:
        """SRModel's step (BasicSR 1.4.2 sr_model.py:91-121) with channels_last input, the
        forward pass and losses under bf16 autocast when ``train: bf16`` is on (true, or
        ``auto`` = where the device computes bf16 natively), and no host sync: the losses stay
        tensors until BasicSR logs them (:meth:`get_current_log`, every ``print_freq``)."""
        self.optimizer_g.zero_grad(set_to_none=True)
        lq = self.lq.contiguous(memory_format=torch.channels_last) if self._channels_last else self.lq
        loss_dict: OrderedDict[str, Tensor] = OrderedDict()
        with torch.autocast(self.device.type, torch.bfloat16, enabled=self._train_bf16):
            self.output = self._train_forward(lq)
            if self.cri_pix:
                loss_dict["l_pix"] = self.cri_pix(self.output, self.gt)
            if self.cri_perceptual:
                l_percep, l_style = self.cri_perceptual(self.output, self.gt)
                if l_percep is not None:
                    loss_dict["l_percep"] = l_percep
                if l_style is not None:
                    loss_dict["l_style"] = l_style
        loss = sum(loss_dict.values())
        loss.backward()
        self.optimizer_g.step()
        self.log_dict = OrderedDict((k, v.detach()) for k, v in loss_dict.items())
        # the first iteration whose loss is not finite, kept on the device (no host sync per step)
        bad = ~torch.isfinite(loss.detach()) & (self._nonfinite_iter == 0)
        self._nonfinite_iter = torch.where(bad, current_iter, self._nonfinite_iter)
        if self.ema_decay > 0:
            self.model_ema(decay=self.ema_decay)

    def get_current_log(self) -> dict[str, float]:
        """The last step's losses as floats, averaged over DDP ranks (BasicSR's
        ``reduce_loss_dict``): the training loop's only host sync, every ``print_freq``."""
        self._stop_if_not_finite()
        return self.reduce_loss_dict(self.log_dict)

    def _stop_if_not_finite(self) -> None:
        """:class:`~w2amsn_plugin.run_guard.NonFiniteLoss` naming the first iteration whose loss
        was NaN or infinite (or the weights, if they are): called before anything is logged,
        validated or saved, so every checkpoint on disk is from before it."""
        if not self.is_train:
            return
        first = int(self._nonfinite_iter)
        if not first and bool(torch.stack([torch.isfinite(p).all() for p in self.net_g.parameters()]).all()):
            return
        states = self.opt["path"].get("training_states", "training_states")
        found = [int(n.split(".")[0]) for n in os.listdir(states) if re.fullmatch(r"\d+\.state", n)] \
            if osp.isdir(states) else []
        kept = (f"the newest checkpoint, {osp.join(states, f'{max(found)}.state')}, is from before it"
                if found else "no checkpoint was saved")
        when = f"at iteration {first}" if first else "(in the network's weights)"
        raise NonFiniteLoss(f"the training loss became NaN or infinite {when}: training stopped "
                            f"and nothing was saved after it; {kept}. Lower train:optim_g:lr, "
                            "then resume with --auto_resume")

    def save(self, epoch: int, current_iter: int) -> None:
        """SRModel's save, refused (the run stops) once the loss or weights are not finite."""
        self._stop_if_not_finite()
        super().save(epoch, current_iter)

    def validation(self, dataloader, current_iter, tb_logger, save_img=False) -> None:
        """BaseModel's validation, refused (the run stops) once the loss or weights are not finite."""
        self._stop_if_not_finite()
        super().validation(dataloader, current_iter, tb_logger, save_img)

    # -- inference -------------------------------------------------------------------------
    def _val_opt(self, name: str, default: Any = None) -> Any:
        return (self.opt.get("val") or {}).get(name, default)

    def test(self) -> None:
        """Forward ``self.lq`` in eval mode without gradients (x8 self-ensemble, bf16 autocast,
        channels_last if asked); ``self.output`` is float32."""
        net = self.net_g_ema if hasattr(self, "net_g_ema") else self.get_bare_model(self.net_g)
        was_training = net.training
        net.eval()
        lq = self.lq
        if self._channels_last:
            lq = lq.contiguous(memory_format=torch.channels_last)
        with torch.no_grad(), torch.autocast(self.device.type, torch.bfloat16, enabled=self._bf16):
            out = self_ensemble(net, lq) if self._val_opt("self_ensemble", False) else net(lq)
        self.output = out.float()
        net.train(was_training)

    # -- validation ------------------------------------------------------------------------
    def _method_name(self) -> str:
        default = self.opt["network_g"]["type"] + ("+" if self._val_opt("self_ensemble", False) else "")
        return str(self._val_opt("method_name", default))

    def _score(self, sr: Tensor, gt: Tensor) -> dict[str, float]:
        """Every ``val.metrics`` entry on one CxHxW SR slice (already in [0, 1]) against its GT."""
        force_uint8 = self._val_opt("uint8_metrics", False)
        images: dict[bool, dict[str, np.ndarray]] = {}  # uint8? -> BasicSR's metric data
        scores = {}
        for name, metric_opt in self._val_opt("metrics").items():
            uint8 = force_uint8 or metric_opt["type"] not in FLOAT_METRICS
            if uint8 not in images:
                images[uint8] = ({"img": tensor2img(sr), "img2": tensor2img(gt)} if uint8 else
                                 {"img": sr.squeeze(0).numpy(), "img2": gt.squeeze(0).numpy()})
            scores[name] = float(calculate_metric(images[uint8], metric_opt))
        return scores

    def _save_slice(self, sr: Tensor, key: str, dataset_name: str, current_iter: Any) -> None:
        """Write one SR slice as a 16-bit PNG where BasicSR's SRModel writes its 8-bit one."""
        root = self.opt["path"]["visualization"]
        if self.opt["is_train"]:
            path = osp.join(root, key, f"{key}_{current_iter}.png")
        else:
            path = osp.join(root, dataset_name, f"{key}_{self._val_opt('suffix') or self.opt['name']}.png")
        imwrite((sr.squeeze(0).numpy() * 65535.0).round().astype(np.uint16), path)

    def nondist_validation(self, dataloader, current_iter, tb_logger, save_img) -> None:
        """Validate on ``dataloader`` (replaces BasicSR 1.4.2 sr_model.py:136-201; module doc)."""
        dataset_name = dataloader.dataset.opt["name"]
        metrics = self._val_opt("metrics") or {}
        bicubic = self._val_opt("bicubic_reference", True)
        method = self._method_name()
        slices: list[SliceScores] = []
        pbar = tqdm(total=len(dataloader), unit="image") if self._val_opt("pbar", False) else None
        for val_data in dataloader:
            self.feed_data(val_data)
            self.test()
            sr, lq = self.output.detach().float().clamp(0, 1).cpu(), self.lq.detach().float().cpu()
            gt = self.gt.detach().float().cpu() if hasattr(self, "gt") else None
            del self.lq, self.output
            if gt is not None:
                del self.gt
            for b in range(sr.shape[0]):
                key, subject, modality, index = _slice_info(val_data, b, len(slices))
                if save_img:
                    self._save_slice(sr[b], key, dataset_name, current_iter)
                if gt is None or not metrics:
                    continue
                scores = {method: self._score(sr[b], gt[b])}
                if bicubic:
                    scores[BICUBIC] = self._score(imresize(lq[b], self.opt["scale"]).clamp(0, 1), gt[b])
                slices.append(SliceScores(key, subject, modality, index, scores))
            if pbar is not None:
                pbar.update(1)
                pbar.set_description(f"Test {key}")
        if pbar is not None:
            pbar.close()
        if slices:
            self._report(slices, method, dataset_name, current_iter, tb_logger)

    def _report(self, slices: list[SliceScores], method: str, dataset_name: str, current_iter: Any,
                tb_logger: Any) -> None:
        """Aggregate, update BasicSR's best-metric records, log, and write the results files."""
        volumes = aggregate_volumes(slices)
        self.metric_results = set_means(volumes, method)
        self._initialize_best_metric_results(dataset_name)
        for name, value in self.metric_results.items():
            self._update_best_metric_result(dataset_name, name, value, current_iter)
        self._log_validation_metric_values(current_iter, dataset_name, tb_logger)
        skipped = {m: sum(v.skipped[method][m] for v in volumes) for m in self.metric_results}
        line = f"{dataset_name}: {len(volumes)} volumes, {len(slices)} slices (per-volume means, averaged)"
        if BICUBIC in slices[0].methods:
            line += "; bicubic: " + ", ".join(f"{m} {v:.4f}" for m, v in set_means(volumes, BICUBIC).items())
        if any(skipped.values()):
            line += "; slices without foreground (skipped): " + ", ".join(
                f"{m} {n}" for m, n in skipped.items() if n)
        get_root_logger().info(line)
        if self._val_opt("results_table", not self.opt["is_train"]):
            self._write_tables(slices, volumes, method, dataset_name, current_iter)

    def _write_tables(self, slices, volumes, method: str, dataset_name: str, current_iter: Any) -> None:
        if self.opt["is_train"]:
            folder, stem = self.opt["path"]["visualization"], f"{dataset_name}_{{}}_{current_iter}"
        else:
            folder, stem = self.opt["path"]["results_root"], f"{dataset_name}_{{}}"
        scale = self.opt["scale"]
        rows = volume_rows(volumes, method, dataset_name, scale)
        write_csv(osp.join(folder, stem.format("slices") + ".csv"),
                  slice_rows(slices, method, dataset_name, scale))
        write_csv(osp.join(folder, stem.format("volumes") + ".csv"), rows)
        write_text(osp.join(folder, stem.format("table") + ".md"), table_iii_markdown(rows))
        get_root_logger().info(f"Results tables: {osp.join(folder, stem.format('*'))}")

    # -- best checkpoint -------------------------------------------------------------------
    def _initialize_best_metric_results(self, dataset_name: str) -> None:
        """BasicSR's records, then (training) the best value stored in an existing net_g_best.pth."""
        fresh = dataset_name not in getattr(self, "best_metric_results", {})
        super()._initialize_best_metric_results(dataset_name)
        self._best_dataset = self._best_dataset or dataset_name
        best_path = osp.join(self.opt["path"].get("models", ""), _BEST_FILE)
        if fresh and self._tracks_best(dataset_name) and osp.isfile(best_path):
            stored = torch.load(best_path, map_location="cpu", weights_only=True).get("best", {})
            if stored.get("dataset") == dataset_name and stored.get("metric") == self.best_metric:
                self.best_metric_results[dataset_name][self.best_metric].update(val=stored["val"],
                                                                               iter=stored["iter"])

    def _tracks_best(self, dataset_name: str) -> bool:
        return self.is_train and self.best_metric is not None and dataset_name == self._best_dataset

    def _update_best_metric_result(self, dataset_name: str, metric: str, val: float,
                                   current_iter: Any) -> None:
        """BasicSR's update; in training also save net_g_best.pth when ``best_metric`` improves."""
        record = self.best_metric_results[dataset_name][metric]
        before = (record["val"], record["iter"])
        super()._update_best_metric_result(dataset_name, metric, val, current_iter)
        improved = (record["val"], record["iter"]) != before
        if improved and metric == self.best_metric and self._tracks_best(dataset_name):
            self._save_best(dataset_name, metric, val, current_iter)

    def _save_best(self, dataset_name: str, metric: str, val: float, current_iter: Any) -> None:
        """Write net_g_best.pth atomically: BasicSR's layout (params[, params_ema]) + a 'best' record."""
        nets = [(self.net_g, "params")]
        if hasattr(self, "net_g_ema"):
            nets.append((self.net_g_ema, "params_ema"))
        state: dict[str, Any] = {}
        for net, key in nets:
            params = self.get_bare_model(net).state_dict()
            state[key] = {k.removeprefix("module."): v.cpu() for k, v in params.items()}
        state["best"] = dict(dataset=dataset_name, metric=metric, val=float(val), iter=int(current_iter))
        path = osp.join(self.opt["path"]["models"], _BEST_FILE)
        save_or_stop(state, path)
        get_root_logger().info(f"Saved {path} ({metric} {val:.4f} @ iter {current_iter})")
