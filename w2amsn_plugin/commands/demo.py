"""``w2amsn demo`` (the README's first command, ``bash scripts/demo.sh``): W²AMSN end to end on the
real MR sample shipped in the package (docs/demo.md).

``bash scripts/demo.sh [--quick] [--baselines] [--data DIR] [--workdir DIR]`` runs ``w2amsn demo``
after setting up the virtualenv. Steps, each through the same code a user runs on IXI:

1. the volumes are split with the seeded IXI split (one held out for testing): with the shipped
   sample, the MNI152 2009a template (IXI001) trains and Colin27 (IXI002) is held out; no slice of
   it is seen in training. The training volumes go into an IXI-named tree under
   ``datasets/demo/ixi``, with, for (near-)isotropic volumes, copies resliced so that their
   coronal and sagittal planes are sliced too (three planes of the anatomy);
2. ``make_ixi_lmdb`` (x2, MATLAB bicubic) into ``datasets/demo``; the test set
   (:mod:`w2amsn_plugin.data.demo_testset`: the held-out volume and copies that look like
   ordinary scans, each one test row) into ``datasets/demo/testset``;
3. ``basicsr train -opt options/demo/train_W2AMSN_demo_x2.yml --auto_resume`` (the demo's options
   files are written into the working directory from :mod:`w2amsn_plugin.experiments`; training
   patches are augmented on the fly, :mod:`w2amsn_plugin.data.augment`) (a second run resumes from
   the last state and, when training had finished, only re-tests);
4. ``basicsr test`` without and with x8 self-ensemble (W²AMSN and W²AMSN+);
5. ``results/demo/``: ``table.md`` (one row per test row and their mean, and Table III's layout),
   ``volumes.csv``, ``summary.json`` with the measured numbers and ``figure.png``;
6. with ``--baselines``: ``w2amsn baselines`` trains W²AMSN, 1-channel EDSR and RCAN of the
   same size for the same minutes each on the same data and tests them on the same rows
   (``results/demo/baselines/``).

``--quick`` is a 2-minute smoke version (a tiny network, a few iterations) used by the test
suite; its numbers are not meant to beat bicubic.
"""
from __future__ import annotations

import argparse
import math
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

__all__ = ["DEMO_SEED", "TARGET_GAIN_DB", "demo_sources", "build_demo_tree", "configure_parser", "run"]

#: split seed under which the shipped Colin27 (IXI002-Demo-0002) is the held-out test subject
DEMO_SEED = 0
#: the demo's target: mean foreground-PSNR gain over bicubic on the test rows (issue 15)
TARGET_GAIN_DB = 1.5
_SHIPPED = (("IXI001-Demo-0001", "mni152_2009a_t1"), ("IXI002-Demo-0002", "colin27_t1"))
_SHIPPED_TEST_LABEL = "Colin27"
#: resliced copies of an isotropic training volume: site suffix -> axis order of the RAS array
#: (the copy's axial slices are the source's coronal / sagittal slices)
_PLANE_COPIES = (("Coronal", (0, 2, 1)), ("Sagittal", (2, 1, 0)))


def _say(msg: str) -> None:
    print(f"[demo] {msg}", flush=True)


def demo_sources(data_dir: Path | None) -> list[tuple[str, Path]]:
    """``(IXI subject name, file)`` of every demo volume: the shipped pair, or every
    ``*.nii``/``*.nii.gz`` in ``data_dir`` (sorted by name) as ``IXI<n>-Demo-<n>``."""
    from ..data.samples import sample_path

    if data_dir is None:
        return [(subject, Path(sample_path(name))) for subject, name in _SHIPPED]
    files = sorted(p for p in Path(data_dir).iterdir()
                   if p.name.endswith((".nii", ".nii.gz")) and p.is_file())
    if len(files) < 2:
        raise SystemExit(f"demo: {data_dir}: needs at least two NIfTI volumes "
                         f"(one to train on, one to test on), found {len(files)}")
    return [(f"IXI{i + 1:03d}-Demo-{i + 1:04d}", f.resolve()) for i, f in enumerate(files)]


