"""Whole-volume MR super-resolution with a trained model: the Python API and ``w2amsn infer``.

``w2amsn infer --input lr.nii.gz --output sr.nii.gz --weights net_g_latest.pth`` reads a NIfTI
or Analyze volume, normalises it per volume as training did (README "Data preparation"), super-resolves
every slice of one anatomical plane in batches (tiled with overlap when a batch would exceed the
memory cap), undoes the normalisation and writes a NIfTI whose grid is ``scale`` times finer in
that plane over the same field of view (:mod:`w2amsn_plugin.nifti_geometry`).

Intensities brighter than the normalisation percentile are clipped for the network, which never
saw values above 1 in training; what the clip removed is upsampled with MATLAB bicubic (the
interpolation of the paper's degradation) and added back, so bright structures keep their values
(at bicubic sharpness) and the output stays in the input's units. A model that is exactly bicubic
upsampling therefore reproduces bicubic upsampling of the input.
"""
from __future__ import annotations

import argparse
import functools
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Union

import nibabel as nib
import numpy as np
import torch
import yaml
from basicsr.archs import build_network
from basicsr.utils.matlab_functions import calculate_weights_indices
from basicsr.utils.registry import ARCH_REGISTRY
from torch import Tensor, nn
from tqdm import tqdm

from . import device_caps, nifti_geometry
from .data.normalization import DEFAULT_PERCENTILE, normalize_intensity
from .models.self_ensemble import self_ensemble as ensemble_x8

__all__ = ["DEFAULT_MAX_PIXELS", "DEFAULT_TILE_OVERLAP", "InferenceError", "TilePlan",
           "plan_tiles", "bicubic_upsample", "load_model", "super_resolve_volume",
           "super_resolve_array", "configure_parser", "run"]

#: LR pixels per forward call (batch x window area): one 256x256 LR slice. W2AMSN (a=32, t=20)
#: peaks at about 5.7 KB per LR pixel in fp32 (4.3 KB in bf16; measured, x2), ~0.4 GiB per call;
#: `w2amsn bench` measured the same speed as 4x more per call and half the peak memory (a 256x256x150
#: volume at x4: 0.82 GiB above the output array for W2AMSN fp32, 1.69 GiB with 1 << 18).
DEFAULT_MAX_PIXELS = 1 << 16
#: LR pixels of context on each side of a tile (its output is cropped away)
DEFAULT_TILE_OVERLAP = 32

PathLike = Union[str, os.PathLike]


class InferenceError(ValueError):
    """A user-caused problem (bad file, options or arguments), reported as one line."""


# --------------------------------------------------------------------------- model loading

def _find_options(weights: Path) -> Path:
    """The experiment YAML BasicSR copies into ``experiments/<name>/`` (``models/..`` of the
    checkpoint), or one beside the checkpoint."""
    for folder in (weights.parent, weights.parent.parent):
        found = sorted(p for pattern in ("*.yml", "*.yaml") for p in folder.glob(pattern))
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            names = ", ".join(p.name for p in found)
            raise InferenceError(f"{folder}: several options files ({names}); pass --opt")
    raise InferenceError(f"{weights}: no options YAML beside it or in {weights.parent.parent}; "
                         "pass --opt")


def _read_options(weights: Path, opt: PathLike | Mapping[str, Any] | None
                  ) -> tuple[str, Mapping[str, Any]]:
    if isinstance(opt, Mapping):
        return "options", opt
    path = Path(opt) if opt is not None else _find_options(weights)
    try:
        with open(path, encoding="utf-8") as f:
            options = yaml.safe_load(f)
    except OSError as err:
        raise InferenceError(f"{path}: cannot read options ({err.strerror})") from err
    except yaml.YAMLError as err:
        raise InferenceError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from err
    if not isinstance(options, Mapping):
        raise InferenceError(f"{path}: not an options mapping")
    return str(path), options


