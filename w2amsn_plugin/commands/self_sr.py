"""``w2amsn self-sr``: self-supervised super-resolution of one thick-slice scan along its coarse
axis (SMORE: Zhao et al., Magn. Reson. Imaging 2019, IEEE TMI 2021), or zero-shot in-plane SR
(``--mode in-plane --scale S``), trained on the scan itself; the command line over
:func:`w2amsn_plugin.selfsr.run_self_sr` (docs/self-sr.md).

Problems with the arguments, the input or the output path are one ``w2amsn self-sr: error:`` line
and exit 2 before any training; Ctrl-C is one line and 130; the output and its JSON sidecar are
published together (:mod:`w2amsn_plugin.inference.output`), never half-written.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

__all__ = ["configure_parser", "run"]

_PROG = "w2amsn self-sr"


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Options of ``w2amsn self-sr``."""
    from ..selfsr.experiment import DEFAULT_RECIPE
    from ..selfsr.in_plane import DEFAULT_DEGRADATION, IN_PLANE_DEGRADATIONS

    add = parser.add_argument
    add("-i", "--input", required=True, type=Path, help="the scan: any 3-D volume nibabel reads")
    add("-o", "--output", required=True, type=Path,
        help="volume to write (.nii, .nii.gz, .mgz, ...); its .json sidecar goes beside it")
    add("--mode", choices=("through-plane", "in-plane"), default="through-plane",
        help="through-plane: make the coarse axis as fine as the slice plane (default); "
        "in-plane: refine the slice plane --scale times")
    add("--scale", type=int, default=None, help="in-plane factor (--mode in-plane)")
    add("--degradation", choices=IN_PLANE_DEGRADATIONS, default=None,
        help="--mode in-plane: how the slices are made coarser to train on: MATLAB-bicubic, k-space "
        f"truncation (an MR scanner's smaller matrix), or both (default: {DEFAULT_DEGRADATION})")
    add("--slice-thickness", type=float, default=None, metavar="MM",
        help="slice thickness in mm; less than the spacing is a gap (default: the spacing, or with "
        "--profile auto the thickness estimated from the scan when clearly thinner)")
    add("--profile", choices=("auto", "gaussian", "rect", "mixed"), default="auto",
        help="slice profile: auto (a Gaussian with FWHM = the thickness; without --slice-thickness, "
             "the spacing or, when the scan's slices look clearly thinner, the thickness estimated "
             "from the scan), gaussian (FWHM = thickness), rect, or mixed (train on both shapes) "
             "(default: %(default)s)")
    add("--slice-profile", type=Path, default=None, metavar="FILE.npy",
        help="measured slice profile: a 1-D array sampled at the in-plane spacing, centred")
    add("--minutes", type=float, default=None, metavar="M",
        help=f"wall-time budget of the whole run (default: {DEFAULT_RECIPE.minutes:g}); training "
        "runs until its share of it is spent (a timing probe estimates the rest)")
    add("--iters", type=int, default=None, metavar="N",
        help="a fixed number of training iterations instead of the time budget")
    add("--init", type=Path, default=None, metavar="CKPT",
        help="warm start from any W²AMSN checkpoint (e.g. the demo's net_g_latest.pth)")
    add("--combine", choices=("mean", "fba"), default="mean",
        help="combination of the two through-plane orientations (default: %(default)s)")
    add("--device", default="cpu", help="cpu, cuda or cuda:N (default: %(default)s)")
    add("--bf16", action=argparse.BooleanOptionalAction, default=None,
        help="bf16 autocast (default: only where the device computes it natively)")
    add("--workdir", type=Path, default=None,
        help="BasicSR run folder (default: .<output name>.self-sr beside the output); "
        "rerunning with the same one resumes")
    add("-f", "--force", action="store_true", help="replace an existing output")
    add("--dry-run", action="store_true", help="print the plan as JSON and stop")


def _settings(args: argparse.Namespace):
    from ..selfsr import SelfSRError, SelfSRSettings

    for name in ("iters", "scale"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise SelfSRError(f"--{name} must be positive, got {value}")
    if args.minutes is not None and not args.minutes > 0:
        raise SelfSRError(f"--minutes must be positive, got {args.minutes}")
    if args.slice_thickness is not None and not args.slice_thickness > 0:
        raise SelfSRError(f"--slice-thickness must be positive, got {args.slice_thickness}")
    return SelfSRSettings(mode=args.mode, scale=args.scale, slice_thickness=args.slice_thickness,
                          profile=args.profile, profile_file=args.slice_profile, iters=args.iters,
                          minutes=args.minutes, init=args.init, device=args.device,
                          workdir=args.workdir, combine=args.combine, bf16=args.bf16,
                          degradation=args.degradation)


def _run(args: argparse.Namespace) -> int:
    import nibabel as nib

    from ..inference import output, provenance
    from ..inference.volumes import output_class
    from ..results.files import sha256_file
    from ..selfsr import plan_run, run_self_sr
    from ..selfsr.pipeline import output_image

    settings = _settings(args)
    plan = plan_run(args.input, args.output, settings, estimate=args.dry_run)
    if args.dry_run:
        print(json.dumps(plan.to_json(), indent=2))
        return 0
    ref = nib.load(args.input)
    files = output.plan_outputs(args.output, output_class(ref, args.output), [args.input],
                                overwrite=args.force)
    data, record = run_self_sr(args.input, args.output, settings)
    image = output_image(ref, data, record["voxel_scales"])
    record = {"schema": "w2amsn-self-sr/1", "tool": {"name": _PROG, "version": provenance.tool_version()},
              "command_line": sys.argv, "created": provenance.now_utc(),
              "input": {"path": str(args.input.resolve()), "sha256": sha256_file(args.input)},
              "output": str(args.output), **record, "packages": provenance.package_versions()}
    output.write_outputs(files, lambda path: nib.save(image, path), lambda: provenance.to_json(record),
                         overwrite=args.force)
    print(f"{_PROG}: wrote {args.output} {tuple(data.shape)} and {files.sidecar.name}: held-out "
          f"{record['held_out']['psnr_fg']:.2f} dB ({record['held_out']['gain_db']:+.2f} dB over "
          f"interpolation), self-consistency {record['self_consistency_psnr_fg']:.2f} dB",
          file=sys.stderr)
    return 0


def run(args: argparse.Namespace) -> int:
    """Run ``w2amsn self-sr``; 0 on success, 2 with one error line, 130 on Ctrl-C."""
    from ..inference.errors import InferenceError
    from ..selfsr import SelfSRError

    try:
        return _run(args)
    except (SelfSRError, InferenceError) as err:
        print(f"{_PROG}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{_PROG}: interrupted (Ctrl-C); rerun with the same --workdir to resume training",
              file=sys.stderr)
        return 130
