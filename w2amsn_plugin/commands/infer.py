"""``w2amsn infer``: super-resolve a whole MR volume with a trained model (command line over
:mod:`w2amsn_plugin.inference`; docs/inference.md).

Everything that can be wrong with the arguments, the input, the weights or the output paths is
checked before the network runs; each problem is one ``w2amsn infer: error:`` line on stderr and
exit status 2, Ctrl-C is one line and 130, and nothing is left at the output paths."""
from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import torch
from tqdm import tqdm

from .. import device_caps
from ..data import planes
from ..data.normalization import DEFAULT_PERCENTILE
from ..inference import geometry, output, provenance
from ..inference.engine import check_device, super_resolve_array, volume_window
from ..inference.loading import InferenceError, LoadedModel, load_model_info
from ..inference.protocol import TrainingProtocol, training_protocol
from ..protocol import PAPER
from ..inference.tiling import CPU_BATCH, DEFAULT_TILE_OVERLAP, TilePlan, auto_max_pixels, plan_tiles
from ..inference.volumes import DTYPE_CHOICES, load_volume, output_class, output_dtype, to_output_dtype

__all__ = ["VOXEL_TOLERANCE", "SMALL_SLICE", "configure_parser", "run"]

#: relative difference of in-plane voxel size from the training data's that draws a warning
VOXEL_TOLERANCE = 0.30
#: slices narrower than this (LR px) draw a warning when the training patch size is unknown: the
#: context a tile gets on each side (convolutions see zero padding within it)
SMALL_SLICE = DEFAULT_TILE_OVERLAP


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Options of ``w2amsn infer``."""
    parser.add_argument("--input", required=True,
                        help="LR volume: NIfTI-1/2 (.nii, .nii.gz, .hdr/.img), Analyze, MGH/MGZ")
    parser.add_argument("--output", required=True,
                        help="SR volume to write: .nii, .nii.gz, .mgz, .mgh, .img/.hdr (the "
                        "input's format where the name allows it); its .json sidecar goes beside it")
    parser.add_argument("--weights", required=True, help="BasicSR checkpoint, e.g. "
                        "experiments/<name>/models/net_g_latest.pth")
    parser.add_argument("--opt", default=None, help="options YAML with network_g and scale "
                        "(default: the experiment's YAML next to the checkpoint)")
    parser.add_argument("--plane", choices=planes.PLANES, default=None,
                        help="plane of the slices to super-resolve (default: the plane the "
                        "model's training manifest records, else acquisition)")
    parser.add_argument("--volume-index", type=int, default=None,
                        help="one volume of a 4-D file (default: every volume)")
    parser.add_argument("--percentile", type=float, default=None,
                        help="normalisation percentile (default: the training manifest's, "
                        f"else {DEFAULT_PERCENTILE:g})")
    parser.add_argument("--dtype", choices=DTYPE_CHOICES, default="auto",
                        help="output voxel type (default auto: float32 for float input and "
                        "integers under 16 bits, the input's type for wider integers)")
    parser.add_argument("--self-ensemble", action="store_true",
                        help="x8 geometric self-ensemble (W²AMSN+): 8 passes at the same plan")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                        help="cpu, cuda or cuda:N (default: %(default)s)")
    parser.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=None,
                        help="bf16 autocast (default: only where the device computes it natively)")
    parser.add_argument("--batch", type=int, default=None, help="windows per forward call, at "
                        f"most (default: {CPU_BATCH} on the CPU, the memory budget on CUDA)")
    parser.add_argument("--max-pixels", type=int, default=None,
                        help="LR pixels per forward call; tiles beyond (default: 65536 on the "
                        "CPU, from free memory on CUDA)")
    parser.add_argument("--tile", type=int, default=None,
                        help="tile side in LR pixels, >= 8 (default: only when --max-pixels needs it)")
    parser.add_argument("--tile-overlap", type=int, default=DEFAULT_TILE_OVERLAP,
                        help="LR context pixels around each tile (default: %(default)s)")
    parser.add_argument("--dry-run", action="store_true",
                        help="print what would be done and exit without running the network")
    parser.add_argument("--json", action="store_true",
                        help="print the record as JSON (the plan with --dry-run; the sidecar after a run)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _fmt(values: Any) -> str:
    return "x".join(f"{v:g}" for v in values)


def _warn(message: str) -> None:
    print(f"w2amsn infer: warning: {message}", file=sys.stderr, flush=True)


@dataclass
class _Job:
    """Everything decided before the network runs."""

    in_path: Path
    img: nib.spatialimages.SpatialImage
    data: np.ndarray
    files: output.OutputFiles
    klass: type
    out_dtype: np.dtype
    dtype_why: str
    model: LoadedModel
    protocol: TrainingProtocol
    plane: str
    plane_why: str
    ras_axis: int
    ornt: np.ndarray
    scales: list[int]
    percentile: float
    percentile_why: str
    windows: list[tuple[float, float]]
    plan: TilePlan
    max_pixels: int
    bf16: bool
    device: torch.device
    warnings: list[str]

    @property
    def volumes(self) -> list[np.ndarray]:
        return [self.data] if self.data.ndim == 3 else [self.data[..., i]
                                                         for i in range(self.data.shape[3])]

    @property
    def slice_shape(self) -> tuple[int, int, int]:
        """(slices, height, width) of one volume in the chosen plane, slices upright as in
        training (:data:`w2amsn_plugin.data.planes.DISPLAY`)."""
        canon_shape = [self.data.shape[int(np.flatnonzero(self.ornt[:, 0] == ax)[0])]
                       for ax in range(3)]
        row, col = planes.plane_pixel_axes(self.ras_axis)
        return canon_shape[self.ras_axis], canon_shape[row], canon_shape[col]

    @property
    def out_shape(self) -> tuple[int, ...]:
        return tuple(n * s for n, s in zip(self.data.shape, [*self.scales, 1]))

    def zooms(self, refined: bool) -> tuple[float, ...]:
        zooms = self.img.header.get_zooms()[:3]
        return tuple(float(z) / (s if refined else 1) for z, s in zip(zooms, self.scales))


def _choose_plane(args: argparse.Namespace, proto: TrainingProtocol) -> tuple[str, str]:
    if args.plane is not None:
        return args.plane, "--plane"
    if proto.plane is not None:
        return proto.plane, f"recorded by the {proto.plane_source}"
    return PAPER.plane, "default: the training plane is unknown"


def _choose_percentile(args: argparse.Namespace, proto: TrainingProtocol) -> tuple[float, str]:
    if args.percentile is not None:
        return args.percentile, "--percentile"
    if proto.percentile is not None:
        return proto.percentile, f"the training manifest {proto.manifest}"
    return DEFAULT_PERCENTILE, "default: the training percentile is unknown"


def _in_plane_voxel(job: _Job) -> tuple[float, float]:
    zooms = job.img.header.get_zooms()[:3]
    axes = geometry.input_axes([ax for ax in range(3) if ax != job.ras_axis], job.ornt)
    return float(zooms[axes[0]]), float(zooms[axes[1]])


def _voxel_check(job: _Job) -> tuple[str, str | None]:
    """The dry run's line on voxel size, and the warning (None when within tolerance/unknown)."""
    mine = _in_plane_voxel(job)
    trained = job.protocol.in_plane_voxel_mm
    if trained is None:
        return (f"training in-plane voxel size unknown (no protocol in a training manifest): "
                f"input {_fmt(mine)} mm not checked"), None
    off = max(abs(a / b - 1) for a, b in zip(sorted(mine), sorted(trained)))
    line = (f"input in-plane {_fmt(mine)} mm vs training {_fmt(trained)} mm "
            f"({job.protocol.manifest}): {off:.0%} off")
    if off <= VOXEL_TOLERANCE:
        return line + ", within 30%", None
    scale = job.model.scale
    return line, (f"{job.in_path}: in-plane voxel {_fmt(mine)} mm is {off:.0%} off the "
                  f"training slices' {_fmt(trained)} mm (more than 30%): the network learnt x{scale} "
                  f"detail at that resolution, so expect less gain and possible artefacts; "
                  f"resampling to about {_fmt(trained)} mm first matches the training data")


