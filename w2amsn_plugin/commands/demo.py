"""``w2amsn demo`` (the README's first command, ``bash scripts/demo.sh``): W²AMSN end to end on the
real MR shipped in the package (docs/demo.md; the steps are :mod:`w2amsn_plugin.demo.pipeline`).

With the shipped sample, the MNI152 2009a template trains (its axial, coronal and sagittal
slices, augmented on the fly), Colin27 (another brain) chooses the checkpoint, and two single real
2 mm scans of other subjects, scanners and contrasts are the test rows; the headline is the mean
foreground-PSNR gain over bicubic on those rows. ``--data DIR`` uses a folder of NIfTI volumes
instead (the last validates, the one before it tests). ``--quick`` is a 2-minute smoke version (a
tiny network, a few iterations) used by the test suite; its numbers are not meant to beat bicubic.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from ..protocol import PAPER

__all__ = ["configure_parser", "run"]


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Options of ``w2amsn demo``."""
    parser.add_argument("--quick", action="store_true", help="2-minute smoke version")
    parser.add_argument("--baselines", action="store_true",
                        help="also train 1-channel EDSR and RCAN of the same size for the same minutes "
                             "each and compare them with W²AMSN on the same test rows")
    parser.add_argument("--data", type=Path, default=None,
                        help="folder of NIfTI volumes to use instead of the shipped sample (the last "
                             "validates, the one before it tests, the others train)")
    parser.add_argument("--modality", default="T1", choices=PAPER.modalities,
                        help="modality label of --data volumes (default T1)")
    parser.add_argument("--workdir", type=Path, default=Path.cwd(),
                        help="where datasets/, experiments/ and results/ go (default: cwd)")


def run(args: argparse.Namespace) -> int:
    """Run the demo; 0 when every step ran (whether or not the gain target was met)."""
    from ..demo.pipeline import run_demo
    from ..demo.sources import folder_sources, shipped_sources

    sources = shipped_sources() if args.data is None else folder_sources(args.data)
    modality = args.modality if args.data is not None else "T1"
    summary = run_demo(sources, args.workdir.resolve(), modality, args.quick, args.baselines)
    print(summary["table_markdown"])
    gain, plus = summary["psnr_fg_gain_over_bicubic_db"], summary["psnr_fg_gain_plus_over_bicubic_db"]
    verdict = "meets" if summary["target_met"] else "does NOT meet"
    n_rows = len(summary["test_rows"]) - 1
    print(f"[demo] mean foreground PSNR gain over bicubic on the {n_rows} test rows: {gain:+.2f} dB "
          f"(W²AMSN), {plus:+.2f} dB (W²AMSN+); {verdict} the {summary['target_gain_db']} dB target"
          + (" (quick mode: not expected to)" if args.quick else ""), flush=True)
    for name, path in summary["files"].items():
        print(f"[demo] {name:8s} {path}")
    print(f"[demo] weights  {summary['weights']}")
    print("[demo] try it on a whole volume: w2amsn infer --input <lr.nii.gz> --output sr.nii.gz "
          f"--weights {summary['weights']}")
    return 0