def _plane_copies(subject: str, src: Path, tree: Path, modality: str) -> list[Path]:
    """Write the resliced copies of an isotropic volume (:data:`_PLANE_COPIES`) into ``tree``
    (kept when newer than ``src``); none for an anisotropic volume."""
    import nibabel as nib

    from ..data.ixi import load_canonical, open_volume

    img, _ = open_volume(src)
    zooms = [float(z) for z in img.header.get_zooms()[:3]]
    if max(zooms) > 1.1 * min(zooms):
        return []
    number, site, session = subject[3:].split("-")
    out, data, dtype = [], None, img.get_data_dtype()
    for suffix, axes in _PLANE_COPIES:
        path = tree / f"IXI{number}-{site}{suffix}-{session}-{modality}.nii.gz"
        if not (path.is_file() and path.stat().st_mtime >= src.stat().st_mtime):
            if data is None:
                data, _ = load_canonical(src)
            arr = np.transpose(data, axes)
            whole = np.issubdtype(dtype, np.integer) and np.array_equal(arr, np.round(arr))
            arr = arr.astype(dtype if whole else np.float32)
            tmp = path.with_name(".tmp-" + path.name)
            nib.save(nib.Nifti1Image(arr, np.diag([*(zooms[a] for a in axes), 1.0])), tmp)
            tmp.rename(path)
        out.append(path)
    return out


def build_demo_tree(tree: Path, modality: str, sources: Sequence[tuple[str, Path]],
                    planes: bool) -> list[Path]:
    """The training tree: a link per ``(subject, file)`` under its IXI name, plus the resliced
    copies when ``planes``; anything else named like an IXI volume is removed. Returns the files
    (sorted)."""
    tree.mkdir(parents=True, exist_ok=True)
    wanted = []
    for subject, src in sources:
        ext = ".nii.gz" if str(src).endswith(".gz") else ".nii"
        link = tree / f"{subject}-{modality}{ext}"
        if link.is_symlink() or link.exists():
            if link.resolve() != Path(src).resolve():
                link.unlink()
        if not link.exists():
            link.symlink_to(src)
        wanted.append(link)
        if planes:
            wanted += _plane_copies(subject, Path(src), tree, modality)
    for stale in tree.glob("IXI*.nii*"):
        if stale not in wanted:
            stale.unlink()
    return sorted(wanted)


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


def _row_table(rows: list[dict[str, Any]], plain: str, plus: str, labels: dict[str, str]) -> tuple[str, list]:
    """Markdown table with one line per test row (subject) and the mean; also the rows as dicts."""
    by = {(r["subject"], r["method"]): r for r in rows}
    out, lines = [], []
    for subject in sorted({r["subject"] for r in rows}, key=lambda s: list(labels).index(s)
                          if s in labels else len(labels)):
        p, q = by.get((subject, plain)), by.get((subject, plus))
        if p is None:
            continue
        row = {"subject": subject, "what": labels.get(subject, ""), "n_slices": p["n_slices"],
               "bicubic_psnr_fg": p["bicubic_psnr_fg"], "bicubic_ssim_fg": p["bicubic_ssim_fg"],
               "w2amsn_psnr_fg": p["psnr_fg"], "w2amsn_ssim_fg": p["ssim_fg"],
               "gain_db": p["psnr_fg"] - p["bicubic_psnr_fg"],
               "plus_n_slices": q["n_slices"] if q else 0,
               "plus_gain_db": q["psnr_fg"] - q["bicubic_psnr_fg"] if q else math.nan}
        out.append(row)
    mean = {k: float(np.mean([r[k] for r in out])) for k in out[0] if k not in ("subject", "what")}
    head = ("| test row | what | Bicubic | W²AMSN | gain (dB) | W²AMSN+ gain (dB, x8 slices) |\n"
            "|:--|:--|--:|--:|--:|--:|\n")
    for r in out + [{"subject": "**mean**", "what": "", **mean}]:
        lines.append(f"| {r['subject']} | {r['what']} | "
                     f"{r['bicubic_psnr_fg']:.2f}/{r['bicubic_ssim_fg']:.4f} | "
                     f"{r['w2amsn_psnr_fg']:.2f}/{r['w2amsn_ssim_fg']:.4f} | {r['gain_db']:+.2f} | "
                     f"{r['plus_gain_db']:+.2f} |")
    return head + "\n".join(lines) + "\n", out + [{"subject": "mean", **mean}]


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
    parser.add_argument("--baselines", action="store_true",
                        help="also train 1-channel EDSR and RCAN of the same size for the same minutes "
                             "each and compare them with W²AMSN on the same test rows")
    parser.add_argument("--data", type=Path, default=None,
                        help="folder of NIfTI volumes to use instead of the shipped sample")
    parser.add_argument("--modality", default="T1", choices=["T1", "T2", "PD"],
                        help="modality label of --data volumes (default T1)")
    parser.add_argument("--workdir", type=Path, default=Path.cwd(),
                        help="where datasets/, experiments/ and results/ go (default: cwd)")