def _scale_of(options: Mapping[str, Any], net_opt: Mapping[str, Any], where: str) -> int:
    found = {k: v for k, v in (("scale", options.get("scale")), ("network_g.upscale",
                                                                   net_opt.get("upscale")))
             if v is not None}
    values = set(found.values())
    if not values:
        raise InferenceError(f"{where}: neither scale nor network_g.upscale is set")
    if len(values) > 1:
        raise InferenceError(f"{where}: scale and network_g.upscale disagree ({found})")
    scale = values.pop()
    if not isinstance(scale, int) or scale < 1:
        raise InferenceError(f"{where}: scale must be a positive integer, got {scale!r}")
    return scale


def _state_dict(weights: Path) -> tuple[dict[str, Tensor], str]:
    """The generator's parameters and the checkpoint key they came from."""
    try:
        ckpt = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for non-checkpoint files
        raise InferenceError(f"{weights}: not a PyTorch checkpoint "
                             f"({str(err).splitlines()[0][:120]})") from err
    if not isinstance(ckpt, Mapping):
        raise InferenceError(f"{weights}: checkpoint is a {type(ckpt).__name__}, not a dict")
    for key in ("params_ema", "params"):  # BasicSR: net_g_ema is saved as params_ema
        if isinstance(ckpt.get(key), Mapping):
            state, source = ckpt[key], key
            break
    else:
        if not ckpt or not all(isinstance(v, Tensor) for v in ckpt.values()):
            raise InferenceError(f"{weights}: no 'params_ema' or 'params' state dict in it")
        state, source = ckpt, "state dict"
    return {k[7:] if k.startswith("module.") else k: v for k, v in state.items()}, source


def _load_model(weights: PathLike, opt: PathLike | Mapping[str, Any] | None
                ) -> tuple[nn.Module, int, dict[str, str]]:
    weights = Path(weights)
    if not weights.is_file():
        raise InferenceError(f"{weights}: weights file not found")
    where, options = _read_options(weights, opt)
    net_opt = options.get("network_g")
    if not isinstance(net_opt, Mapping) or "type" not in net_opt:
        raise InferenceError(f"{where}: no network_g section with a type")
    scale = _scale_of(options, net_opt, where)
    if net_opt["type"] not in ARCH_REGISTRY:
        raise InferenceError(f"{where}: network_g type {net_opt['type']!r} is not a registered "
                             "architecture")
    try:
        net = build_network(dict(net_opt))
    except (TypeError, ValueError) as err:
        raise InferenceError(f"{where}: cannot build network_g ({err})") from err
    state, source = _state_dict(weights)
    try:
        missing, unexpected = net.load_state_dict(state, strict=False)
    except RuntimeError as err:  # shape mismatches; the first detail line names a tensor
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        raise InferenceError(f"{weights}: weights do not fit network_g of {where} "
                             f"({lines[-1] if len(lines) == 1 else lines[1]})") from err
    if missing or unexpected:
        raise InferenceError(
            f"{weights}: weights do not fit network_g of {where} ({len(missing)} missing, "
            f"{len(unexpected)} unexpected keys, e.g. {(missing + unexpected)[0]!r})")
    net.eval().requires_grad_(False)
    return net, scale, {"options": where, "params": source, "type": str(net_opt["type"])}


def load_model(weights: PathLike, opt: PathLike | Mapping[str, Any] | None = None
               ) -> tuple[nn.Module, int]:
    """Build ``network_g`` from the experiment's options and load a BasicSR checkpoint into it.

    ``opt`` is an options YAML path or an already-parsed options dict; ``None`` takes the YAML
    BasicSR copied into the experiment folder (``experiments/<name>/*.yml`` for
    ``experiments/<name>/models/net_g_*.pth``) or the one beside the checkpoint. The weights are
    ``params_ema`` when present, else ``params`` (or a bare state dict). Returns the network in
    eval mode on the CPU, and the scale (``scale`` / ``network_g.upscale``).
    Raises :class:`InferenceError` with one line naming the file at fault.
    """
    net, scale, _ = _load_model(weights, opt)
    return net, scale


# --------------------------------------------------------------------------- bicubic