def _size_check(job: _Job) -> str | None:
    _, height, width = job.slice_shape
    patch = job.protocol.lr_patch
    floor, what = (patch, f"the {patch}x{patch} px LR patches it was trained on") if patch else (
        SMALL_SLICE, f"{SMALL_SLICE} px (the context the tiling gives each pixel)")
    if min(height, width) >= floor:
        return None
    return (f"{job.in_path}: slices of {height}x{width} px are smaller than {what}; the "
            "convolutions' zero padding reaches most of each slice, so expect weaker results")


def _prepare(args: argparse.Namespace) -> _Job:
    """Check every argument, file and path and decide everything, before any work."""
    device = check_device(args.device)
    out_path, in_path = Path(args.output), Path(args.input)
    img, data = load_volume(in_path, args.volume_index)
    klass = output_class(img, out_path)
    out_dtype, dtype_why = output_dtype(args.dtype, data.dtype, klass)
    input_files = [Path(h.filename) for h in img.file_map.values() if h.filename]
    files = output.plan_outputs(out_path, klass, input_files)
    model = load_model_info(args.weights, args.opt)
    proto = training_protocol(model.options, model.options_path, model.scale)
    plane, plane_why = _choose_plane(args, proto)
    try:
        ras_axis = planes.slice_axis(plane, img.affine, img.header.get_zooms()[:3])
    except ValueError as err:
        raise InferenceError(f"{in_path}: {err}") from err
    ornt = geometry.canonical_ornt(img.affine)
    scales = [1] * 3
    for ax in geometry.input_axes([ax for ax in range(3) if ax != ras_axis], ornt):
        scales[ax] = model.scale
    percentile, percentile_why = _choose_percentile(args, proto)
    max_pixels = (args.max_pixels if args.max_pixels is not None else
                  auto_max_pixels(device, model.scale, args.self_ensemble))
    job = _Job(in_path=in_path, img=img, data=data, files=files, klass=klass, out_dtype=out_dtype,
               dtype_why=dtype_why, model=model, protocol=proto, plane=plane,
               plane_why=plane_why, ras_axis=ras_axis, ornt=ornt, scales=scales,
               percentile=percentile, percentile_why=percentile_why, windows=[],
               plan=TilePlan(batch=1), max_pixels=max_pixels,
               bf16=device_caps.resolve_bf16(args.bf16, device), device=device, warnings=[])
    _, height, width = job.slice_shape
    batch = args.batch if args.batch is not None else (CPU_BATCH if device.type == "cpu" else None)
    job.plan = plan_tiles(height, width, batch, max_pixels=max_pixels, tile=args.tile,
                          overlap=args.tile_overlap)
    volumes = job.volumes
    for i, vol in enumerate(volumes):
        where = in_path if len(volumes) == 1 else f"{in_path} volume {i}"
        try:
            job.windows.append(volume_window(vol, percentile))
        except InferenceError as err:
            raise InferenceError(f"{where}: {err}") from err
    job.warnings = [w for w in (_voxel_check(job)[1], _size_check(job)) if w]
    return job