def _prepare(args: argparse.Namespace, work: Path, lmdb_root: Path, modality: str,
             quick: bool) -> tuple[list[str], str, list[str]]:
    """Steps 1-2: split, training tree and databases, test set. Returns (training subjects,
    held-out subject, test-set subjects)."""
    from ..data.demo_testset import build_test_set
    from ..data.prepare import PrepConfig, make_ixi_lmdb
    from ..data.split import split_subjects
    from ..experiments import DEMO_CROP, DEMO_TESTSET_DIR, demo_test_slice_mm, demo_uses_planes

    sources = dict(demo_sources(args.data))
    split = split_subjects(sources, n_train=len(sources) - 1, n_test=1, n_val=0, seed=DEMO_SEED,
                           what=str(args.data or "the shipped sample"))
    (held_out,) = split["test"]
    planes = demo_uses_planes(quick)
    _say(f"step 1/5: training tree of {', '.join(split['train'])}"
         + (" (+ coronal and sagittal reslicing)" if planes else "") + f"; held out: {held_out}")
    tree = build_demo_tree(lmdb_root / "ixi", modality, [(s, sources[s]) for s in split["train"]], planes)
    _say(f"step 2/5: make_ixi_lmdb ({len(tree)} training volumes, x2 bicubic, crop {DEMO_CROP}) "
         f"-> {lmdb_root}")
    prep = make_ixi_lmdb(PrepConfig(ixi_root=lmdb_root / "ixi", modality=modality, out=lmdb_root,
                                    scales=(2,), n_train=len(tree), n_test=0, n_val=0, seed=DEMO_SEED,
                                    plane="axial", crop=DEMO_CROP, workers=1), log=_say)
    label = _SHIPPED_TEST_LABEL if args.data is None else held_out
    _say(f"step 2/5: test set of {held_out} ({label}) -> {DEMO_TESTSET_DIR}")
    test_subjects = build_test_set(sources[held_out], label, modality, work / DEMO_TESTSET_DIR, DEMO_CROP,
                                   scale=2, slice_mm=demo_test_slice_mm(quick), log=_say)
    return prep.manifest["splits"]["train"], held_out, test_subjects


def _baselines(quick: bool, work: Path) -> dict[str, Any]:
    """Step 6: ``w2amsn baselines`` on the demo's data; returns its ``benchmark.json``."""
    import json

    from ..experiments import DEMO_BASELINE_MINUTES, demo_baseline_options, options_text, write_option_files

    texts, train, test = {}, [], []
    for label, (tr, te) in demo_baseline_options(quick).items():
        texts[f"demo/baselines/train_{label}.yml"] = options_text(tr, "w2amsn demo --baselines")
        texts[f"demo/baselines/test_{label}.yml"] = options_text(te, "w2amsn demo --baselines")
        train.append(str(work / "options" / f"demo/baselines/train_{label}.yml"))
        test.append(str(work / "options" / f"demo/baselines/test_{label}.yml"))
    write_option_files(texts, work / "options")
    out = work / "results" / "demo" / "baselines"
    budget = ["--iters", "10"] if quick else ["--minutes", f"{DEMO_BASELINE_MINUTES:g}"]
    _say(f"step 6/6: w2amsn baselines ({', '.join(Path(t).stem[6:] for t in train)}, "
         f"{budget[1]} {budget[0][2:]} each)")
    _run([sys.executable, "-m", "w2amsn_plugin.cli", "baselines", "--train-opts", *train,
          "--test-opts", *test, "--labels", *(Path(t).stem[6:] for t in train), *budget,
          "--workdir", str(work), "--out", str(out)],
         work)
    return json.loads((out / "benchmark.json").read_text())


