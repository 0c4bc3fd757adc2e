"""Everything decided before the network runs, and why: the plane, the scales per voxel axis, the
intensity windows, the output type, the tile plan, the device, and the warnings about the input
(voxel size, slice size) (docs/inference.md). :func:`make_plan` checks every choice and the input
and raises one-line :class:`InferenceError` for anything wrong; it needs no network, so
``w2amsn infer --dry-run`` builds none."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
import torch

from .. import device_caps
from ..data import planes
from ..data.normalization import intensity_window
from . import geometry
from .devices import check_device
from .errors import InferenceError
from .loading import ModelSpec
from .output import OutputFiles
from .protocol import TrainingProtocol, training_protocol
from .settings import CPU_BATCH, DEFAULT_PERCENTILE, DEFAULT_TILE_OVERLAP, InferenceSettings
from .tiling import TilePlan, auto_max_pixels, plan_tiles
from .volumes import output_dtype

__all__ = ["VOXEL_TOLERANCE", "SMALL_SLICE", "InferencePlan", "choose_plane", "volume_window",
           "voxel_check", "make_plan", "fmt"]

#: relative difference of in-plane voxel size from the training data's that draws a warning
VOXEL_TOLERANCE = 0.30
#: slices narrower than this (LR px) draw a warning when the training patch size is unknown: the
#: context a tile gets on each side (convolutions see zero padding within it)
SMALL_SLICE = DEFAULT_TILE_OVERLAP


def fmt(values) -> str:
    """``1x2.5x3``: numbers joined by ``x``."""
    return "x".join(f"{v:g}" for v in values)


@dataclass
class InferencePlan:
    """One run, decided: the input, the model (read, not built), every choice and why."""

    where: str  # the input as named in messages: its path, or "image"
    in_path: Path | None  # None for an image given in memory
    img: nib.spatialimages.SpatialImage
    data: np.ndarray
    klass: type
    out_dtype: np.dtype
    dtype_why: str
    model: ModelSpec
    protocol: TrainingProtocol
    plane: str
    plane_why: str
    ras_axis: int
    ornt: np.ndarray
    scales: list[int]
    percentile: float
    percentile_why: str
    windows: list[tuple[float, float]]
    tiles: TilePlan
    max_pixels: int
    bf16: bool
    device: torch.device
    settings: InferenceSettings
    started: float
    files: OutputFiles | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def volumes(self) -> list[np.ndarray]:
        """The 3-D volumes to super-resolve (one, or each of a 4-D series)."""
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
        """The input's voxel size (mm), or the output's when ``refined``."""
        zooms = self.img.header.get_zooms()[:3]
        return tuple(float(z) / (s if refined else 1) for z, s in zip(zooms, self.scales))

    def in_plane_voxel(self) -> tuple[float, float]:
        """The input's voxel size (mm) along the two axes of the chosen plane."""
        zooms = self.img.header.get_zooms()[:3]
        axes = geometry.input_axes([ax for ax in range(3) if ax != self.ras_axis], self.ornt)
        return float(zooms[axes[0]]), float(zooms[axes[1]])


def choose_plane(asked: str | None, proto: TrainingProtocol) -> tuple[str, str]:
    """The plane to super-resolve and why: ``asked`` when given; else the one anatomical plane
    the model was trained on, if it was trained on one only; else ``acquisition`` (the plane of
    the input's two finest axes, which a model trained on several planes, or on each volume's
    own acquisition plane, treats alike)."""
    if asked is not None:
        if asked not in planes.PLANES:
            raise InferenceError(f"--plane {asked}: choose from {', '.join(planes.PLANES)}")
        return asked, "--plane"
    trained = proto.planes or ()
    if len(trained) == 1 and trained[0] in planes.ANATOMICAL_PLANES:
        return trained[0], f"the model was trained on {trained[0]} slices only ({proto.plane_source})"
    default = planes.PLANES[0]
    if len(trained) > 1:
        return default, (f"default: the model was trained on {len(trained)} planes "
                         f"({', '.join(trained)}; {proto.plane_source})")
    if trained:
        return default, f"default: the model was trained on each volume's {trained[0]} plane " \
                        f"({proto.plane_source})"
    return default, "default: the training plane is unknown"


def _choose_percentile(asked: float | None, proto: TrainingProtocol) -> tuple[float, str]:
    if asked is not None:
        return asked, "--percentile"
    if proto.percentile is not None:
        return proto.percentile, f"the training manifest {proto.manifest}"
    return DEFAULT_PERCENTILE, "default: the training percentile is unknown"


def volume_window(volume: np.ndarray, percentile: float = DEFAULT_PERCENTILE
                  ) -> tuple[float, float]:
    """The intensity window ``(lo, hi)`` of a 3-D volume (training's normalisation), or a
    one-line :class:`InferenceError` (constant volume, NaN/inf, bad percentile)."""
    try:  # the values in memory order: the window does not depend on it, and a NIfTI volume
        # (Fortran order) is not copied into C order first
        return intensity_window(np.ravel(volume, order="K"), percentile)
    except ValueError as err:
        raise InferenceError(str(err)) from err


