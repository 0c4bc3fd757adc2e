"""Whole-volume super-resolution as library calls: what ``w2amsn infer`` runs, for a script or a
notebook (docs/inference.md, "From Python").

- :func:`super_resolve_file` reads a volume, super-resolves it and writes the output and its JSON
  sidecar exactly as ``w2amsn infer`` does (the command is this call); it returns the image and
  the record.
- :func:`super_resolve_image` does the same to a nibabel image in memory and returns the
  super-resolved nibabel image (same voxels as the file route).
- :func:`plan_file` decides everything without building or running the network (``--dry-run``).

The slices of the chosen plane are taken upright in RAS+ space, as in training
(:mod:`w2amsn_plugin.data.planes`), normalised with the volume's window, run in batches
(:mod:`.engine`), put back in the input's voxel order, their edges fixed (:mod:`.edges`) and
converted to the output type; the output grid keeps the input's field of view (:mod:`.geometry`).
``weights`` is a checkpoint path or a model already read (:func:`.loading.read_model`) or loaded
(:func:`.loading.load_model_info`), so a notebook can load it once for many volumes. Settings are
:class:`.settings.InferenceSettings` fields, given as keywords.
"""
from __future__ import annotations

import contextlib
import time
import warnings as pywarnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import nibabel as nib
import numpy as np

from . import geometry, output, provenance
from .edges import EdgeFix, fix_edges
from .errors import InferenceError, InferenceWarning
from .loading import LoadedModel, ModelSpec, PathLike, read_model
from .planning import InferencePlan, make_plan
from .settings import InferenceSettings, settings_from
from .volumes import check_image, open_volume, output_class, read_voxels, to_output_dtype

__all__ = ["SuperResolved", "plan_file", "super_resolve_file", "super_resolve_image",
           "super_resolve_image_record"]

Weights = PathLike | ModelSpec | LoadedModel
Warn = Callable[[str], None]


@dataclass(frozen=True)
class SuperResolved:
    """A result: the image, its provenance record (the sidecar's content) and, for a file, where
    it was written."""

    image: nib.spatialimages.SpatialImage
    record: dict[str, Any]
    files: output.OutputFiles | None = None


def _warn_python(message: str) -> None:
    pywarnings.warn(message, InferenceWarning, stacklevel=3)


def _spec(weights: Weights, options: PathLike | Mapping[str, Any] | None
          ) -> tuple[ModelSpec, LoadedModel | None]:
    if isinstance(weights, LoadedModel):
        state = weights.net.state_dict()
        return ModelSpec(scale=weights.scale, options=weights.options,
                         options_path=weights.options_path, params=weights.params,
                         network_type=weights.network_type, weights=weights.weights,
                         state=state), weights
    if isinstance(weights, ModelSpec):
        return weights, None
    return read_model(weights, options), None


def plan_file(in_path: PathLike, out_path: PathLike, weights: Weights, *,
              options: PathLike | Mapping[str, Any] | None = None,
              settings: InferenceSettings | None = None, **overrides: Any) -> InferencePlan:
    """Everything :func:`super_resolve_file` would do, decided and checked (the input, the model's
    checkpoint and options, every setting, the output paths), without building the network."""
    started = time.perf_counter()
    settings = settings_from(settings, **overrides)
    in_path, out_path = Path(in_path), Path(out_path)
    img = open_volume(in_path)
    klass = output_class(img, out_path)
    input_files = [Path(h.filename) for h in img.file_map.values() if h.filename]
    files = output.plan_outputs(out_path, klass, input_files, settings.overwrite)
    model, _ = _spec(weights, options)
    data = read_voxels(img, in_path, settings.volume_index)
    plan = make_plan(img, data, model, settings, klass, in_path=in_path, started=started)
    plan.files = files
    return plan


@contextlib.contextmanager
def _threads(n: int | None) -> Iterator[None]:
    import torch

    if n is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _model(plan: InferencePlan, loaded: LoadedModel | None, warn: Warn) -> LoadedModel:
    """The network of ``plan`` built (any problem with the weights is raised here, before the
    work), then the plan's warnings."""
    from .loading import build_model

    model = loaded or build_model(plan.model)
    for message in plan.warnings:
        warn(message)
    return model


def _run(plan: InferencePlan, model: LoadedModel, warn: Warn
         ) -> tuple[np.ndarray, list[EdgeFix], list[str]]:
    """The network over every volume of ``plan``: the output array in the input's voxel order
    and type, what the edge fix did per volume, and the run's warnings."""
    from tqdm import tqdm

    from ..data import planes
    from .engine import super_resolve_array

    settings = plan.settings
    net = model.net
    n_slices = plan.slice_shape[0]
    volumes = plan.volumes
    out = np.empty(plan.out_shape, dtype=plan.out_dtype) if plan.data.ndim == 4 else None
    fixes, clipped = [], 0
    with _threads(settings.threads), tqdm(
            total=n_slices * len(volumes), unit="slice", desc="super-resolving", leave=False,
            disable=not settings.progress) as bar:
        for i, vol in enumerate(volumes):
            # the slices upright, as the network saw them in training (data.planes.DISPLAY)
            stack = planes.plane_stack(geometry.to_canonical(vol, plan.ornt), plan.ras_axis)
            try:
                sr = super_resolve_array(stack, net, plan.model.scale, plane_axis=0,
                                         plan=plan.tiles, self_ensemble=settings.self_ensemble,
                                         bf16=plan.bf16, device=plan.device, progress=bar,
                                         window=plan.windows[i])
            except InferenceError as err:
                raise InferenceError(f"{plan.where}: {err}") from err
            sr = np.ascontiguousarray(geometry.from_canonical(
                planes.unplane_stack(sr, plan.ras_axis), plan.ornt))
            fixes.append(fix_edges(sr, vol, plan.scales) if settings.edges else
                         EdgeFix(False, "turned off"))
            sr, n = to_output_dtype(sr, plan.out_dtype)
            clipped += n
            if out is None:
                out = sr
            else:
                out[..., i] = sr
    run_warnings = []
    if clipped:
        info = np.iinfo(plan.out_dtype)
        run_warnings.append(
            f"{plan.where}: {clipped} output voxels ({clipped / out.size:.2%}) were outside "
            f"{plan.out_dtype}'s range {info.min}..{info.max} and were clipped (--dtype "
            f"{settings.dtype}); --dtype float32 keeps them")
    for message in run_warnings:
        warn(message)
    return out, fixes, run_warnings