def _record(job: _Job, args: argparse.Namespace, wall_seconds: float | None) -> dict[str, Any]:
    """The sidecar / ``--dry-run --json`` record (keys in docs/inference.md)."""
    n_slices, height, width = job.slice_shape
    n_volumes = len(job.windows)
    img, model = job.img, job.model
    return {
        "schema": provenance.SCHEMA,
        "tool": {"name": provenance.TOOL, "version": provenance.tool_version()},
        "created": provenance.now_utc(),
        "dry_run": bool(args.dry_run),
        "input": {"path": str(job.in_path.resolve()), "sha256": provenance.sha256_file(job.in_path),
                  "format": type(img).__name__, "shape": list(job.data.shape),
                  "voxel_mm": list(job.zooms(False)), "dtype": str(job.data.dtype),
                  "orientation": "".join(nib.aff2axcodes(img.affine)),
                  "volume_index": args.volume_index, "volumes": n_volumes},
        "output": {"path": str(job.files.image.resolve()), "files": [
                       str(p.resolve()) for p in job.files.image_files],
                   "sidecar": str(job.files.sidecar.resolve()), "format": job.klass.__name__,
                   "shape": list(job.out_shape), "voxel_mm": list(job.zooms(True)),
                   "dtype": str(job.out_dtype), "dtype_rule": job.dtype_why},
        "weights": {"path": str(model.weights.resolve()), "sha256": provenance.sha256_file(model.weights),
                    "params": model.params},
        "network": {"type": model.network_type, "scale": model.scale,
                    "parameters": sum(p.numel() for p in model.net.parameters())},
        "options": None if model.options_path is None else str(model.options_path.resolve()),
        "plane": {"name": job.plane, "why": job.plane_why, "ras_axis": job.ras_axis,
                  "anatomical": planes.plane_name(job.ras_axis), "slices": n_slices,
                  "slice_shape": [height, width]},
        "normalisation": {"percentile": job.percentile, "why": job.percentile_why,
                          "windows": [list(w) for w in job.windows]},
        "precision": "bf16" if job.bf16 else "fp32",
        "tiling": {"batch": job.plan.batch, "tile": job.plan.tile, "overlap": job.plan.overlap,
                   "max_pixels": job.max_pixels, "windows_per_slice": len(
                       job.plan.windows(height, width)[1]),
                   "forward_calls": n_volumes * job.plan.forward_calls(
                       n_slices, height, width, args.self_ensemble)},
        "self_ensemble": bool(args.self_ensemble),
        "device": device_caps.describe_device(job.device),
        "training": {"manifest": None if job.protocol.manifest is None else str(job.protocol.manifest),
                     "in_plane_voxel_mm": job.protocol.in_plane_voxel_mm,
                     "lr_patch": job.protocol.lr_patch},
        "warnings": job.warnings,
        "versions": provenance.package_versions(),
        "wall_seconds": wall_seconds,
    }