def voxel_check(plan: InferencePlan) -> tuple[str, str | None]:
    """The dry run's line on voxel size, and the warning (None when within
    :data:`VOXEL_TOLERANCE` or unknown), with the advice that fits a coarser or a finer input."""
    mine = plan.in_plane_voxel()
    trained = plan.protocol.in_plane_voxel_mm
    if trained is None:
        return (f"training in-plane voxel size unknown (no protocol in a training manifest): "
                f"input {fmt(mine)} mm not checked"), None
    ratios = [a / b for a, b in zip(sorted(mine), sorted(trained))]
    off = max(abs(r - 1) for r in ratios)
    line = (f"input in-plane {fmt(mine)} mm vs training {fmt(trained)} mm "
            f"({plan.protocol.manifest}): {off:.0%} off")
    if off <= VOXEL_TOLERANCE:
        return line + f", within {VOXEL_TOLERANCE:.0%}", None
    scale = plan.model.scale
    head = (f"{plan.where}: in-plane voxel {fmt(mine)} mm is {off:.0%} off the training slices' "
            f"{fmt(trained)} mm (more than {VOXEL_TOLERANCE:.0%}): the network learnt x{scale} "
            "detail at that resolution")
    if min(ratios) < 1 - VOXEL_TOLERANCE:  # finer than the training data
        return line, (f"{head}; this input is already finer, so expect little gain. Do not "
                      "resample it coarser (that discards real detail): use it as it is, or a "
                      "model trained on data of about its voxel size")
    return line, (f"{head}, so expect less gain and possible artefacts; resampling to about "
                  f"{fmt(trained)} mm first matches the training data")


def _size_check(plan: InferencePlan) -> str | None:
    _, height, width = plan.slice_shape
    patch = plan.protocol.lr_patch
    floor, what = (patch, f"the {patch}x{patch} px LR patches it was trained on") if patch else (
        SMALL_SLICE, f"{SMALL_SLICE} px (the context the tiling gives each pixel)")
    if min(height, width) >= floor:
        return None
    return (f"{plan.where}: slices of {height}x{width} px are smaller than {what}; the "
            "convolutions' zero padding reaches most of each slice, so expect weaker results")


def make_plan(img: nib.spatialimages.SpatialImage, data: np.ndarray, model: ModelSpec,
              settings: InferenceSettings, klass: type, *, in_path: Path | None = None,
              started: float | None = None) -> InferencePlan:
    """Check every choice against the input and decide everything, before any work."""
    where = str(in_path) if in_path is not None else "image"
    if settings.threads is not None and settings.threads < 1:
        raise InferenceError(f"--threads {settings.threads}: must be at least 1")
    device = check_device(settings.device)
    out_dtype, dtype_why = output_dtype(settings.dtype, data.dtype, klass)
    proto = training_protocol(model.options, model.options_path, model.scale)
    plane, plane_why = choose_plane(settings.plane, proto)
    try:
        ras_axis = planes.slice_axis(plane, img.affine, img.header.get_zooms()[:3])
    except ValueError as err:
        raise InferenceError(f"{where}: {err}") from err
    ornt = geometry.canonical_ornt(img.affine)
    scales = [1] * 3
    for ax in geometry.input_axes([ax for ax in range(3) if ax != ras_axis], ornt):
        scales[ax] = model.scale
    percentile, percentile_why = _choose_percentile(settings.percentile, proto)
    max_pixels = (settings.max_pixels if settings.max_pixels is not None else
                  auto_max_pixels(device, model.scale, settings.self_ensemble))
    plan = InferencePlan(
        where=where, in_path=in_path, img=img, data=data, klass=klass, out_dtype=out_dtype,
        dtype_why=dtype_why, model=model, protocol=proto, plane=plane, plane_why=plane_why,
        ras_axis=ras_axis, ornt=ornt, scales=scales, percentile=percentile,
        percentile_why=percentile_why, windows=[], tiles=TilePlan(batch=1), max_pixels=max_pixels,
        bf16=device_caps.resolve_bf16(settings.bf16, device), device=device, settings=settings,
        started=time.perf_counter() if started is None else started)
    _, height, width = plan.slice_shape
    batch = settings.batch if settings.batch is not None else (
        CPU_BATCH if device.type == "cpu" else None)
    plan.tiles = plan_tiles(height, width, batch, max_pixels=max_pixels, tile=settings.tile,
                            overlap=settings.tile_overlap)
    volumes = plan.volumes
    for i, vol in enumerate(volumes):
        try:
            plan.windows.append(volume_window(vol, percentile))
        except InferenceError as err:
            raise InferenceError(f"{where}{'' if len(volumes) == 1 else f' volume {i}'}: "
                                 f"{err}") from err
    plan.warnings = [w for w in (voxel_check(plan)[1], _size_check(plan)) if w]
    return plan
