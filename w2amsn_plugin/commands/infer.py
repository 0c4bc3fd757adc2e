"""``w2amsn infer``: super-resolve a whole MR volume with a trained model (command line over
:mod:`w2amsn_plugin.inference`)."""
from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import torch

from .. import device_caps
from ..inference import geometry as nifti_geometry
from ..data.normalization import DEFAULT_PERCENTILE

from ..inference.engine import DEFAULT_MAX_PIXELS, DEFAULT_TILE_OVERLAP, plan_tiles, super_resolve_array
from ..inference.loading import InferenceError, _load_model
from ..inference.volumes import load_volume, to_output_dtype

__all__ = ["configure_parser", "run"]


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


def _fmt(values: Any) -> str:
    return "x".join(f"{v:g}" for v in values)


def _infer(args: argparse.Namespace) -> int:
    out_path = Path(args.output)
    if not out_path.name.endswith(_OUTPUT_SUFFIXES):
        raise InferenceError(f"{out_path}: output must end with .nii or .nii.gz")
    in_path = Path(args.input)
    img, data = load_volume(in_path, args.volume_index)
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
    sr = to_output_dtype(nifti_geometry.from_canonical(sr, ornt), out_dtype)
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
