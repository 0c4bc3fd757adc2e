"""``w2amsn infer``: super-resolve a whole MR volume with a trained model, the command line over
:func:`w2amsn_plugin.inference.super_resolve_file` (docs/inference.md).

Everything that can be wrong with the arguments, the input, the weights or the output paths is
checked before the network runs; each problem is one ``w2amsn infer: error:`` line on stderr and
exit status 2, Ctrl-C is one line and 130, and nothing is left at the output paths. Only the
library modules a step needs are imported, when it needs them (``--help`` imports none)."""
from __future__ import annotations

import argparse
import os
import sys

from ..inference.settings import (CPU_BATCH, DEFAULT_PERCENTILE, DEFAULT_TILE_OVERLAP, DEVICE_AUTO,
                                  DTYPE_CHOICES, InferenceSettings)

__all__ = ["configure_parser", "run"]

_PROG = "w2amsn infer"


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Options of ``w2amsn infer``."""
    add = parser.add_argument
    add("-i", "--input", required=True,
        help="LR volume: NIfTI-1/2 (.nii, .nii.gz, .hdr/.img), Analyze, MGH/MGZ")
    add("-o", "--output", help="SR volume to write (required): .nii, .nii.gz, .mgz, .mgh, "
        ".img/.hdr (the input's format where the name allows it); its .json sidecar goes beside it")
    add("--o", dest="output", help=argparse.SUPPRESS)  # so --o is not an ambiguous prefix
    add("-w", "--weights", required=True,
        help="BasicSR checkpoint, e.g. experiments/<name>/models/net_g_latest.pth")
    add("--options", metavar="YAML", default=None, help="options YAML with network_g and scale "
        "(default: the experiment's YAML next to the checkpoint)")
    add("--plane", default=None, help="plane of the slices to super-resolve: acquisition, axial, "
        "coronal or sagittal (default: acquisition, unless the model was trained on one "
        "anatomical plane only)")
    add("--volume-index", type=int, default=None, help="one volume of a 4-D file (default: all)")
    add("--percentile", type=float, default=None, help="normalisation percentile (default: the "
        f"training manifest's, else {DEFAULT_PERCENTILE:g})")
    add("--dtype", choices=DTYPE_CHOICES, default="auto", help="output voxel type (default auto: "
        "float32 for float input and integers under 16 bits, the input's type for wider integers)")
    add("--no-edges", dest="edges", action="store_false", help="keep the network's values at "
        "edges (default for a magnitude image: clamp to the input's range, background zeros kept)")
    add("--self-ensemble", action="store_true",
        help="x8 geometric self-ensemble (W²AMSN+): 8 passes at the same plan")
    add("--device", default=DEVICE_AUTO,
        help="auto (CUDA where there is one), cpu, cuda or cuda:N (default: %(default)s)")
    add("--threads", type=int, default=None, help="CPU threads (default: torch's)")
    add("--bf16", action=argparse.BooleanOptionalAction, default=None,
        help="bf16 autocast (default: only where the device computes it natively)")
    add("--batch", type=int, default=None, help="windows per forward call, at most "
        f"(default: {CPU_BATCH} on the CPU, the memory budget on CUDA)")
    add("--max-pixels", type=int, default=None, help="LR pixels per forward call; tiles beyond "
        "(default: 65536 on the CPU, from free memory on CUDA)")
    add("--tile", type=int, default=None,
        help="tile side in LR pixels, >= 8 (default: only when --max-pixels needs it)")
    add("--tile-overlap", type=int, default=DEFAULT_TILE_OVERLAP,
        help="LR context pixels around each tile (default: %(default)s)")
    add("-f", "--force", action="store_true", help="replace an existing output (default: refuse)")
    add("--dry-run", action="store_true",
        help="print what would be done and exit without running the network")
    add("--json", action="store_true",
        help="print the record as JSON (the plan with --dry-run; the sidecar after a run)")
    add("--no-progress", action="store_true",
        help="no progress bar (there is none when stderr is not a terminal)")
    add("-q", "--quiet", action="store_true", help="print only warnings and errors")
    add("--version", action="version", version=f"%(prog)s {_version()}")


def _version() -> str:
    from .. import __version__

    return f"(w2amsn_plugin {__version__})"


def _warn(message: str) -> None:
    print(f"{_PROG}: warning: {message}", file=sys.stderr, flush=True)


def _settings(args: argparse.Namespace) -> InferenceSettings:
    progress = not (args.no_progress or args.quiet or args.json) and sys.stderr.isatty()
    return InferenceSettings(
        plane=args.plane, volume_index=args.volume_index, percentile=args.percentile,
        dtype=args.dtype, self_ensemble=args.self_ensemble, edges=args.edges, device=args.device,
        bf16=args.bf16, batch=args.batch, max_pixels=args.max_pixels, tile=args.tile,
        tile_overlap=args.tile_overlap, threads=args.threads, progress=progress,
        overwrite=args.force)


def _infer(args: argparse.Namespace) -> int:
    from ..inference import pipeline, provenance
    from ..inference.errors import InferenceError

    if args.output is None:
        raise InferenceError("-o/--output is required (the SR volume to write)")
    command_line = ([os.path.basename(sys.argv[0]), *sys.argv[1:]] if sys.argv[1:2] == ["infer"]
                    else None)  # None when called from Python (tests), not from a shell
    plan = pipeline.plan_file(args.input, args.output, args.weights, options=args.options,
                              settings=_settings(args))
    if args.dry_run:
        record = provenance.make_record(plan, dry_run=True, command_line=command_line)
        if not args.quiet:
            print(provenance.to_json(record) if args.json else provenance.describe_plan(plan, record),
                  end="" if args.json else "\n")
        return 0
    result = pipeline.super_resolve_file(args.input, args.output, args.weights, plan=plan,
                                         command_line=command_line, warn=_warn)
    record = result.record
    if args.json:
        print(provenance.to_json(record), end="")
    elif not args.quiet:
        seconds, out = record["wall_seconds"], record["output"]
        slices = plan.slice_shape[0] * len(plan.windows)
        print(f"wrote {result.files.image}: shape {'x'.join(map(str, out['shape']))}, voxel "
              f"{'x'.join(f'{v:g}' for v in out['voxel_mm'])} mm, {out['dtype']} ({seconds:.1f} s "
              f"reading to writing, {seconds / slices:.3f} s/slice); provenance in "
              f"{result.files.sidecar}")
    return 0


def run(args: argparse.Namespace) -> int:
    """``w2amsn infer``: 0 on success, 2 with one ``error:`` line for a user-caused problem,
    130 on Ctrl-C (nothing written)."""
    from ..inference.errors import InferenceError

    try:
        code = _infer(args)
        sys.stdout.flush()
        return code
    except InferenceError as err:
        print(f"{_PROG}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{_PROG}: interrupted; nothing was written", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `w2amsn infer --dry-run | head -3`: the reader has left
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the flush at exit does not fail again
        return 0