def _image(plan: InferencePlan, sr: np.ndarray) -> nib.spatialimages.SpatialImage:
    return geometry.sr_image(plan.img, sr, plan.scales, description=provenance.tool_tag(plan),
                             klass=plan.klass)


def super_resolve_file(in_path: PathLike, out_path: PathLike, weights: Weights, *,
                       options: PathLike | Mapping[str, Any] | None = None,
                       settings: InferenceSettings | None = None,
                       command_line: Sequence[str] | None = None, warn: Warn | None = None,
                       plan: InferencePlan | None = None, **overrides: Any) -> SuperResolved:
    """Super-resolve the volume at ``in_path`` into ``out_path`` (any format ``w2amsn infer``
    writes) and write its JSON sidecar beside it, exactly as ``w2amsn infer`` does.

    ``weights``: a BasicSR checkpoint (``options``: its YAML or a parsed mapping, default the
    experiment's YAML beside it) or a model already read or loaded. ``overrides``: fields of
    :class:`InferenceSettings` (``plane``, ``dtype``, ``device``, ``edges``, ``overwrite``, ...).
    ``command_line`` is recorded in the sidecar; warnings go to ``warn`` (default: Python's
    :mod:`warnings` as :class:`InferenceWarning`). ``plan``: one made by :func:`plan_file`
    (the other arguments then only supply ``weights`` when it is a loaded model).
    Raises :class:`InferenceError` (one line) for anything wrong, before any output is written;
    an existing output is refused unless ``overwrite=True``.
    """
    warn = warn or _warn_python
    if plan is None:
        plan = plan_file(in_path, out_path, weights, options=options, settings=settings,
                         **overrides)
    model = _model(plan, weights if isinstance(weights, LoadedModel) else None, warn)
    sr, fixes, run_warnings = _run(plan, model, warn)
    image = _image(plan, sr)
    record: dict[str, Any] = {}

    def sidecar() -> str:  # called once the image is written: wall time from reading to writing
        record.update(provenance.make_record(
            plan, dry_run=False, command_line=command_line, edges=fixes, warnings=run_warnings,
            wall_seconds=round(time.perf_counter() - plan.started, 3)))
        return provenance.to_json(record)

    files = plan.files
    assert files is not None, "plan_file plans the output files"
    output.write_outputs(files, lambda path: nib.save(image, path), sidecar,
                         plan.settings.overwrite)
    return SuperResolved(image, record, files)


def super_resolve_image(img: nib.spatialimages.SpatialImage, weights: Weights, *,
                        options: PathLike | Mapping[str, Any] | None = None,
                        settings: InferenceSettings | None = None, warn: Warn | None = None,
                        **overrides: Any) -> nib.spatialimages.SpatialImage:
    """Super-resolve a nibabel image in memory (NIfTI, Analyze or MGH, 3-D or 4-D) and return the
    super-resolved image: the voxels ``w2amsn infer`` would write for that image saved as a file,
    in the input's format (NIfTI-1 for Analyze). Arguments as :func:`super_resolve_file`."""
    return super_resolve_image_record(img, weights, options=options, settings=settings,
                                      warn=warn, **overrides).image


def super_resolve_image_record(img: nib.spatialimages.SpatialImage, weights: Weights, *,
                               options: PathLike | Mapping[str, Any] | None = None,
                               settings: InferenceSettings | None = None,
                               warn: Warn | None = None, **overrides: Any) -> SuperResolved:
    """:func:`super_resolve_image` with the provenance record (no paths in it)."""
    started = time.perf_counter()
    warn = warn or _warn_python
    settings = settings_from(settings, **overrides)
    check_image(img, "image")
    klass = type(img) if isinstance(img, (nib.Nifti1Pair, nib.MGHImage)) else nib.Nifti1Image
    model, loaded = _spec(weights, options)
    data = read_voxels(img, "image", settings.volume_index)
    plan = make_plan(img, data, model, settings, klass, started=started)
    sr, fixes, run_warnings = _run(plan, _model(plan, loaded, warn), warn)
    record = provenance.make_record(plan, dry_run=False, edges=fixes, warnings=run_warnings,
                                    wall_seconds=round(time.perf_counter() - started, 3))
    return SuperResolved(_image(plan, sr), record)

