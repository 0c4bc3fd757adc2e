#!/usr/bin/env python
"""Quality of ``w2amsn self-sr`` on an isotropic volume made thick: foreground PSNR/SSIM of
self-sr (mean and FBA of the two orientations, and one orientation alone) and of cubic B-spline
interpolation along the coarse axis, against the isotropic truth (docs/self-sr.md's table); with
``--in-plane-scale S``, the in-plane mode on the volume's slice plane made S times coarser, against
MATLAB-bicubic upsampling.

    python scripts/self_sr_quality.py --volume w2amsn_plugin/sample_data/mni152_2009a_t1.nii.gz \\
        --factor 4 --profile gaussian --work /tmp/q --figure docs/img/self-sr-mni152-x4.png
    python scripts/self_sr_quality.py --volume w2amsn_plugin/sample_data/mni152_2009a_t1.nii.gz \\
        --in-plane-scale 2 --work /tmp/q2

Appends one JSON line per run to ``--results`` (default: stdout only).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    from w2amsn_plugin.selfsr.in_plane import IN_PLANE_DEGRADATIONS

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--volume", type=Path, required=True, help="isotropic 3-D volume (the truth)")
    parser.add_argument("--factor", type=float, default=None,
                        help="slice spacing / voxel size (through-plane mode)")
    parser.add_argument("--in-plane-scale", type=int, default=None, metavar="S",
                        help="measure the in-plane mode instead: the slice plane made S times coarser "
                        "(--made-by), then self-sr --mode in-plane --scale S against bicubic")
    parser.add_argument("--made-by", choices=("block", "fourier"), default=None,
                        help="with --in-plane-scale: how the slices are made coarse, block means or "
                             "k-space truncation (a scanner's lower in-plane resolution) (default: block)")
    parser.add_argument("--degradation", choices=IN_PLANE_DEGRADATIONS, default=None,
                        help="with --in-plane-scale: the degradation self-sr trains on (its --degradation; "
                             "default: its default)")
    parser.add_argument("--profile", choices=("gaussian", "rect"), default=None,
                        help="profile the thick slices are made with (default: gaussian)")
    parser.add_argument("--assumed-profile", choices=("auto", "gaussian", "rect", "mixed"), default=None,
                        help="profile self-sr is told (its --profile; default: its default, auto)")
    parser.add_argument("--thickness", type=float, default=None, metavar="T",
                        help="slices T voxels of the truth thick (default: the factor; thinner leaves "
                             "a gap)")
    parser.add_argument("--assumed-thickness", type=float, default=None, metavar="MM",
                        help="slice thickness in mm self-sr is told (its --slice-thickness; default: "
                             "none told)")
    parser.add_argument("--axis", type=int, default=None, help="voxel axis made thick (default: 2)")
    parser.add_argument("--iters", type=int, default=None, help="training iterations (default: self-sr's)")
    parser.add_argument("--minutes", type=float, default=None,
                        help="wall-time budget instead of --iters (self-sr's --minutes)")
    parser.add_argument("--batch", type=int, default=None,
                        help="patches per iteration (default: the recipe's)")
    parser.add_argument("--lr", type=float, default=None, help="learning rate (default: the recipe's)")
    parser.add_argument("--gt-size", type=int, default=None,
                        help="training patch side in px (default: the recipe's)")
    parser.add_argument("--network", action="append", default=[], metavar="KEY=VALUE",
                        help="one W2AMSN option of the recipe's network (a YAML value), e.g. num_feat=32")
    parser.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=None,
                        help="bf16 autocast on or off (self-sr's --bf16/--no-bf16; default: where native)")
    parser.add_argument("--init", type=Path, default=None,
                        help="warm start from this W2AMSN checkpoint (self-sr's --init)")
    parser.add_argument("--work", type=Path, required=True, help="folder for the thick volume and the run")
    parser.add_argument("--results", type=Path, default=None, help="JSON-lines file to append to")
    parser.add_argument("--figure", type=Path, default=None, help="PNG: input, cubic, self-sr, truth")
    args = parser.parse_args(argv)
    if (args.factor is None) == (args.in_plane_scale is None):
        parser.error("give --factor (through-plane) or --in-plane-scale (in-plane), one of them")
    if args.figure and args.in_plane_scale:
        parser.error("--figure draws the through-plane view; not with --in-plane-scale")
    mode_only = {"--in-plane-scale": ("made_by", "degradation"),
                 "--factor": ("profile", "assumed_profile", "thickness", "assumed_thickness", "axis")}
    other = "--factor" if args.in_plane_scale else "--in-plane-scale"
    given = [name for name in mode_only[other] if getattr(args, name) is not None]
    if given:
        parser.error(f"--{given[0].replace('_', '-')} goes with {other}, not with the other mode")
    if args.thickness is not None and not args.thickness > 0:
        parser.error(f"--thickness must be positive, got {args.thickness}")

    import numpy as np
    import yaml

    from dataclasses import replace

    from w2amsn_plugin.selfsr import SelfSRSettings
    from w2amsn_plugin.selfsr.evaluation import evaluate_made_coarse_in_plane, evaluate_made_thick
    from w2amsn_plugin.selfsr.experiment import DEFAULT_RECIPE

    changes = {key: value for key, value in (("batch", args.batch), ("lr", args.lr),
                                             ("gt_size", args.gt_size)) if value is not None}
    if args.network:
        pairs = [item.partition("=") for item in args.network]
        if any(not sep for _, sep, _ in pairs):
            parser.error("--network takes KEY=VALUE")
        changes["network"] = {**DEFAULT_RECIPE.network,
                              **{key: yaml.safe_load(value) for key, _, value in pairs}}
    settings = SelfSRSettings(iters=args.iters, minutes=args.minutes,
                              profile=args.assumed_profile or SelfSRSettings.profile,
                              slice_thickness=args.assumed_thickness, init=args.init, bf16=args.bf16,
                              recipe=replace(DEFAULT_RECIPE, **changes), degradation=args.degradation)
    if args.in_plane_scale:
        result, views = evaluate_made_coarse_in_plane(args.volume, args.in_plane_scale, settings, args.work,
                                                      made_by=args.made_by or "block")
    else:
        result, views = evaluate_made_thick(args.volume, args.factor, args.profile or "gaussian", settings,
                                            args.work, 2 if args.axis is None else args.axis, args.thickness)
    line = json.dumps(result)
    print(line)
    if args.results:
        with open(args.results, "a", encoding="utf-8") as f:
            f.write(line + "\n")
    if args.figure:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from w2amsn_plugin.results.files import write_figure

        truth = views["truth"]
        vmax = float(np.percentile(truth, 99.5))
        fig, axes = plt.subplots(1, 4, figsize=(12, 4))
        titles = {"input": f"input ({args.factor:g} mm slices)",
                  "cubic": f"cubic ({result['cubic']['psnr_fg']:.2f} dB)",
                  "self_sr": f"self-sr ({result['self_sr']['psnr_fg']:.2f} dB)", "truth": "truth"}
        for ax, (name, title) in zip(axes, titles.items()):
            img = views[name]
            aspect = truth.shape[1] / img.shape[1]  # thick slices drawn tall: the truth's extent
            ax.imshow(np.rot90(img), cmap="gray", vmin=0, vmax=vmax, aspect=aspect,
                      interpolation="nearest")
            ax.set_title(title, fontsize=10)
            ax.axis("off")
        made = args.profile or "gaussian"
        fig.suptitle(f"{args.volume.name}: x{args.factor:g} {made} slices, through-plane view "
                     "(foreground PSNR of the whole volume)", fontsize=10)
        write_figure(fig, args.figure)
    return 0


if __name__ == "__main__":
    sys.exit(main())
