"""``w2amsn demo`` (the README's first command, ``bash scripts/demo.sh``): W²AMSN end to end on the
real MR sample shipped in the package.

``bash scripts/demo.sh [--quick] [--data DIR] [--workdir DIR]`` runs ``w2amsn demo`` after setting
up the virtualenv. Steps, each through the same code a user
runs on IXI:

1. an IXI-named tree of the sample volumes (or of the user's NIfTI folder) under
   ``datasets/demo/ixi``; with the shipped sample, the MNI152 2009a template (IXI001) is the
   training volume and Colin27 (IXI002) the test volume (the seeded split of step 2 puts it there;
   no slice of it is seen in training);
2. ``make_ixi_lmdb`` (x2, MATLAB bicubic) into ``datasets/demo``;
3. ``basicsr train -opt options/demo/train_W2AMSN_demo_x2.yml --auto_resume`` (the demo's options
   files are written into the working directory from :mod:`w2amsn_plugin.experiments`) (a second run
   resumes from the last state and, when training had finished, only re-validates);
4. ``basicsr test`` without and with x8 self-ensemble (W²AMSN and W²AMSN+);
5. ``results/demo/``: a Table-III-style ``table.md``, ``volumes.csv``, ``summary.json`` with the
   measured numbers and ``figure.png`` (LR, bicubic, W²AMSN, HR and the error map, zoomed).

``--quick`` is a 2-minute smoke version (a tiny network, a few iterations, fewer slices) used by
the test suite; its numbers are not meant to beat bicubic.
"""
from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

__all__ = ["DEMO_SEED", "build_demo_tree", "configure_parser", "run"]

#: split seed under which the shipped Colin27 (IXI002-Demo-0002) is the test subject
DEMO_SEED = 0
_SHIPPED = (("IXI001-Demo-0001", "mni152_2009a_t1"), ("IXI002-Demo-0002", "colin27_t1"))


def _say(msg: str) -> None:
    print(f"[demo] {msg}", flush=True)


def build_demo_tree(tree: Path, modality: str, data_dir: Path | None) -> list[Path]:
    """Link the demo volumes into ``tree`` under IXI names; return the links (sorted).

    Without ``data_dir`` the shipped sample is used; otherwise every ``*.nii``/``*.nii.gz`` in
    ``data_dir`` (sorted by name) becomes subject ``IXI<n>-Demo-<n>``.
    """
    from ..data.samples import sample_path

    if data_dir is None:
        sources = [(subject, sample_path(name)) for subject, name in _SHIPPED]
    else:
        files = sorted(p for p in Path(data_dir).iterdir()
                       if p.name.endswith((".nii", ".nii.gz")) and p.is_file())
        if len(files) < 2:
            raise SystemExit(f"demo: {data_dir}: needs at least two NIfTI volumes "
                             f"(one to train on, one to test on), found {len(files)}")
        sources = [(f"IXI{i + 1:03d}-Demo-{i + 1:04d}", f.resolve()) for i, f in enumerate(files)]
    tree.mkdir(parents=True, exist_ok=True)
    links = []
    for subject, src in sources:
        ext = ".nii.gz" if str(src).endswith(".gz") else ".nii"
        link = tree / f"{subject}-{modality}{ext}"
        if link.is_symlink() or link.exists():
            if link.resolve() == Path(src).resolve():
                links.append(link)
                continue
            link.unlink()
        link.symlink_to(src)
        links.append(link)
    return sorted(links)


def _run(cmd: Sequence[str], cwd: Path) -> None:
    _say("$ " + " ".join(str(c) for c in cmd))
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd)
    if proc.returncode != 0:
        raise SystemExit(f"demo: step failed (exit {proc.returncode}): {' '.join(map(str, cmd))}")


def _basicsr(verb: str, opt: Path, cwd: Path, *extra: str) -> None:
    _run([sys.executable, "-m", "w2amsn_plugin.cli", verb, "-opt", str(opt), *extra], cwd)


def _options(quick: bool, work: Path) -> dict[str, Path]:
    """Write the demo's options files under ``work/options`` (so the demo runs the same from a
    checkout and from an installed wheel) and return their paths."""
    from ..experiments import demo_option_files, demo_option_texts, write_option_files

    write_option_files(demo_option_texts(quick), work / "options")
    return {key: work / "options" / rel for key, rel in demo_option_files(quick).items()}


def _read_yaml(path: Path) -> dict:
    import yaml

    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