@functools.lru_cache(maxsize=16)
def _bicubic_matrix(n_in: int, scale: int) -> Tensor:
    """``(n_in * scale, n_in)`` matrix of MATLAB's bicubic ``imresize`` (BasicSR's weights),
    with its symmetric boundary padding folded back onto the signal."""
    weights, indices, sym_start, _ = calculate_weights_indices(
        n_in, n_in * scale, scale, "cubic", 4, True)
    pos = torch.remainder(indices.long() - sym_start, 2 * n_in)  # mirror, period 2 * n_in
    pos = torch.where(pos >= n_in, 2 * n_in - 1 - pos, pos)
    mat = torch.zeros(n_in * scale, n_in, dtype=torch.float64)
    return mat.scatter_add_(1, pos, weights.double()).float()


def bicubic_upsample(x: Tensor, scale: int) -> Tensor:
    """MATLAB-compatible bicubic upsampling of the last two dims of ``x`` by an integer ``scale``
    (equal to ``basicsr.utils.matlab_functions.imresize``, as two matrix products)."""
    rows = _bicubic_matrix(x.shape[-2], scale).to(x.device, x.dtype)
    cols = _bicubic_matrix(x.shape[-1], scale).to(x.device, x.dtype)
    return rows @ x @ cols.T


# --------------------------------------------------------------------------- tiling

@dataclass(frozen=True)
class TilePlan:
    """How slices go through the network: ``batch`` windows per forward call, each a whole
    slice (``tile`` None) or a ``tile`` x ``tile`` LR tile with ``overlap`` pixels of context."""

    batch: int
    tile: int | None = None
    overlap: int = DEFAULT_TILE_OVERLAP

    def windows(self, height: int, width: int
                ) -> tuple[tuple[int, int], list[tuple[int, int, int, int, int, int]]]:
        """Window size and ``(win_y, win_x, y0, y1, x0, x1)`` per tile of an ``height x width``
        slice: the tile ``[y0, y1) x [x0, x1)`` is cut from the output of the window at
        ``(win_y, win_x)``. Windows all have one size (they batch) and reach ``overlap`` pixels
        past their tile, or to the slice border, where zero padding is the same as untiled."""
        if self.tile is None:
            return (height, width), [(0, 0, 0, height, 0, width)]
        win_h = min(self.tile + 2 * self.overlap, height)
        win_w = min(self.tile + 2 * self.overlap, width)
        boxes = []
        for y0 in range(0, height, self.tile):
            win_y = min(max(y0 - self.overlap, 0), height - win_h)
            for x0 in range(0, width, self.tile):
                win_x = min(max(x0 - self.overlap, 0), width - win_w)
                boxes.append((win_y, win_x, y0, min(y0 + self.tile, height),
                              x0, min(x0 + self.tile, width)))
        return (win_h, win_w), boxes


