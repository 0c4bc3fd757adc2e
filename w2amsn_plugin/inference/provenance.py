"""The provenance record of a super-resolved volume: the JSON sidecar written beside every output
(``sr.nii.gz`` -> ``sr.json``, in the spirit of BIDS derivatives), what ``--dry-run --json``
prints, and the plan in words that ``--dry-run`` prints. docs/inference.md lists the record's
keys; :data:`SCHEMA` names their version."""
from __future__ import annotations

import datetime
import json
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Any, Sequence

import nibabel as nib

from .. import device_caps
from ..data import planes
from ..results.files import sha256_file
from .edges import EdgeFix
from .planning import InferencePlan, fmt, voxel_check

__all__ = ["SCHEMA", "TOOL", "package_versions", "tool_version", "tool_tag", "now_utc", "to_json",
           "make_record", "describe_plan"]

SCHEMA = "w2amsn-infer/2"
TOOL = "w2amsn infer"
_PACKAGES = ("w2amsn_plugin", "torch", "basicsr", "nibabel", "numpy")


def _version(package: str) -> str:
    """The version of an imported package (its ``__version__``), else of its distribution."""
    module = sys.modules.get(package)
    if getattr(module, "__version__", None) is not None:
        return str(module.__version__)
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "unknown"


def package_versions() -> dict[str, str]:
    """Versions of the packages that shape a result, and Python's (nothing is imported for it)."""
    return {**{name: _version(name) for name in _PACKAGES}, "python": platform.python_version()}


def tool_version() -> str:
    """``w2amsn_plugin <version>``."""
    return f"w2amsn_plugin {_version('w2amsn_plugin')}"


def tool_tag(plan: InferencePlan) -> str:
    """The short tag appended to the output header's ``descrip``: ``w2amsn 0.1.0 x2 axial SR``."""
    return f"w2amsn {_version('w2amsn_plugin')} x{plan.model.scale} {plan.plane} SR"


def now_utc() -> str:
    """The current UTC time, ISO 8601 to the second."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def to_json(record: dict[str, Any]) -> str:
    """The record as indented JSON (paths and NumPy scalars as plain values)."""
    def plain(value: Any) -> Any:
        if isinstance(value, Path):
            return str(value)
        if hasattr(value, "item"):  # NumPy scalars
            return value.item()
        if hasattr(value, "tolist"):
            return value.tolist()
        raise TypeError(f"{type(value).__name__} is not JSON serialisable")

    return json.dumps(record, indent=1, default=plain) + "\n"


def _file(path: Path | None) -> dict[str, Any] | None:
    return None if path is None else {"path": str(path.resolve()), "sha256": sha256_file(path)}


def make_record(plan: InferencePlan, *, dry_run: bool, command_line: Sequence[str] | None = None,
                edges: Sequence[EdgeFix] | None = None, warnings: Sequence[str] = (),
                wall_seconds: float | None = None) -> dict[str, Any]:
    """The sidecar / ``--dry-run --json`` record (keys in docs/inference.md). ``warnings`` are
    those of the run (clipped voxels), after the plan's."""
    n_slices, height, width = plan.slice_shape
    n_volumes = len(plan.windows)
    img, model, settings, proto = plan.img, plan.model, plan.settings, plan.protocol
    files = plan.files
    return {
        "schema": SCHEMA,
        "tool": {"name": TOOL, "version": tool_version()},
        "created": now_utc(),
        "dry_run": dry_run,
        "command_line": None if command_line is None else list(command_line),
        "input": {**(_file(plan.in_path) or {"path": None, "sha256": None}),
                  "format": type(img).__name__, "shape": list(plan.data.shape),
                  "voxel_mm": list(plan.zooms(False)), "dtype": str(plan.data.dtype),
                  "orientation": "".join(nib.aff2axcodes(img.affine)),
                  "volume_index": settings.volume_index, "volumes": n_volumes},
        "output": {"path": None if files is None else str(files.image.resolve()),
                   "files": None if files is None else [str(p.resolve()) for p in files.image_files],
                   "sidecar": None if files is None else str(files.sidecar.resolve()),
                   "format": plan.klass.__name__, "shape": list(plan.out_shape),
                   "voxel_mm": list(plan.zooms(True)), "dtype": str(plan.out_dtype),
                   "dtype_rule": plan.dtype_why},
        "weights": {**_file(model.weights), "params": model.params},
        "network": {"type": model.network_type, "scale": model.scale, "values": model.values},
        "options": _file(model.options_path),
        "plane": {"name": plan.plane, "why": plan.plane_why, "ras_axis": plan.ras_axis,
                  "anatomical": planes.plane_name(plan.ras_axis), "slices": n_slices,
                  "slice_shape": [height, width]},
        "normalisation": {"percentile": plan.percentile, "why": plan.percentile_why,
                          "windows": [list(w) for w in plan.windows]},
        "edges": {"enabled": settings.edges,
                  "volumes": None if edges is None else [e.record() for e in edges]},
        "precision": "bf16" if plan.bf16 else "fp32",
        "tiling": {"batch": plan.tiles.batch, "tile": plan.tiles.tile,
                   "overlap": plan.tiles.overlap, "max_pixels": plan.max_pixels,
                   "windows_per_slice": len(plan.tiles.windows(height, width)[1]),
                   "forward_calls": n_volumes * plan.tiles.forward_calls(
                       n_slices, height, width, settings.self_ensemble)},
        "self_ensemble": settings.self_ensemble,
        "device": device_caps.describe_device(plan.device),
        "threads": settings.threads,
        "training": {"manifest": _file(proto.manifest), "planes": proto.planes,
                     "in_plane_voxel_mm": proto.in_plane_voxel_mm, "lr_patch": proto.lr_patch},
        "warnings": [*plan.warnings, *warnings],
        "versions": package_versions(),
        "wall_seconds": wall_seconds,
    }