def _set_means(rows: list[dict[str, Any]], method: str, prefix: str = "") -> dict[str, float]:
    """Mean over volumes of each metric for ``method`` (``prefix='bicubic_'`` for bicubic)."""
    chosen = [r for r in rows if r["method"] == method]
    out = {}
    for metric in ("psnr_fg", "ssim_fg", "psnr", "ssim"):
        vals = [r[prefix + metric] for r in chosen if not math.isnan(r.get(prefix + metric, math.nan))]
        if vals:
            out[metric] = float(np.mean(vals))
    return out


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Options of ``w2amsn demo``."""
    parser.add_argument("--quick", action="store_true", help="2-minute smoke version")
    parser.add_argument("--data", type=Path, default=None,
                        help="folder of NIfTI volumes to use instead of the shipped sample")
    parser.add_argument("--modality", default="T1", choices=["T1", "T2", "PD"],
                        help="modality label of --data volumes (default T1)")
    parser.add_argument("--workdir", type=Path, default=Path.cwd(),
                        help="where datasets/, experiments/ and results/ go (default: cwd)")


def run(args: argparse.Namespace) -> int:
    """Run the demo; 0 when every step ran (whether or not the gain target was met)."""

    from ..data.prepare import PrepConfig, make_ixi_lmdb
    from ..experiments import DEMO_CROP
    from ..results.figures import demo_figure
    from ..results.files import write_csv, write_json, write_text
    from ..results.tables import read_volume_rows, table_iii_from_csvs

    work = args.workdir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    opts = _options(args.quick, work)
    train_opt = _read_yaml(opts["train"])
    crop = DEMO_CROP
    lmdb_root = work / Path(train_opt["datasets"]["train"]["dataroot_gt"]).parent
    modality = args.modality if args.data is not None else "T1"
    timings: dict[str, float] = {}

    t0 = time.time()
    _say(f"step 1/5: IXI-named tree of {'the shipped sample' if args.data is None else args.data}")
    links = build_demo_tree(lmdb_root / "ixi", modality, args.data)
    _say(f"step 2/5: make_ixi_lmdb ({len(links)} volumes, x2 bicubic, crop {crop}) -> {lmdb_root}")
    prep = make_ixi_lmdb(PrepConfig(ixi_root=lmdb_root / "ixi", modality=modality, out=lmdb_root,
                                    scales=(2,), n_train=len(links) - 1, n_test=1, n_val=0,
                                    seed=DEMO_SEED, crop=crop, plane="axial",
                                    workers=min(2, os.cpu_count() or 1)),
                         log=_say)
    split = prep.manifest["splits"]
    test_subject = split["test"][0]
    _say(f"train on {', '.join(split['train'])}; test on {test_subject} (never seen in training)")
    timings["data_prep_s"] = time.time() - t0

    t0 = time.time()
    _say(f"step 3/5: basicsr train ({train_opt['name']}, {train_opt['train']['total_iter']} iterations)")
    _basicsr("train", opts["train"], work, "--auto_resume")
    timings["train_s"] = time.time() - t0

    csvs, test_opts = {}, {}
    for key, label in (("test", "W²AMSN"), ("test_plus", "W²AMSN+ (x8 self-ensemble)")):
        t0 = time.time()
        _say(f"step 4/5: basicsr test, {label}")
        _basicsr("test", opts[key], work)
        test_opts[key] = test_opt = _read_yaml(opts[key])
        found = sorted((work / "results" / test_opt["name"]).glob("*_volumes.csv"))
        if not found:
            raise SystemExit(f"demo: basicsr test wrote no per-volume CSV under results/{test_opt['name']}")
        csvs[key] = found[-1]
        timings[f"{key}_s"] = time.time() - t0

    _say("step 5/5: summary")
    out = work / "results" / "demo"
    rows = [r for p in csvs.values() for r in read_volume_rows(p)]
    write_csv(out / "volumes.csv", rows)
    table = table_iii_from_csvs(list(csvs.values()))
    weights = work / "experiments" / train_opt["name"] / "models" / "net_g_latest.pth"
    fig = demo_figure(weights, opts["train"], lmdb_root, modality, test_subject, out / "figure.png")
    method_plain = test_opts["test"]["val"]["method_name"]
    method_plus = test_opts["test_plus"]["val"]["method_name"]
    bicubic = _set_means(rows, method_plain, "bicubic_")
    plain, plus = _set_means(rows, method_plain), _set_means(rows, method_plus)
    gain = plain.get("psnr_fg", math.nan) - bicubic.get("psnr_fg", math.nan)
    target = 1.5
    summary = {
        "quick": args.quick, "modality": modality, "scale": 2,
        "train_subjects": split["train"], "test_subject": test_subject,
        "network": train_opt["network_g"], "total_iter": train_opt["train"]["total_iter"],
        "metrics": {"bicubic": bicubic, "W2AMSN": plain, "W2AMSN+": plus},
        "psnr_fg_gain_over_bicubic_db": gain,
        "psnr_fg_gain_plus_over_bicubic_db": plus.get("psnr_fg", math.nan) - bicubic.get("psnr_fg", math.nan),
        "target_gain_db": target, "target_met": bool(gain >= target),
        "timings_s": {k: round(v, 1) for k, v in timings.items()},
        "figure_slice": fig,
        "weights": str(weights), "train_options": str(opts["train"]),
        "files": {"table": str(out / "table.md"), "csv": str(out / "volumes.csv"),
                  "figure": str(out / "figure.png"), "summary": str(out / "summary.json")},
    }
    header = (f"# W²AMSN demo: {modality} x2, trained on {', '.join(split['train'])}, "
              f"tested on unseen {test_subject}\n\n")
    write_text(out / "table.md", header + table)
    write_json(out / "summary.json", summary)
    print(header + table)
    verdict = "meets" if summary["target_met"] else "does NOT meet"
    _say(f"foreground PSNR gain over bicubic: {gain:+.2f} dB (W²AMSN), "
         f"{summary['psnr_fg_gain_plus_over_bicubic_db']:+.2f} dB (W²AMSN+); "
         f"{verdict} the {target} dB target" + (" (quick mode: not expected to)" if args.quick else ""))
    for name, path in summary["files"].items():
        _say(f"{name:8s} {path}")
    _say(f"weights  {weights}")
    _say(f"try it on a whole volume: w2amsn infer --input <lr.nii.gz> --output sr.nii.gz --weights {weights}")
    return 0