def run(args: argparse.Namespace) -> int:
    """Run the demo; 0 when every step ran (whether or not the gain target was met)."""
    from ..data.demo_testset import VARIANTS
    from ..results.figures import demo_figure
    from ..results.files import write_csv, write_json, write_text
    from ..results.tables import read_volume_rows, table_iii_from_csvs

    work = args.workdir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    opts = _options(args.quick, work)
    train_opt = _read_yaml(opts["train"])
    lmdb_root = work / Path(train_opt["datasets"]["train"]["dataroot_gt"]).parent
    modality = args.modality if args.data is not None else "T1"
    timings: dict[str, float] = {}

    t0 = time.time()
    train_subjects, held_out, test_subjects = _prepare(args, work, lmdb_root, modality, args.quick)
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
    method_plain = test_opts["test"]["val"]["method_name"]
    method_plus = test_opts["test_plus"]["val"]["method_name"]
    labels = dict(zip(test_subjects, VARIANTS.values()))
    row_md, test_rows = _row_table(rows, method_plain, method_plus, labels)
    mean = test_rows[-1]
    weights = work / "experiments" / train_opt["name"] / "models" / "net_g_latest.pth"
    testset = work / Path(test_opts["test"]["datasets"]["test_1"]["dataroot_gt"]).parent
    fig = demo_figure(weights, opts["train"], testset, modality, test_subjects, out / "figure.png")
    gain, gain_plus = mean["gain_db"], mean["plus_gain_db"]
    summary = {
        "quick": args.quick, "modality": modality, "scale": 2,
        "train_subjects": train_subjects, "test_subject": held_out, "test_rows": test_rows,
        "network": train_opt["network_g"], "total_iter": train_opt["train"]["total_iter"],
        "augmentation": train_opt["datasets"]["train"].get("mr_augment"),
        "metrics": {"bicubic": _set_means(rows, method_plain, "bicubic_"),
                    "W2AMSN": _set_means(rows, method_plain), "W2AMSN+": _set_means(rows, method_plus)},
        "psnr_fg_gain_over_bicubic_db": gain, "psnr_fg_gain_plus_over_bicubic_db": gain_plus,
        "target_gain_db": TARGET_GAIN_DB, "target_met": bool(gain >= TARGET_GAIN_DB),
        "timings_s": {k: round(v, 1) for k, v in timings.items()},
        "figure_slices": fig,
        "weights": str(weights), "train_options": str(opts["train"]),
        "files": {"table": str(out / "table.md"), "csv": str(out / "volumes.csv"),
                  "figure": str(out / "figure.png"), "summary": str(out / "summary.json")},
    }
    header = (f"# W²AMSN demo: {modality} x2, trained on {', '.join(train_subjects)}, "
              f"tested on unseen {held_out} and its ordinary-scan copies\n\n"
              f"Foreground PSNR (dB)/SSIM per test row; gain = W²AMSN - bicubic (the W²AMSN+ gain is on "
              f"the x8 test's every {test_opts['test_plus']['datasets']['test_1'].get('slice_step', 1)}-th "
              f"slice, against bicubic on the same slices).\n\n")
    table = header + row_md + "\nAll rows together, Table III's layout:\n\n" + \
        table_iii_from_csvs(list(csvs.values()))
    if args.baselines:
        t0 = time.time()
        bench = _baselines(args.quick, work)
        timings["baselines_s"] = time.time() - t0
        summary["timings_s"]["baselines_s"] = round(timings["baselines_s"], 1)
        summary["baselines"] = {"rows": bench["rows"], "budget": bench["budget"], "files": bench["files"]}
        table += "\n## Baselines at the same budget\n\n" + \
            Path(bench["files"]["comparison.md"]).read_text(encoding="utf-8")
    write_text(out / "table.md", table)
    write_json(out / "summary.json", summary)
    print(table)
    verdict = "meets" if summary["target_met"] else "does NOT meet"
    _say(f"mean foreground PSNR gain over bicubic on the {len(test_rows) - 1} test rows: {gain:+.2f} dB "
         f"(W²AMSN), {gain_plus:+.2f} dB (W²AMSN+); {verdict} the {TARGET_GAIN_DB} dB target"
         + (" (quick mode: not expected to)" if args.quick else ""))
    for name, path in summary["files"].items():
        _say(f"{name:8s} {path}")
    _say(f"weights  {weights}")
    _say(f"try it on a whole volume: w2amsn infer --input <lr.nii.gz> --output sr.nii.gz --weights {weights}")
    return 0