def describe_plan(plan: InferencePlan, record: dict[str, Any]) -> str:
    """``w2amsn infer --dry-run``'s lines: what would be done, and why."""
    settings = plan.settings
    n_slices, height, width = plan.slice_shape
    t = record["tiling"]
    tiling = ("whole slices" if plan.tiles.tile is None else
              f"{t['windows_per_slice']} tiles of {plan.tiles.tile} px (+{plan.tiles.overlap} px "
              "overlap) per slice")
    volumes = (f", volume {settings.volume_index}" if settings.volume_index is not None else
               f", all {len(plan.windows)} volumes" if plan.data.ndim == 4 else "")
    net, files = record["network"], plan.files
    edges = ("clamped to the input's range, background kept at 0 (magnitude input)"
             if settings.edges and plan.data.min() >= 0 else
             "as the network gives them (" + ("--no-edges)" if not settings.edges else
                                              "the input has negative values)"))
    return "\n".join([
        f"input   {plan.where}: {type(plan.img).__name__}, shape {fmt(plan.data.shape)}, voxel "
        f"{fmt(plan.zooms(False))} mm, {record['input']['orientation']}, {plan.data.dtype}{volumes}",
        f"plane   {plan.plane} ({plan.plane_why}): {n_slices} slices of {height}x{width} "
        f"({planes.plane_name(plan.ras_axis)}, RAS axis {plan.ras_axis}), x{plan.model.scale}",
        f"output  {files.image if files else 'image'}: {plan.klass.__name__}, shape "
        f"{fmt(plan.out_shape)}, voxel {fmt(plan.zooms(True))} mm, {plan.dtype_why}"
        + (f"; sidecar {files.sidecar}" if files else ""),
        f"network {net['type']}, {net['values'] / 1e6:.3f}M values in {plan.model.params} of "
        f"{plan.model.weights} (options {plan.model.options_path or 'given'}; the weights are "
        "loaded into the network when it runs)",
        f"device  {record['device']}; bf16 {'on' if plan.bf16 else 'off'}"
        f"{'' if settings.bf16 is not None else ' (auto)'}"
        f"{f'; {settings.threads} threads' if settings.threads else ''}"
        f"{'; x8 self-ensemble (8 calls per batch)' if settings.self_ensemble else ''}",
        f"batches {t['forward_calls']} forward calls of <= {plan.tiles.batch} ({tiling}; max "
        f"{plan.max_pixels} LR px per call)",
        f"intensity normalised per volume at percentile {plan.percentile:g} ({plan.percentile_why})",
        f"edges   {edges}",
        f"voxel   {voxel_check(plan)[0]}",
    ])
