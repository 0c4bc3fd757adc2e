"""One self-sr run, end to end: read the scan, plan (geometry, profile, network, budget), train on
the scan's own slices through BasicSR, super-resolve, write the volume and its sidecar.

Through-plane mode (default; SMORE, Zhao et al., Magn. Reson. Imaging 2019 and IEEE TMI 2021):
the one-axis W²AMSN learns to undo the slice profile along an in-plane axis and is applied to the
two through-plane orientations (:mod:`.through_plane`), combined (:mod:`.combine`) and resampled
once onto the output grid (:mod:`.geometry`). In-plane mode (``--mode in-plane --scale S``): the
two-axis W²AMSN learns a degradation /S of the scan's own slices (zero-shot SR; MATLAB-bicubic,
k-space truncation or both, :mod:`.in_plane`) and is applied to the same slices, refining both
in-plane axes S times.
"""
from __future__ import annotations

import hashlib
import math
import os
import resource
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import torch
import yaml

from ..data.normalization import intensity_window
from .. import device_caps
from ..inference.devices import check_device
from ..inference.engine import super_resolve_volume
from ..inference.geometry import sr_image
from ..inference.errors import InferenceError
from ..inference.volumes import load_volume
from .budget import plan_minutes
from .combine import combine
from .errors import SelfSRError
from .experiment import DEFAULT_RECIPE, Recipe, self_sr_options
from .geometry import ScanGeometry, scan_geometry, voxel_spacings
from .in_plane import DEFAULT_DEGRADATION, IN_PLANE_DEGRADATIONS
from .profile_estimate import ProfileEstimate, auto_profile, estimate_slice_fwhm
from .scores import held_out_scores, in_plane_self_consistency, self_consistency
from .slice_profile import SliceProfile, load_profile
from .through_plane import super_resolve_orientations
from .trainer import train
from .training_pairs import resample_axis
from .warm_start import checkpoint_network

__all__ = ["MODES", "Plan", "SelfSRSettings", "plan_run", "run_self_sr"]

MODES = ("through-plane", "in-plane")
#: the through-plane mode's ``--profile`` choices (:func:`_profile`)
PROFILES = ("auto", "gaussian", "rect", "mixed")
#: acquired slices held out of training for validation (spread over the middle of the scan)
VAL_SLICES = 3


@dataclass(frozen=True)
class SelfSRSettings:
    """What the user asked for (``w2amsn self-sr``'s options)."""

    mode: str = "through-plane"
    scale: int | None = None
    slice_thickness: float | None = None
    #: ``'auto'``: a Gaussian whose FWHM is the slice thickness when told (``slice_thickness``),
    #: else the spacing or, below :data:`~.profile_estimate.AUTO_SNAP` of it, the scan's estimate
    #: (:mod:`.profile_estimate`); or one of the told shapes of :class:`SliceProfile`
    profile: str = "auto"
    profile_file: Path | None = None
    #: in-plane mode: how the slices are made coarser to train on (:mod:`.in_plane`; None:
    #: :data:`~.in_plane.DEFAULT_DEGRADATION`)
    degradation: str | None = None
    iters: int | None = None
    minutes: float | None = None
    init: Path | None = None
    device: str = "cpu"
    workdir: Path | None = None
    combine: str = "mean"
    bf16: bool | None = None
    recipe: Recipe = field(default_factory=lambda: DEFAULT_RECIPE)