def plan_tiles(height: int, width: int, batch: int = 8, *, max_pixels: int = DEFAULT_MAX_PIXELS,
               tile: int | None = None, overlap: int = DEFAULT_TILE_OVERLAP,
               self_ensemble: bool = False) -> TilePlan:
    """Plan for ``height x width`` LR slices: whole slices, ``batch`` at most and no more than
    ``max_pixels`` LR pixels per forward call; tiles (of side ``tile``, or the largest whose
    window fits ``max_pixels``) when one slice alone would exceed it. The self-ensemble runs up
    to 8 transformed copies per call, so it gets an eighth of ``max_pixels``."""
    if batch < 1 or max_pixels < 1 or overlap < 0 or (tile is not None and tile < 1):
        raise InferenceError("batch, max_pixels and tile must be positive, overlap >= 0")
    if self_ensemble:
        max_pixels = max(1, max_pixels // 8)
    if tile is None and height * width > max_pixels:
        tile = math.isqrt(max_pixels) - 2 * overlap
        if tile < 8:
            raise InferenceError(f"max_pixels {max_pixels} leaves tiles of {tile} px with "
                                 f"overlap {overlap}; raise it or lower the overlap")
    if tile is not None and tile >= max(height, width):
        tile = None
    plan = TilePlan(batch=1, tile=tile, overlap=overlap)
    win_h, win_w = plan.windows(height, width)[0]
    return TilePlan(batch=max(1, min(batch, max_pixels // (win_h * win_w))), tile=tile,
                    overlap=overlap)


# --------------------------------------------------------------------------- the engine

def _prepare(net: nn.Module, device: str) -> nn.Module:
    if torch.device(device).type == "cuda" and not torch.cuda.is_available():
        raise InferenceError(f"device {device!r}: CUDA is not available in this torch build/machine")
    return net.to(device=device, memory_format=torch.channels_last).eval()


def _forward_fn(net: nn.Module, device: str, bf16: bool, ensemble: bool
                ) -> Callable[[Tensor], Tensor]:
    dev_type = torch.device(device).type

    def forward(x: Tensor) -> Tensor:
        with torch.autocast(dev_type, dtype=torch.bfloat16, enabled=bf16):
            return net(x).float()

    return functools.partial(ensemble_x8, forward) if ensemble else forward


def _run_plan(volume: np.ndarray, net: nn.Module, scale: int, plane_axis: int, plan: TilePlan,
              ensemble: bool, bf16: bool, device: str, progress: bool) -> np.ndarray:
    """Super-resolve every slice along ``plane_axis`` of a float32 3-D ``volume``."""
    net = _prepare(net, device)
    forward = _forward_fn(net, device, bf16, ensemble)
    shape = list(volume.shape)
    for ax in range(3):
        if ax != plane_axis:
            shape[ax] *= scale
    out = np.empty(shape, dtype=np.float32)
    lr = torch.from_numpy(np.moveaxis(volume, plane_axis, 0))
    sr = torch.from_numpy(np.moveaxis(out, plane_axis, 0))
    n, height, width = lr.shape
    (win_h, win_w), boxes = plan.windows(height, width)
    jobs = [(k, box) for k in range(n) for box in boxes]
    expected = (win_h * scale, win_w * scale)
    with torch.inference_mode(), tqdm(total=n, unit="slice", disable=not progress,
                                      desc="super-resolving", leave=False) as bar:
        for start in range(0, len(jobs), plan.batch):
            chunk = jobs[start:start + plan.batch]
            if plan.tile is None:  # whole slices: one strided slab, no per-slice Python
                x = lr[chunk[0][0]:chunk[-1][0] + 1].unsqueeze(1)
            else:
                x = torch.stack([lr[k, wy:wy + win_h, wx:wx + win_w]
                                 for k, (wy, wx, *_) in chunk]).unsqueeze(1)
            y = forward(x.to(device=device, memory_format=torch.channels_last))
            if tuple(y.shape) != (len(chunk), 1, *expected):
                raise InferenceError(f"network returned shape {tuple(y.shape)} for input "
                                     f"{tuple(x.shape)}; expected {(len(chunk), 1, *expected)} "
                                     f"(a 1-channel x{scale} model)")
            y = y[:, 0].cpu()
            if plan.tile is None:
                sr[chunk[0][0]:chunk[-1][0] + 1].copy_(y)
            else:
                for (k, (wy, wx, y0, y1, x0, x1)), yk in zip(chunk, y):
                    sr[k, y0 * scale:y1 * scale, x0 * scale:x1 * scale].copy_(
                        yk[(y0 - wy) * scale:(y1 - wy) * scale, (x0 - wx) * scale:(x1 - wx) * scale])
            bar.update(len(chunk) / len(boxes))
    return out


def _check_volume(volume: np.ndarray, plane_axis: int) -> np.ndarray:
    volume = np.asarray(volume)
    if volume.ndim != 3:
        raise InferenceError(f"expected a 3-D volume, got shape {volume.shape}")
    if plane_axis not in (0, 1, 2):
        raise InferenceError(f"plane_axis must be 0, 1 or 2, got {plane_axis}")
    volume = volume.astype(np.float32, copy=False)
    if not np.isfinite(volume).all():
        raise InferenceError(f"volume has {np.count_nonzero(~np.isfinite(volume))} NaN/inf voxels")
    return volume


def super_resolve_volume(volume: np.ndarray, net: torch.nn.Module, scale: int, *,
                         plane_axis: int = 2, batch: int = 8, self_ensemble: bool = False,
                         bf16: bool | None = None, device: str = "cpu",
                         progress: bool = False) -> np.ndarray:
    """Super-resolve every slice of a normalised 3-D volume (values in [0, 1], as in training).

    The slices are the 2-D planes normal to ``plane_axis``; they go through ``net`` ``batch`` at
    a time (at most :data:`DEFAULT_MAX_PIXELS` LR pixels per call, tiled with overlap beyond
    that), in channels_last, with the x8 self-ensemble of the paper's W²AMSN+ (Table III) when
    ``self_ensemble``. ``bf16=None`` uses bf16 autocast where ``device`` computes it natively
    (:func:`w2amsn_plugin.device_caps.native_bf16`). ``net`` is moved to ``device`` in place.
    Returns float32 with both in-plane axes ``scale`` times longer; no clamping.
    """
    volume = _check_volume(volume, plane_axis)
    height, width = (volume.shape[ax] for ax in range(3) if ax != plane_axis)
    plan = plan_tiles(height, width, batch, self_ensemble=self_ensemble)
    return _run_plan(volume, net, scale, plane_axis, plan, self_ensemble,
                     device_caps.resolve_bf16(bf16, device), device, progress)


def super_resolve_array(volume: np.ndarray, net: torch.nn.Module, scale: int, *,
                        plane_axis: int = 2, percentile: float = DEFAULT_PERCENTILE,
                        plan: TilePlan | None = None, self_ensemble: bool = False,
                        bf16: bool | None = None, device: str = "cpu",
                        progress: bool = False) -> np.ndarray:
    """Super-resolve a 3-D volume in its own intensity units (what ``w2amsn infer`` runs).

    Normalises with :func:`~w2amsn_plugin.data.normalization.normalize_intensity` at
    ``percentile``, runs the network on the clipped volume, adds back the MATLAB-bicubic
    upsampled part above the clip (module docstring), and maps back to the input's units.
    ``plan`` defaults to :func:`plan_tiles` with batch 8. Returns float32.
    """
    volume = _check_volume(volume, plane_axis)
    try:
        norm, lo, hi = normalize_intensity(volume, percentile)
    except ValueError as err:
        raise InferenceError(str(err)) from err
    height, width = (volume.shape[ax] for ax in range(3) if ax != plane_axis)
    plan = plan or plan_tiles(height, width, self_ensemble=self_ensemble)
    out = _run_plan(norm, net, scale, plane_axis, plan, self_ensemble,
                    device_caps.resolve_bf16(bf16, device), device, progress)
    excess = np.moveaxis(np.maximum(volume - np.float32(hi), 0) / np.float32(hi - lo),
                         plane_axis, 0)
    sr = torch.from_numpy(np.moveaxis(out, plane_axis, 0))
    bright = np.flatnonzero(excess.any(axis=(1, 2)))
    for start in range(0, len(bright), plan.batch):
        ks = torch.from_numpy(bright[start:start + plan.batch])
        sr[ks] += bicubic_upsample(torch.from_numpy(excess[bright[start:start + plan.batch]]),
                                   scale)
    out *= np.float32(hi - lo)  # in place: denormalize_intensity(out, lo, hi) without a copy
    out += np.float32(lo)
    return out


# --------------------------------------------------------------------------- the CLI

_OUTPUT_SUFFIXES = (".nii", ".nii.gz")


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Options of ``w2amsn infer``."""
    default_device = "cuda" if torch.cuda.is_available() else "cpu"
    parser.add_argument("--input", required=True, help="LR volume (.nii, .nii.gz, Analyze .hdr/.img)")
    parser.add_argument("--output", required=True, help="SR volume to write (.nii or .nii.gz)")
    parser.add_argument("--weights", required=True, help="BasicSR checkpoint, e.g. "
                        "experiments/<name>/models/net_g_latest.pth")
    parser.add_argument("--opt", default=None, help="options YAML with network_g and scale "
                        "(default: the experiment's YAML next to the checkpoint)")
    parser.add_argument("--plane", choices=tuple(nifti_geometry.PLANES), default="axial",
                        help="anatomical plane of the slices to super-resolve (default: axial)")
    parser.add_argument("--volume-index", type=int, default=None,
                        help="which volume of a 4-D file (default: error on 4-D input)")
    parser.add_argument("--percentile", type=float, default=DEFAULT_PERCENTILE,
                        help="normalisation percentile, as in training (default: %(default)s)")
    parser.add_argument("--self-ensemble", action="store_true",
                        help="x8 geometric self-ensemble (W²AMSN+), 8x slower")
    parser.add_argument("--device", default=default_device,
                        help="cpu, cuda or cuda:N (default: %(default)s)")
    parser.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=None,
                        help="bf16 autocast (default: only where the device computes it natively)")
    parser.add_argument("--batch", type=int, default=8, help="slices per forward call, at most "
                        "(default: %(default)s)")
    parser.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS,
                        help="LR pixels per forward call; tiles beyond (default: %(default)s)")
    parser.add_argument("--tile", type=int, default=None,
                        help="tile side in LR pixels (default: only when --max-pixels needs it)")
    parser.add_argument("--tile-overlap", type=int, default=DEFAULT_TILE_OVERLAP,
                        help="LR context pixels around each tile (default: %(default)s)")
    parser.add_argument("--dry-run", action="store_true",
                        help="print what would be done and exit without running the network")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _load_volume(path: Path, volume_index: int | None
                 ) -> tuple[nib.spatialimages.SpatialImage, np.ndarray]:
    if not path.is_file():
        raise InferenceError(f"{path}: input file not found")
    try:
        img = nib.load(path)
    except Exception as err:  # nibabel raises ImageFileError, EOFError, OSError, ...
        raise InferenceError(f"{path}: cannot read as an image ({err})") from err
    if not isinstance(img, (nib.Nifti1Image, nib.Nifti2Image, nib.AnalyzeImage)):
        raise InferenceError(f"{path}: {type(img).__name__} is not a NIfTI or Analyze image")
    shape = img.shape
    if len(shape) == 4 and shape[3] == 1 and volume_index in (None, 0):
        volume_index = 0
    if len(shape) == 3:
        if volume_index not in (None, 0):
            raise InferenceError(f"{path}: 3-D volume has no --volume-index {volume_index}")
        index: tuple = ()
    elif len(shape) == 4:
        if volume_index is None:
            raise InferenceError(f"{path}: 4-D file with {shape[3]} volumes; "
                                 "pick one with --volume-index")
        if not 0 <= volume_index < shape[3]:
            raise InferenceError(f"{path}: --volume-index {volume_index} out of range "
                                 f"(0..{shape[3] - 1})")
        index = (volume_index,)
    else:
        raise InferenceError(f"{path}: shape {shape} is not a 3-D volume (or 4-D series)")
    try:
        data = np.asanyarray(img.dataobj[(..., *index)] if index else img.dataobj)
    except Exception as err:  # truncated/corrupt payloads surface here
        raise InferenceError(f"{path}: cannot read the voxel data ({err})") from err
    if data.dtype.kind not in "iuf":
        raise InferenceError(f"{path}: voxel type {data.dtype} is not integer or float")
    if data.dtype.kind == "f" and not np.isfinite(data).all():
        raise InferenceError(f"{path}: {np.count_nonzero(~np.isfinite(data))} NaN/inf voxels; "
                             "fill or mask them first")
    return img, data


def _to_output_dtype(volume: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Integer inputs get their own type back (rounded, clipped to its range); others float32."""
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return np.clip(np.rint(volume), info.min, info.max).astype(dtype)
    return volume.astype(np.float32, copy=False)


def _fmt(values: Any) -> str:
    return "x".join(f"{v:g}" for v in values)


def _infer(args: argparse.Namespace) -> int:
    out_path = Path(args.output)
    if not out_path.name.endswith(_OUTPUT_SUFFIXES):
        raise InferenceError(f"{out_path}: output must end with .nii or .nii.gz")
    in_path = Path(args.input)
    img, data = _load_volume(in_path, args.volume_index)
    ornt = nifti_geometry.canonical_ornt(img.affine)
    canon = nifti_geometry.to_canonical(data, ornt)
    plane_axis = nifti_geometry.PLANES[args.plane]
    in_plane = [ax for ax in range(3) if ax != plane_axis]
    net, scale, info = _load_model(args.weights, args.opt)
    height, width = (canon.shape[ax] for ax in in_plane)
    plan = plan_tiles(height, width, args.batch, max_pixels=args.max_pixels, tile=args.tile,
                      overlap=args.tile_overlap, self_ensemble=args.self_ensemble)
    bf16 = device_caps.resolve_bf16(args.bf16, args.device)
    scales = [1] * 3
    for ax in nifti_geometry.input_axes(in_plane, ornt):
        scales[ax] = scale
    out_shape = tuple(n * s for n, s in zip(data.shape, scales))
    out_zooms = tuple(float(z) / s for z, s in zip(img.header.get_zooms()[:3], scales))
    out_dtype = np.dtype(data.dtype if data.dtype.kind in "iu" else np.float32)
    if args.dry_run:
        n_windows = len(plan.windows(height, width)[1])
        tiling = ("whole slices" if plan.tile is None else
                  f"{n_windows} tiles of {plan.tile} px (+{plan.overlap} px overlap) per slice")
        n_params = sum(p.numel() for p in net.parameters())
        lines = [
            f"input   {in_path}: {type(img).__name__}, shape {_fmt(data.shape)}, voxel "
            f"{_fmt(img.header.get_zooms()[:3])} mm, {''.join(nib.aff2axcodes(img.affine))}, "
            f"{data.dtype}" + (f", volume {args.volume_index}" if args.volume_index is not None else ""),
            f"plane   {args.plane}: {canon.shape[plane_axis]} slices of {height}x{width} "
            f"(RAS axis {plane_axis}), x{scale}",
            f"output  {out_path}: shape {_fmt(out_shape)}, voxel {_fmt(out_zooms)} mm, {out_dtype}",
            f"network {info['type']}, {n_params / 1e6:.3f}M parameters ({info['params']} of "
            f"{args.weights}; options {info['options']})",
            f"device  {device_caps.describe_device(args.device)}; bf16 {'on' if bf16 else 'off'}"
            f"{'' if args.bf16 is not None else ' (auto)'}"
            f"{'; x8 self-ensemble' if args.self_ensemble else ''}",
            f"batches {math.ceil(canon.shape[plane_axis] * n_windows / plan.batch)} forward calls"
            f" of <= {plan.batch} ({tiling}; max {args.max_pixels} LR px per call)",
            f"intensity normalised per volume at percentile {args.percentile:g}",
        ]
        print("\n".join(lines))
        return 0
    start = time.perf_counter()
    sr = super_resolve_array(canon, net, scale, plane_axis=plane_axis, percentile=args.percentile,
                             plan=plan, self_ensemble=args.self_ensemble, bf16=bf16,
                             device=args.device, progress=not args.no_progress)
    sr = _to_output_dtype(nifti_geometry.from_canonical(sr, ornt), out_dtype)
    out_img = nifti_geometry.sr_image(img, sr, scales,
                                      description=f"w2amsn x{scale} {args.plane} SR")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    suffix = ".nii.gz" if out_path.name.endswith(".nii.gz") else ".nii"
    partial = out_path.with_name(f".{out_path.name}.{os.getpid()}.part{suffix}")
    try:
        nib.save(out_img, partial)
        os.replace(partial, out_path)
    finally:
        partial.unlink(missing_ok=True)
    seconds = time.perf_counter() - start
    print(f"wrote {out_path}: shape {_fmt(out_shape)}, voxel {_fmt(out_zooms)} mm, {out_dtype} "
          f"({seconds:.1f} s, {seconds / canon.shape[plane_axis]:.3f} s/slice)")
    return 0


def run(args: argparse.Namespace) -> int:
    """``w2amsn infer``: 0 on success, 2 with one ``error:`` line for a user-caused problem."""
    try:
        return _infer(args)
    except InferenceError as err:
        print(f"w2amsn infer: error: {err}", file=sys.stderr)
        return 2
