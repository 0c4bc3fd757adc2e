"""Benchmark W²AMSN against the baselines on the user's own data in one command: train every
given BasicSR options file with the same budget, test each on the same test set, and write one
comparison table and a PSNR-vs-parameters plot like the paper's Fig. 3(a).

    w2amsn baselines \\
        --train-opts options/train/W2AMSN/train_W2AMSN_T1_x2.yml options/train/EDSR/train_EDSR_T1_x2.yml \\
        --iters 20000 [--minutes M] [--self-ensemble] [--force-yml num_gpu=1 ...] [--out DIR]

For each training options file, through the same ``basicsr train|test`` a user runs
(``python -m w2amsn_plugin.cli``, working directory ``--workdir``):

1. **Budget.** ``--iters N``: every method trains N iterations. ``--minutes M``: every method
   trains for about M minutes of BasicSR's training loop, measured per method: a calibration run
   of ``--calib-iters`` iterations (default 20) logs every iteration; the time per iteration is
   the spacing of the log lines over the second half of them (the first iterations are
   warm-up), and the budget is ``floor(M * 60 / seconds_per_iteration)`` iterations. The
   calibration run's experiment folder is deleted afterwards; its output stays in ``logs/``.
2. **Training options** (written to ``<out>/options/``): the file with ``--force-yml`` applied,
   ``name: <name>_bench<N>it``, ``total_iter: N``, the learning-rate schedule compressed to N
   (``milestones``, ``periods`` and ``warmup_iter`` scaled by N / the file's ``total_iter``, so a
   short run keeps the recipe's decays), one checkpoint at the end and no validation set (the
   test set scores the result). ``basicsr train`` on it; a rerun retrains (BasicSR archives
   the previous ``experiments/<name>``).
3. **Test options**: ``--test-opts`` (one per training file, in the same order) if given, with
   ``--force-yml`` entries whose keys exist in them; otherwise derived from the training options:
   their validation dataset (else the training one, without its training-only keys) with
   ``_train_``/``_val_`` in each ``dataroot`` file name replaced by ``_<--test-split>_`` (the
   names ``scripts/make_ixi_lmdb.py`` writes, e.g. ``IXI_T1_test_HR.lmdb``), and the
   training options' ``val.metrics``. Either way the weights are the run's
   ``net_g_latest.pth`` and ``val.method_name`` the method's label; with ``--self-ensemble``
   the test also runs with the x8 self-ensemble (label + ``+``, W²AMSN+ in Table III). Every
   method must be tested on the same data at the same scale.
4. **Results** in ``--out`` (default ``<workdir>/results/baselines``): ``comparison.md`` and
   ``comparison.csv`` (one row per method plus Bicubic: parameters and multiply-adds on a
   1x120x120 LR input as in Table II, iterations, training time, test time per slice, and the
   test-set means of the per-volume foreground and whole-slice PSNR/SSIM, Table III's
   convention), ``psnr_vs_params.png`` (Fig. 3(a): foreground PSNR against parameters, bicubic
   as a horizontal line) and ``benchmark.json`` (everything, with the options and logs used).

Times come from BasicSR's own log lines: training time is the training loop (from "Start
training" to "End of training"), test time per slice the test loop (forward pass, metrics and
the bicubic reference, from "Testing <set>..." to the last line) divided by the number of test
slices; the wall-clock times of the whole commands, start-up included, are in the CSV and JSON.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .logs import iterations_for_minutes, log_times, seconds_per_iteration, span
from .method import PROG, BenchmarkError, Method, RunFailed, say
from .options import (budget_train_options, check_data, derive_test_options, dump_options, load_options,
                      method_labels)
from .report import (MACS_INPUT, comparison_markdown, comparison_rows, finite_or_none, machine_summary,
                     plot_psnr_vs_params, plot_psnr_vs_time, table_iii, table_iii_markdown, volume_csv)


__all__ = ["run_benchmark"]

# --- options ---------------------------------------------------------------------------------
# --- logs and timing -------------------------------------------------------------------------
def _basicsr(verb: str, opt_path: Path, workdir: Path, log_path: Path, what: str) -> tuple[str, float]:
    """Run ``basicsr <verb> -opt <opt_path>`` in ``workdir``; output to ``log_path``.
    Returns (output, wall seconds); a failure raises :class:`BenchmarkError`."""
    cmd = [sys.executable, "-m", "w2amsn_plugin.cli", verb, "-opt", str(opt_path)]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with open(log_path, "w", encoding="utf-8") as log:
        log.write("$ " + " ".join(cmd) + "\n")
        log.flush()
        code = subprocess.run(cmd, cwd=workdir, stdout=log, stderr=subprocess.STDOUT).returncode
    wall = time.perf_counter() - t0
    text = log_path.read_text(encoding="utf-8", errors="replace")
    if code != 0:
        last = next((ln.strip() for ln in reversed(text.splitlines()) if ln.strip()), "")
        raise RunFailed(f"{what} failed (exit {code}): {last[:300]}; full output: {log_path}")
    return text, wall


# --- results ---------------------------------------------------------------------------------
# --- the benchmark ---------------------------------------------------------------------------
def _prepare(args: argparse.Namespace, workdir: Path) -> list[Method]:
    """Load and check every options file before anything runs (fail fast)."""
    train_paths = [Path(p).resolve() for p in args.train_opts]
    test_paths = [Path(p).resolve() for p in args.test_opts] if args.test_opts else []
    if test_paths and len(test_paths) != len(train_paths):
        raise BenchmarkError(f"--test-opts: {len(test_paths)} files for {len(train_paths)} --train-opts "
                             "(one per training file, in the same order)")
    if args.labels and len(args.labels) != len(train_paths):
        raise BenchmarkError(f"--labels: {len(args.labels)} labels for {len(train_paths)} --train-opts")
    labels = list(args.labels) if args.labels else method_labels(args.train_opts)
    if len(set(labels)) != len(labels):
        raise BenchmarkError(f"--labels: repeated label in {labels}")
    force = list(args.force_yml or [])
    methods = []
    for i, (label, path) in enumerate(zip(labels, train_paths)):
        opt = load_options(path, force, is_train=True)
        check_data({"datasets": {"train": opt["datasets"]["train"]}}, str(path), workdir)
        methods.append(Method(label=label, source=path, train_opt=opt,
                              test_source=test_paths[i] if test_paths else None))
    tested: dict[tuple, str] = {}
    for m in methods:  # derive once now to check every test set exists and all are the same
        test = _test_options(m, args, weights="<weights>")
        check_data(test, str(m.test_source or m.source), workdir)
        if len(test["datasets"]) != 1:
            raise BenchmarkError(f"{m.test_source}: {len(test['datasets'])} test datasets; the benchmark "
                                 "compares the methods on one")
        data = next(iter(test["datasets"].values()))
        tested[(int(test["scale"]), str(data["dataroot_gt"]), str(data["dataroot_lq"]))] = m.label
    if len(tested) > 1:
        raise BenchmarkError("the methods are tested on different data or scales: " + "; ".join(
            f"{label}: x{k[0]} {k[1]}" for k, label in tested.items()) + "; a comparison needs one test set")
    return methods


def _test_options(m: Method, args: argparse.Namespace, weights: str | None, self_ensemble: bool = False
                  ) -> dict[str, Any]:
    test_opt = None
    if m.test_source is not None:
        test_opt = load_options(m.test_source, list(args.force_yml or []), is_train=False,
                                 only_existing=True)
    return derive_test_options(m.train_opt, m.label, weights, split=args.test_split,
                               self_ensemble=self_ensemble, test_opt=test_opt, where=str(m.source))


def _calibrate(m: Method, args: argparse.Namespace, workdir: Path, out: Path) -> int:
    """Iterations of ``args.minutes`` for method ``m`` (module doc, step 1)."""
    name = f"{m.train_opt['name']}_bench_calib"
    opt = budget_train_options(m.train_opt, args.calib_iters, name, print_freq=1)
    opt["logger"]["use_tb_logger"] = False
    opt_path = dump_options(out / "options" / f"calibrate_{m.label}.yml", opt,
                     f"{PROG}: calibration of {m.label} (from {m.source})")
    say(f"{m.label}: calibrating the minutes budget ({args.calib_iters} iterations)")
    text, _ = _basicsr("train", opt_path, workdir, out / "logs" / f"calibrate_{m.label}.txt",
                       f"calibration training of {m.label}")
    shutil.rmtree(workdir / "experiments" / name, ignore_errors=True)
    sec = seconds_per_iteration(text)
    iters = iterations_for_minutes(args.minutes, sec)
    m.calibration = {"iters": args.calib_iters, "s_per_iter": sec, "minutes": args.minutes}
    say(f"{m.label}: {sec:.4f} s/iteration -> {iters} iterations in {args.minutes:g} min")
    return iters


def _train(m: Method, args: argparse.Namespace, workdir: Path, out: Path) -> Path:
    name = f"{m.train_opt['name']}_bench{m.iters}it"
    opt = budget_train_options(m.train_opt, m.iters, name)
    m.train_opt = opt
    opt_path = dump_options(out / "options" / f"train_{m.label}.yml", opt,
                     f"{PROG}: {m.label}, {m.iters} iterations (from {m.source})")
    say(f"{m.label}: basicsr train ({opt['network_g']['type']}, {m.iters} iterations) -> experiments/{name}")
    log = out / "logs" / f"train_{m.label}.txt"
    text, wall = _basicsr("train", opt_path, workdir, log, f"training {m.label}")
    weights = workdir / "experiments" / name / "models" / "net_g_latest.pth"
    if not weights.is_file():
        raise RunFailed(f"training {m.label} wrote no {weights}; full output: {log}")
    loop = span(log_times(text), "Start training", "End of training")
    m.train = {"options": str(opt_path), "log": str(log), "weights": str(weights), "wall_s": wall,
               "loop_s": loop if loop is not None else wall, "schedule": opt["train"].get("scheduler")}
    say(f"{m.label}: trained in {m.train['loop_s']:.1f} s (command {wall:.1f} s)")
    return weights


def _test(m: Method, args: argparse.Namespace, workdir: Path, out: Path, weights: Path | None,
          self_ensemble: bool) -> None:
    from ...results.tables import BICUBIC, read_volume_rows, volumes_from_rows
    from ...results.volume_scores import set_means

    opt = _test_options(m, args, None if weights is None else str(weights), self_ensemble)
    label = opt["val"]["method_name"]
    tag = f"{m.label}_plus" if self_ensemble else m.label
    opt_path = dump_options(out / "options" / f"test_{tag}.yml", opt, f"{PROG}: {label} on the test set")
    say(f"{label}: basicsr test -> results/{opt['name']}")
    log = out / "logs" / f"test_{tag}.txt"
    text, wall = _basicsr("test", opt_path, workdir, log, f"testing {label}")
    csv_path = volume_csv(workdir / "results" / opt["name"])
    rows = [r for r in read_volume_rows(csv_path) if r["method"] == label]
    volumes = volumes_from_rows(rows)
    n_slices = sum(r["n_slices"] for r in rows)
    loop = span(log_times(text), "Testing ", None)
    data = next(iter(opt["datasets"].values()))
    m.tests[label] = {"options": str(opt_path), "log": str(log), "csv": str(csv_path),
                      "self_ensemble": self_ensemble, "wall_s": wall,
                      "s_per_slice": (loop if loop is not None else wall) / max(n_slices, 1),
                      "n_volumes": len(rows), "n_slices": n_slices, "metrics": set_means(volumes, label),
                      "bicubic": set_means(volumes, BICUBIC), "dataroot_gt": data["dataroot_gt"],
                      "modality": rows[0]["modality"] if rows else "-", "scale": opt["scale"]}
    say(f"{label}: PSNR fg {m.tests[label]['metrics']['psnr_fg']:.2f} dB "
         f"(bicubic {m.tests[label]['bicubic']['psnr_fg']:.2f}), {n_slices} slices")


def run_benchmark(args: argparse.Namespace) -> dict[str, Any]:
    """Train and test every method, write the results (module doc); return ``benchmark.json``."""
    from ...results.files import write_csv, write_text
    from ...archs.complexity import count

    workdir = Path(args.workdir).resolve()
    out = Path(args.out).resolve() if args.out else workdir / "results" / "baselines"
    methods = _prepare(args, workdir)
    for m in methods:
        try:
            m.size = count(m.train_opt["network_g"], MACS_INPUT)
        except (ValueError, TypeError, RuntimeError) as err:
            say(f"{m.label}: cannot count parameters/MACs: {err}")
    plus_labels = set(getattr(args, "plus", None) or [])
    for m in methods:
        weights: Path | None = None
        if m.size.get("params") == 0:  # nothing to train (NLM): tested as it is
            m.train = {"options": None, "log": None, "weights": None, "wall_s": 0.0, "loop_s": 0.0,
                       "schedule": None}
            say(f"{m.label}: no weights to train; tested as it is")
        else:
            m.iters = args.iters if args.iters else _calibrate(m, args, workdir, out)
            weights = _train(m, args, workdir, out)
        ensemble = weights is not None and (args.self_ensemble or m.label in plus_labels)
        for plus in ((False, True) if ensemble else (False,)):
            _test(m, args, workdir, out, weights, plus)
    rows = comparison_rows(methods)
    first = next(iter(methods[0].tests.values()))
    budget = f"{args.iters} iterations" if args.iters else f"{args.minutes:g} min of training per method"
    info = {"modality": first["modality"], "scale": first["scale"], "budget": budget,
            "test_set": first["dataroot_gt"], "machine": machine_summary()}
    files = {name: str(out / name) for name in
             ("comparison.md", "comparison.csv", "psnr_vs_params.png", "psnr_vs_time.png", "table_iii.md",
              "table_iii.csv", "table_iii.json", "benchmark.json")}
    write_csv(out / "comparison.csv", rows)
    write_text(out / "comparison.md", comparison_markdown(rows, info))
    plot_psnr_vs_params(rows, out / "psnr_vs_params.png",
                        f"PSNR vs parameters: {info['modality']} ×{info['scale']}, {budget}")
    plot_psnr_vs_time(rows, out / "psnr_vs_time.png",
                      f"PSNR vs test time per slice: {info['modality']} ×{info['scale']}, {budget}")
    table = table_iii(rows)
    write_csv(out / "table_iii.csv", table)
    write_text(out / "table_iii.md", table_iii_markdown(table, info))
    write_text(out / "table_iii.json", json.dumps(finite_or_none({**info, "rows": table}), indent=1) + "\n")
    report = {"settings": {"iters": args.iters, "minutes": args.minutes, "calib_iters": args.calib_iters,
                           "self_ensemble": args.self_ensemble, "force_yml": list(args.force_yml or []),
                           "test_split": args.test_split, "workdir": str(workdir)},
              **info, "rows": rows, "files": files,
              "methods": {m.label: {"source": str(m.source), "test_source": str(m.test_source or ""),
                                    "network_g": m.train_opt["network_g"], "iters": m.iters,
                                    "size": m.size, "calibration": m.calibration, "train": m.train,
                                    "tests": m.tests} for m in methods}}
    write_text(out / "benchmark.json", json.dumps(finite_or_none(report), indent=1) + "\n")
    return report

