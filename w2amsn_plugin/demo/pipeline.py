"""The demo's steps (docs/demo.md), each through the code a user runs on IXI: the training tree
and ``make_ixi_lmdb``; the validation and test sets (:mod:`w2amsn_plugin.data.demo_testset`);
``basicsr train`` (the checkpoint chosen on the validation volume), ``basicsr test`` without and
with x8 self-ensemble; the results under ``results/demo``; with ``baselines``, ``w2amsn
baselines`` on the same data."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from .sources import DemoSources, build_demo_tree

__all__ = ["prepare_data", "run_demo"]


def _say(msg: str) -> None:
    print(f"[demo] {msg}", flush=True)


def _run(cmd: Sequence[Any], cwd: Path) -> None:
    _say("$ " + " ".join(str(c) for c in cmd))
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd)
    if proc.returncode != 0:
        raise SystemExit(f"demo: step failed (exit {proc.returncode}): {' '.join(map(str, cmd))}")


def _basicsr(verb: str, opt: Path, cwd: Path, *extra: str) -> None:
    _run([sys.executable, "-m", "w2amsn_plugin.cli", verb, "-opt", opt, *extra], cwd)


def _read_yaml(path: Path) -> dict:
    import yaml

    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


def prepare_data(sources: DemoSources, work: Path, lmdb_root: Path, modality: str, quick: bool,
                 log: Callable[[str], None] = _say) -> list[str]:
    """Training tree and databases, validation and test sets; returns the training subjects."""
    from ..data.demo_testset import build_slice_set
    from ..data.prepare import PrepConfig, make_ixi_lmdb
    from ..experiments import (DEMO_CROP, DEMO_TESTSET_DIR, DEMO_VALSET_DIR, demo_test_slice_mm,
                               demo_uses_planes)

    planes = demo_uses_planes(quick)
    tree = build_demo_tree(lmdb_root / "ixi", modality, sources.train, planes)
    log(f"step 1/5: make_ixi_lmdb ({len(tree)} training volumes"
        + (", with coronal and sagittal reslicing" if planes else "") + f", x2 bicubic) -> {lmdb_root}")
    prep = make_ixi_lmdb(PrepConfig(ixi_root=lmdb_root / "ixi", modality=modality, out=lmdb_root,
                                    scales=(2,), n_train=len(tree), n_test=0, n_val=0, seed=0,
                                    plane="axial", crop=DEMO_CROP, workers=1), log=log)
    slice_mm = demo_test_slice_mm(quick)
    for split, scans, where in (("val", sources.val, DEMO_VALSET_DIR),
                                ("test", sources.test, DEMO_TESTSET_DIR)):
        log(f"step 1/5: {split} set of {', '.join(s.subject for s in scans)} -> {where}")
        build_slice_set(scans, modality, split, work / where, DEMO_CROP, 2, slice_mm, log)
    return prep.manifest["splits"]["train"]


def _baselines(quick: bool, work: Path) -> dict[str, Any]:
    """``w2amsn baselines`` on the demo's data; returns its ``benchmark.json``."""
    from ..experiments import DEMO_BASELINE_MINUTES, demo_baseline_options, options_text, write_option_files

    texts, train, test = {}, [], []
    for label, (tr, te) in demo_baseline_options(quick).items():
        for kind, opt, names in (("train", tr, train), ("test", te, test)):
            texts[f"demo/baselines/{kind}_{label}.yml"] = options_text(opt, "w2amsn demo --baselines")
            names.append(str(work / "options" / f"demo/baselines/{kind}_{label}.yml"))
    write_option_files(texts, work / "options")
    out = work / "results" / "demo" / "baselines"
    budget = ["--iters", "10"] if quick else ["--minutes", f"{DEMO_BASELINE_MINUTES:g}"]
    labels = [Path(t).stem[6:] for t in train]
    _say(f"step 5/5: w2amsn baselines ({', '.join(labels)}, {budget[1]} {budget[0][2:]} each)")
    _run([sys.executable, "-m", "w2amsn_plugin.cli", "baselines", "--train-opts", *train,
          "--test-opts", *test, "--labels", *labels, *budget, "--workdir", work, "--out", out], work)
    return json.loads((out / "benchmark.json").read_text())