@dataclass(frozen=True)
class Plan:
    """Everything decided before training (``--dry-run`` prints it)."""

    input: Path
    output: Path
    mode: str
    axis: int
    factor: float
    net_factor: int
    geometry: ScanGeometry | None
    #: the profile training uses (None in the in-plane mode, and for an ``auto`` profile planned
    #: without its data: ``plan_run(..., estimate=False)``)
    profile: SliceProfile | None
    #: the scan's own slice profile estimate (through-plane mode, when the data was read)
    profile_estimate: ProfileEstimate | None
    #: in-plane mode's degradation (None in the through-plane mode)
    degradation: str | None
    network: dict[str, Any]
    #: training iterations; None under a time budget (``minutes``: :func:`.budget.plan_minutes`)
    iterations: int | None
    minutes: float | None
    val_slices: list[int]
    workdir: Path
    name: str

    def to_json(self) -> dict[str, Any]:
        return {"input": str(self.input), "output": str(self.output), "mode": self.mode,
                "coarse_axis": self.axis, "factor": self.factor, "network_factor": self.net_factor,
                "geometry": self.geometry.to_json() if self.geometry else None,
                "slice_profile": self.profile.to_json() if self.profile else None,
                "slice_profile_estimate": self.profile_estimate.to_json() if self.profile_estimate else None,
                "degradation": self.degradation,
                "network": self.network,
                "iterations": self.iterations,
                "minutes": self.minutes,
                "val_slices": self.val_slices, "workdir": str(self.workdir), "experiment": self.name}


def say(msg: str) -> None:
    print(f"self-sr: {msg}", file=sys.stderr, flush=True)


def _read(path: Path) -> tuple[nib.spatialimages.SpatialImage, np.ndarray]:
    try:
        img, data = load_volume(path, None)
    except InferenceError as err:
        raise SelfSRError(str(err)) from err
    if data.ndim != 3:
        raise SelfSRError(f"{path}: expected a 3-D volume, got shape {data.shape} "
                          "(a 4-D series: extract one volume first)")
    return img, data


