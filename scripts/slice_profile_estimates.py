#!/usr/bin/env python
"""The slice thickness ``w2amsn self-sr --profile auto`` estimates (docs/self-sr.md, "Estimating
the slice profile") for isotropic volumes made thick with known profiles: one line per volume and
profile, the estimate as a fraction of the slice spacing and what ``auto`` trains with. Nothing is
trained; each estimate goes through the command's own plan (:func:`w2amsn_plugin.selfsr.plan_run`).

    python scripts/slice_profile_estimates.py --volume w2amsn_plugin/sample_data/mni152_2009a_t1.nii.gz \\
        --factor 4 --made gaussian:4 rect:4 gaussian:2 [--noise 0.03] [--axis 2]

``--made KIND:T``: slices made with a ``gaussian`` (FWHM T voxels of the truth) or ``rect`` (width
T) profile, ``--factor`` voxels apart; ``--noise SD``: Rician noise of that SD (a fraction of the
volume's 99.5th percentile) added to the thick volume.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--volume", type=Path, required=True, help="isotropic 3-D volume")
    parser.add_argument("--factor", type=float, required=True, help="slice spacing / voxel size")
    parser.add_argument("--made", nargs="+", default=["gaussian:F", "rect:F"], metavar="KIND:T",
                        help="profiles to make the slices with (T in voxels; F: the factor)")
    parser.add_argument("--noise", type=float, default=0.0, help="Rician noise SD (default: none)")
    parser.add_argument("--axis", type=int, default=2, help="voxel axis made thick (default: 2)")
    args = parser.parse_args(argv)

    import nibabel as nib
    import numpy as np

    from w2amsn_plugin.data.augment import rician_noise
    from w2amsn_plugin.selfsr import SelfSRSettings, plan_run
    from w2amsn_plugin.selfsr.evaluation import make_thick

    img = nib.load(args.volume)
    truth = img.get_fdata(dtype=np.float32)
    rng = np.random.default_rng(0)
    for made in args.made:
        kind, _, thickness = made.partition(":")
        if kind not in ("gaussian", "rect") or not thickness:
            parser.error(f"--made takes gaussian:T or rect:T, got {made!r}")
        t = args.factor if thickness == "F" else float(thickness)
        thick = make_thick(truth, img.affine, args.axis, args.factor, kind, t)
        data = thick.data
        if args.noise:
            sd = args.noise * float(np.percentile(truth, 99.5))
            data = rician_noise(data, sd, rng)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "thick.nii.gz"
            nib.save(nib.Nifti1Image(data.astype(np.float32), thick.affine), path)
            plan = plan_run(path, Path(tmp) / "out.nii.gz", SelfSRSettings(iters=1))
        e, spacing = plan.profile_estimate, plan.geometry.spacing[plan.axis]
        found = "none" if e is None else f"{e.fraction:.2f} of the spacing (misfit {e.misfit_db:.2f} dB)"
        print(f"{args.volume.name} axis {args.axis} x{args.factor:g}, {kind} {t / args.factor:.2f} of the "
              f"spacing, noise {args.noise:g}: estimate {found}; auto trains with FWHM "
              f"{plan.profile.thickness / spacing:.2f} of the spacing", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