def run_demo(sources: DemoSources, work: Path, modality: str, quick: bool, baselines: bool
             ) -> dict[str, Any]:
    """Every step; writes ``results/demo/`` (table.md, volumes.csv, summary.json, figure.png) and
    returns the summary."""
    from ..experiments import demo_option_files, demo_option_texts, write_option_files
    from ..results.figures import demo_figure
    from ..results.files import write_csv, write_json, write_text
    from ..results.tables import read_volume_rows, table_iii_from_csvs
    from .report import TARGET_GAIN_DB, demo_rows, method_means, rows_markdown

    work.mkdir(parents=True, exist_ok=True)
    write_option_files(demo_option_texts(quick), work / "options")
    opts = {key: work / "options" / rel for key, rel in demo_option_files(quick).items()}
    train_opt = _read_yaml(opts["train"])
    lmdb_root = work / Path(train_opt["datasets"]["train"]["dataroot_gt"]).parent
    timings: dict[str, float] = {}
    t0 = time.time()
    train_subjects = prepare_data(sources, work, lmdb_root, modality, quick)
    timings["data_prep_s"] = time.time() - t0

    t0 = time.time()
    _say(f"step 2/5: basicsr train ({train_opt['name']}, {train_opt['train']['total_iter']} iterations, "
         f"checkpoint chosen on {', '.join(s.subject for s in sources.val)})")
    _basicsr("train", opts["train"], work, "--auto_resume")
    timings["train_s"] = time.time() - t0
    csvs, test_opts = {}, {}
    for key, label in (("test", "W²AMSN"), ("test_plus", "W²AMSN+ (x8 self-ensemble)")):
        t0 = time.time()
        _say(f"step 3/5: basicsr test, {label}")
        _basicsr("test", opts[key], work)
        test_opts[key] = _read_yaml(opts[key])
        found = sorted((work / "results" / test_opts[key]["name"]).glob("*_volumes.csv"))
        if not found:
            raise SystemExit("demo: basicsr test wrote no per-volume CSV under "
                             f"results/{test_opts[key]['name']}")
        csvs[key] = found[-1]
        timings[f"{key}_s"] = time.time() - t0

    _say("step 4/5: summary")
    out = work / "results" / "demo"
    rows = [r for p in csvs.values() for r in read_volume_rows(p)]
    write_csv(out / "volumes.csv", rows)
    plain, plus = (test_opts[k]["val"]["method_name"] for k in ("test", "test_plus"))
    table_rows = demo_rows(rows, plain, plus, [s.subject for s in sources.test],
                           {s.subject: s.what for s in sources.test})
    mean = table_rows[-1]
    weights = work / test_opts["test"]["path"]["pretrain_network_g"]
    testset = work / Path(test_opts["test"]["datasets"]["test_1"]["dataroot_gt"]).parent
    fig = demo_figure(weights, opts["train"], testset, modality, [s.subject for s in sources.test],
                      out / "figure.png")
    plain_means, plus_means = method_means(rows, plain), method_means(rows, plus)
    summary = {
        "quick": quick, "modality": modality, "scale": 2, "train_subjects": train_subjects,
        "val_subjects": [s.subject for s in sources.val], "test_rows": table_rows,
        "network": train_opt["network_g"], "total_iter": train_opt["train"]["total_iter"],
        "augmentation": train_opt["datasets"]["train"].get("mr_augment"),
        "metrics": {"bicubic": plain_means["bicubic"], "W2AMSN": plain_means["method"],
                    "W2AMSN+": plus_means["method"]},
        "psnr_fg_gain_over_bicubic_db": mean["gain_db"],
        "psnr_fg_gain_plus_over_bicubic_db": mean["plus_gain_db"],
        "target_gain_db": TARGET_GAIN_DB, "target_met": bool(mean["gain_db"] >= TARGET_GAIN_DB),
        "timings_s": {k: round(v, 1) for k, v in timings.items()}, "figure_slices": fig,
        "weights": str(weights), "train_options": str(opts["train"]),
        "files": {n: str(out / f) for n, f in (("table", "table.md"), ("csv", "volumes.csv"),
                                               ("figure", "figure.png"), ("summary", "summary.json"))},
    }
    table = (f"# W²AMSN demo: {modality} x2, trained on {', '.join(train_subjects)}, checkpoint chosen "
             f"on {', '.join(summary['val_subjects'])}, tested on scans it never saw\n\n"
             "Foreground PSNR (dB)/SSIM per test row; gain = W²AMSN - bicubic (W²AMSN+ on one slice in "
             f"{test_opts['test_plus']['datasets']['test_1'].get('slice_step', 1)}, against "
             "bicubic on the same slices).\n\n" + rows_markdown(table_rows)
             + "\nAll rows together, Table III's layout:\n\n" + table_iii_from_csvs(list(csvs.values())))
    if baselines:
        t0 = time.time()
        bench = _baselines(quick, work)
        summary["timings_s"]["baselines_s"] = round(time.time() - t0, 1)
        summary["baselines"] = {"rows": bench["rows"], "budget": bench["budget"], "files": bench["files"]}
        table += "\n## Baselines at the same budget\n\n" + \
            Path(bench["files"]["comparison.md"]).read_text(encoding="utf-8")
    write_text(out / "table.md", table)
    write_json(out / "summary.json", summary)
    summary["table_markdown"] = table
    return summary