def _val_slices(n: int) -> list[int]:
    """:data:`VAL_SLICES` acquired slices spread over the middle 40 % of the scan."""
    if n < 6:
        return [n // 2]
    return sorted({int(round(z)) for z in np.linspace(0.3 * (n - 1), 0.7 * (n - 1), VAL_SLICES)})


def _normalised(data: np.ndarray, axis: int, path: Path) -> tuple[np.ndarray, float, float]:
    """``data`` (of the file ``path``) on its intensity window ``lo .. hi`` (to 0 .. 1), the
    coarse ``axis`` moved last; and ``lo``, ``hi``."""
    volume = np.asarray(data, dtype=np.float32)
    try:
        lo, hi = intensity_window(volume)
    except ValueError as err:  # constant, or not finite
        raise SelfSRError(f"{path}: {err}") from err
    return np.moveaxis((volume - np.float32(lo)) / np.float32(hi - lo), axis, 2), lo, hi


def _spacing(affine: np.ndarray, axis: int) -> list[float]:
    """Voxel sizes (mm) with the coarse ``axis`` last."""
    sizes = voxel_spacings(affine)
    return [float(sizes[ax]) for ax in range(3) if ax != axis] + [float(sizes[axis])]


def _profile(settings: SelfSRSettings, spacing: float, in_plane: float,
             estimate: ProfileEstimate | None) -> SliceProfile:
    """The profile training uses: a measured one (``--slice-profile``), else the told shape with
    the told thickness, else the spacing; ``auto``: a Gaussian, with the told thickness, else
    :func:`~.profile_estimate.auto_profile`'s."""
    if settings.profile_file is not None:
        return load_profile(settings.profile_file, in_plane)
    if settings.slice_thickness is not None:
        kind = "gaussian" if settings.profile == "auto" else settings.profile
        return SliceProfile(kind, float(settings.slice_thickness))
    if settings.profile == "auto":
        return auto_profile(estimate, spacing)
    return SliceProfile(settings.profile, float(spacing))


def plan_run(input_path: Path, output_path: Path, settings: SelfSRSettings,
             shape: tuple[int, ...] | None = None, affine: np.ndarray | None = None,
             data: np.ndarray | None = None, estimate: bool = True) -> Plan:
    """The :class:`Plan` of a run. Reads the header when ``shape``/``affine`` are not given, and
    in the through-plane mode the data (unless given as ``data``) to estimate the slice profile
    (:mod:`.profile_estimate`), which an ``auto`` profile trains with; ``estimate=False`` reads
    the header only (checking the arguments; an ``auto`` profile then stays unresolved)."""
    if settings.mode not in MODES:
        raise SelfSRError(f"--mode must be one of {MODES}, got {settings.mode!r}")
    if settings.profile not in PROFILES:
        raise SelfSRError(f"--profile must be one of {PROFILES}, got {settings.profile!r}")
    if settings.mode == "in-plane" and (settings.slice_thickness or settings.profile_file):
        raise SelfSRError("--slice-thickness/--slice-profile describe the slice axis: "
                          "through-plane mode only")
    if settings.mode == "through-plane" and settings.degradation is not None:
        raise SelfSRError("--degradation is for --mode in-plane (the through-plane mode's is --profile)")
    if shape is None or affine is None:
        if not input_path.is_file():
            raise SelfSRError(f"{input_path}: input file not found")
        try:
            img = nib.load(input_path)
        except Exception as err:  # nibabel raises many types for unreadable files
            raise SelfSRError(f"{input_path}: cannot read as an image ({type(err).__name__})") from err
        shape, affine = img.shape, img.affine
        if len(shape) == 4 and shape[3] == 1:  # one volume stored as 4-D, read as 3-D (read_voxels)
            shape = shape[:3]
    if len(shape) != 3:
        raise SelfSRError(f"{input_path}: expected a 3-D volume, got shape {tuple(shape)}")
    recipe = settings.recipe
    network = checkpoint_network(settings.init) if settings.init else dict(recipe.network)
    minutes = None if settings.iters else (settings.minutes or recipe.minutes)
    iterations = int(settings.iters or recipe.total_iter)
    if settings.mode == "through-plane":
        geo = scan_geometry(tuple(shape), affine, name=str(input_path))
        axis, factor, k, degradation = geo.axis, geo.factor, geo.net_factor, None
    else:
        scale = settings.scale
        if scale is None or int(scale) != scale or scale < 2:
            raise SelfSRError(f"--mode in-plane needs --scale S, an integer >= 2 (got {scale})")
        spacing = voxel_spacings(affine)
        # the slice axis: the largest spacing; among equal ones (an isotropic scan) the last axis
        axis = int(np.flatnonzero(spacing >= spacing.max() * (1 - 1e-3))[-1])
        degradation = settings.degradation or DEFAULT_DEGRADATION
        if degradation not in IN_PLANE_DEGRADATIONS:
            raise SelfSRError(f"--degradation must be one of {IN_PLANE_DEGRADATIONS}, got {degradation!r}")
        geo, factor, k = None, float(scale), int(scale)
        if min(s for ax, s in enumerate(shape) if ax != axis) < 8 * k:
            raise SelfSRError(f"{input_path}: slices of {tuple(shape)} are too small for x{k}")
    n_slices = shape[axis]
    if n_slices < 4:
        raise SelfSRError(f"{input_path}: {n_slices} slices along axis {axis}: too few to learn from")
    profile, found = None, None
    if geo is not None:
        if estimate:
            if data is None:
                data = _read(input_path)[1]
            found = estimate_slice_fwhm(_normalised(data, axis, input_path)[0], _spacing(affine, axis))
        unresolved = (not estimate and settings.profile == "auto" and settings.slice_thickness is None
                      and settings.profile_file is None)
        profile = None if unresolved else _profile(settings, geo.spacing[axis], geo.in_plane, found)
    # the experiment: the input, the settings and the profile they resolve to (not its name)
    trained = f"{replace(settings, profile='')}|{profile.to_json() if profile else None}"
    tag = hashlib.sha256(f"{input_path.resolve()}|{trained}".encode()).hexdigest()[:8]
    budget = f"{minutes:g}min" if minutes is not None else f"{iterations}it"
    name = (f"SelfSR_{'TP' if settings.mode == 'through-plane' else 'IP'}_W2AMSN_x{k}"
            f"_a{network['num_feat']}t{network['num_block']}_{budget}_B{recipe.batch}_{tag}")
    workdir = settings.workdir or output_path.parent / f".{output_path.name}.self-sr"
    return Plan(input_path, output_path, settings.mode, axis, factor, k, geo, profile, found, degradation,
                network, iterations if minutes is None else None, minutes, _val_slices(n_slices),
                Path(workdir).absolute(), name)  # absolute: BasicSR runs in the workdir


def _dataset_opt(plan: Plan, scan_file: Path, spacing: list[float]) -> dict[str, Any]:
    opt: dict[str, Any] = {"volume": str(scan_file), "spacing": spacing}
    if plan.mode == "in-plane":
        return {**opt, "degradation": plan.degradation}
    profile = plan.profile.to_json()
    fields = {"kind": profile["kind"], "thickness": profile["thickness_mm"]}
    if "samples" in profile:
        fields.update(samples=profile["samples"], sample_mm=profile["sample_mm"])
    return {**opt, "degradation": "slice_profile", "profile": fields}


def _load_net(options: dict[str, Any], weights: Path) -> torch.nn.Module:
    from basicsr.archs import build_network

    net = build_network(dict(options["network_g"]))
    state = torch.load(weights, map_location="cpu", weights_only=True)
    net.load_state_dict(state.get("params", state))
    return net.eval()


def _cpu_seconds() -> float:
    usage = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    return sum(u.ru_utime + u.ru_stime for u in usage)


def run_self_sr(input_path: Path, output_path: Path, settings: SelfSRSettings,
                progress: bool = True, estimates: list[np.ndarray] | None = None
                ) -> tuple[np.ndarray, dict[str, Any]]:
    """Train on the scan at ``input_path`` and return the super-resolved volume (in the input's
    axis order and units, float32) and its sidecar record; writes nothing but the workdir (the
    command writes the output). ``estimates``, when given, receives the two orientations'
    normalised estimates (coarse axis last, network grid) for comparing combinations."""
    t_start, cpu_start = time.perf_counter(), _cpu_seconds()
    device = str(check_device(settings.device))
    img, data = _read(input_path)
    plan = plan_run(input_path, output_path, settings, data.shape, img.affine, data)
    scan, lo, hi = _normalised(data, plan.axis, input_path)
    spacing = _spacing(img.affine, plan.axis)
    e = plan.profile_estimate
    if plan.mode == "through-plane":
        found = ("could not be measured" if e is None else
                 f"look {e.fwhm_mm:.2f} mm thick ({e.fraction:.2f} of the spacing, as a Gaussian's FWHM)"
                 if e.fits else f"fit no thickness (spectra {e.misfit_db:.1f} dB apart)")
        say(f"the scan's slices {found}; training with {plan.profile.kind} {plan.profile.thickness:.2f} mm")
    plan.workdir.mkdir(parents=True, exist_ok=True)
    scan_file = plan.workdir / "scan.npy"
    np.save(scan_file, np.ascontiguousarray(scan))
    dataset = _dataset_opt(plan, scan_file, spacing)
    one_axis = plan.mode == "through-plane"
    make = lambda iters, seconds=None: self_sr_options(  # noqa: E731
        plan.name, dataset, plan.val_slices, plan.net_factor, replace(settings.recipe, total_iter=iters),
        one_axis=one_axis, init=str(settings.init.resolve()) if settings.init else None,
        init_network=plan.network if settings.init else None,
        bf16="auto" if settings.bf16 is None else settings.bf16, num_gpu=int(device.startswith("cuda")),
        seconds=seconds)
    options_file = plan.workdir / f"{plan.name}.yml"
    seconds, resumed, step = None, False, None
    if plan.iterations is not None:
        options, expected = make(plan.iterations), plan.iterations
    elif options_file.is_file():  # a rerun resumes the schedule first planned
        options, resumed = yaml.safe_load(options_file.read_text(encoding="utf-8")), True
        seconds = options["train"]["scheduler"].get("seconds")  # none: planned as iterations
        expected = int(options["train"]["total_iter"])
    else:
        budget = plan_minutes(plan.minutes, make(1), scan.size * (2 if one_axis else 1), device,
                              spent=time.perf_counter() - t_start)
        seconds, expected, step = budget.seconds, budget.iterations, budget.step
        options = make(expected, seconds)
        say(f"{plan.minutes:g} minutes: {seconds / 60:.1f} min of training "
            f"(about {expected} iterations on this machine)")
    options_file.write_text(yaml.safe_dump(options, sort_keys=False), encoding="utf-8")
    length = f"{expected} iterations" if seconds is None else f"{seconds / 60:.1f} min of training"
    if resumed:
        say(f"resuming {plan.name} from its newest checkpoint: {length}, as first planned")
    say(f"{input_path.name}: {plan.mode}, axis {plan.axis}, factor {plan.factor:.3f} (network x"
        f"{plan.net_factor}), {length}; BasicSR run {plan.workdir / 'experiments' / plan.name}")
    t_train = time.perf_counter()
    weights, trained = train(options_file, plan.workdir, plan.name, progress,
                             timed=seconds is not None, seconds=None if resumed else seconds)
    iterations = trained if trained is not None else int(options["train"]["total_iter"])
    train_s = time.perf_counter() - t_train
    net = _load_net(options, weights)
    held_out = held_out_scores(net, {**options["datasets"]["val"]}, device)
    say(f"held-out slices: {held_out['psnr_fg']:.2f} dB fg PSNR "
        f"({held_out['gain_db']:+.2f} dB over {'cubic' if one_axis else 'bicubic'})")
    if one_axis:
        both = super_resolve_orientations(scan, net, plan.net_factor, device=device,
                                          bf16=settings.bf16, progress=progress)
        if estimates is not None:
            estimates.extend(both)
        fine = combine(both, settings.combine)
        sr = resample_axis(fine, 2, plan.geometry.out_len)
        consistency = self_consistency(sr, scan, plan.profile, plan.geometry.out_spacing)
        scales = [plan.geometry.out_len / scan.shape[2] if ax == plan.axis else 1.0 for ax in range(3)]
    else:
        k = plan.net_factor
        sr = super_resolve_volume(scan, net, k, plane_axis=2, device=device, bf16=settings.bf16,
                                  progress=progress)
        consistency = in_plane_self_consistency(sr, scan, k, plan.degradation)
        scales = [1.0 if ax == plan.axis else float(k) for ax in range(3)]
    out = np.moveaxis(sr, 2, plan.axis) * np.float32(hi - lo) + np.float32(lo)
    record = {
        "mode": plan.mode, "input_shape": list(data.shape), "output_shape": list(out.shape),
        "coarse_axis": plan.axis, "factor": plan.factor, "network_factor": plan.net_factor,
        "voxel_scales": scales,
        "slice_profile": plan.profile.to_json() if plan.profile else None,
        "slice_profile_estimate": plan.profile_estimate.to_json() if plan.profile_estimate else None,
        "degradation": plan.degradation,
        "geometry": plan.geometry.to_json() if plan.geometry else None,
        "combine": settings.combine if one_axis else None,
        "network": options["network_g"], "iterations": iterations, "budget_minutes": plan.minutes,
        "train_budget_seconds": seconds, "probe_step_seconds": step,
        "bf16": device_caps.resolve_bf16(settings.bf16, device),
        "init": str(settings.init) if settings.init else None,
        "intensity_window": [lo, hi], "val_slices": plan.val_slices,
        "held_out": held_out, "self_consistency_psnr_fg": consistency,
        "train_seconds": train_s, "total_seconds": time.perf_counter() - t_start,
        "cpu_seconds": _cpu_seconds() - cpu_start, "device": device, "threads": torch.get_num_threads(),
        "workdir": str(plan.workdir), "experiment": plan.name, "weights": str(weights),
        "options": str(options_file), "load_average": list(os.getloadavg()),
    }
    say(f"self-consistency {consistency:.2f} dB; {record['total_seconds'] / 60:.1f} min "
        f"({record['cpu_seconds'] / 60:.1f} CPU min)")
    return out.astype(np.float32), record


def output_image(ref: nib.spatialimages.SpatialImage, data: np.ndarray, scales: list[float]
                 ) -> nib.spatialimages.SpatialImage:
    """The output image: ``ref``'s header and orientation, the voxel grid refined by ``scales``
    (the field of view kept: :func:`~w2amsn_plugin.inference.geometry.sr_image`)."""
    if not all(math.isfinite(s) and s > 0 for s in scales):
        raise SelfSRError(f"bad voxel scales {scales}")
    return sr_image(ref, data, scales, description="w2amsn self-sr")