def _plan_text(job: _Job, args: argparse.Namespace, record: dict[str, Any]) -> str:
    img = job.img
    n_slices, height, width = job.slice_shape
    t = record["tiling"]
    tiling = ("whole slices" if job.plan.tile is None else
              f"{t['windows_per_slice']} tiles of {job.plan.tile} px (+{job.plan.overlap} px "
              "overlap) per slice")
    volumes = (f", volume {args.volume_index}" if args.volume_index is not None else
               f", all {len(job.windows)} volumes" if job.data.ndim == 4 else "")
    net = record["network"]
    return "\n".join([
        f"input   {job.in_path}: {type(img).__name__}, shape {_fmt(job.data.shape)}, voxel "
        f"{_fmt(job.zooms(False))} mm, {record['input']['orientation']}, {job.data.dtype}{volumes}",
        f"plane   {job.plane} ({job.plane_why}): {n_slices} slices of {height}x{width} "
        f"({planes.plane_name(job.ras_axis)}, RAS axis {job.ras_axis}), x{job.model.scale}",
        f"output  {job.files.image}: {job.klass.__name__}, shape {_fmt(job.out_shape)}, voxel "
        f"{_fmt(job.zooms(True))} mm, {job.dtype_why}; sidecar {job.files.sidecar}",
        f"network {net['type']}, {net['parameters'] / 1e6:.3f}M parameters ({job.model.params} of "
        f"{args.weights}; options {record['options'] or 'given'})",
        f"device  {record['device']}; bf16 {'on' if job.bf16 else 'off'}"
        f"{'' if args.bf16 is not None else ' (auto)'}"
        f"{'; x8 self-ensemble (8 calls per batch)' if args.self_ensemble else ''}",
        f"batches {t['forward_calls']} forward calls of <= {job.plan.batch} ({tiling}; max "
        f"{job.max_pixels} LR px per call)",
        f"intensity normalised per volume at percentile {job.percentile:g} ({job.percentile_why})",
        f"voxel   {_voxel_check(job)[0]}",
    ])


def _run_network(job: _Job, args: argparse.Namespace) -> np.ndarray:
    n_slices = job.slice_shape[0]
    volumes = job.volumes
    out = np.empty(job.out_shape, dtype=job.out_dtype) if job.data.ndim == 4 else None
    with tqdm(total=n_slices * len(volumes), unit="slice", desc="super-resolving", leave=False,
              disable=args.no_progress) as bar:
        for i, vol in enumerate(volumes):
            # the slices upright, as the network saw them in training (data.planes.DISPLAY)
            stack = planes.plane_stack(geometry.to_canonical(vol, job.ornt), job.ras_axis)
            try:
                sr = super_resolve_array(stack, job.model.net, job.model.scale,
                                         plane_axis=0, plan=job.plan,
                                         self_ensemble=args.self_ensemble, bf16=job.bf16,
                                         device=job.device, progress=bar, window=job.windows[i])
            except InferenceError as err:
                raise InferenceError(f"{job.in_path}: {err}") from err
            sr = planes.unplane_stack(sr, job.ras_axis)
            sr = to_output_dtype(geometry.from_canonical(sr, job.ornt), job.out_dtype)
            if out is None:
                return sr
            out[..., i] = sr
    return out


def _infer(args: argparse.Namespace) -> int:
    job = _prepare(args)
    if args.dry_run:
        record = _record(job, args, None)
        print(provenance.to_json(record) if args.json else _plan_text(job, args, record), end=""
              if args.json else "\n")
        return 0
    for message in job.warnings:
        _warn(message)
    start = time.perf_counter()
    sr = _run_network(job, args)
    description = (f"{provenance.tool_version()} x{job.model.scale} {job.plane} SR")
    out_img = geometry.sr_image(job.img, sr, job.scales, description=description, klass=job.klass)
    record = _record(job, args, None)
    record["wall_seconds"] = round(time.perf_counter() - start, 3)
    output.write_outputs(job.files, lambda path: nib.save(out_img, path), provenance.to_json(record))
    if args.json:
        print(provenance.to_json(record), end="")
    else:
        seconds = record["wall_seconds"]
        print(f"wrote {job.files.image}: shape {_fmt(job.out_shape)}, voxel "
              f"{_fmt(job.zooms(True))} mm, {job.out_dtype} ({seconds:.1f} s, "
              f"{seconds / (job.slice_shape[0] * len(job.windows)):.3f} s/slice); "
              f"provenance in {job.files.sidecar}")
    return 0


def run(args: argparse.Namespace) -> int:
    """``w2amsn infer``: 0 on success, 2 with one ``error:`` line for a user-caused problem,
    130 on Ctrl-C (nothing written)."""
    try:
        code = _infer(args)
        sys.stdout.flush()
        return code
    except InferenceError as err:
        print(f"w2amsn infer: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("w2amsn infer: interrupted; nothing was written", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `w2amsn infer --dry-run | head -3`: the reader has left
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the flush at exit does not fail again
        return 0
