"""scripts/benchmark_baselines.py: budgeted training and testing of several options files, the
comparison table, the PSNR-vs-params plot (paper Fig. 3(a)) and its one-line errors."""
from __future__ import annotations

import csv
import json
import math
import sys
from pathlib import Path

import pytest
import yaml

from w2amsn_plugin.benchmarks.baselines import logs, method, options
from w2amsn_plugin.commands import baselines as cmd
from w2amsn_plugin.data.fake_ixi import make_fake_ixi_tree
from w2amsn_plugin.data.prepare import PrepConfig, make_ixi_lmdb
from w2amsn_plugin.archs import W2AMSN

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "benchmark_baselines.py"
REAL = {"W2AMSN": REPO / "options/train/W2AMSN/train_W2AMSN_T1_x2.yml",
        "EDSR": REPO / "options/train/EDSR/train_EDSR_T1_x2.yml"}
TINY_NET = {"W2AMSN": {"num_feat": 8, "num_block": 1, "widen": 2}, "EDSR": {"num_feat": 8, "num_block": 1}}


@pytest.fixture(scope="module")
def lmdb_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """T1 x2 LMDBs of three fake subjects (train, val, test: one each), 96x96 slices, 4 per volume."""
    root = tmp_path_factory.mktemp("bench_data")
    make_fake_ixi_tree(root / "ixi", 3, ("T1",), shape=(100, 100, 8))
    make_ixi_lmdb(PrepConfig(ixi_root=root / "ixi", modality="T1", out=root / "IXI_T1", scales=(2,),
                             n_train=1, n_test=1, n_val=1, crop=(96, 96, 4), workers=1, progress=False),
                  log=lambda m: None)
    return root / "IXI_T1"


def tiny_options(arch: str, lmdb: Path, folder: Path, **train_set) -> Path:
    """The generated options of ``arch`` (T1 x2), shrunk to a CPU smoke test on ``lmdb``."""
    opt = yaml.safe_load(REAL[arch].read_text())
    opt["name"] = f"{arch}_tiny"
    opt["num_gpu"] = 0
    opt["network_g"].update(TINY_NET[arch])
    for section in opt["datasets"].values():
        for key in ("dataroot_gt", "dataroot_lq"):
            section[key] = str(lmdb / Path(section[key]).name)
    opt["datasets"]["train"].update({"batch_size_per_gpu": 2, "gt_size": 32, "num_worker_per_gpu": 0,
                                     **train_set})
    opt["logger"]["use_tb_logger"] = False
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / REAL[arch].name
    path.write_text(yaml.safe_dump(opt, sort_keys=False))
    return path


def _tiny_params(arch: str) -> int:
    """Parameters of the tiny networks of :func:`tiny_options`, counted without the plugin's counter."""
    def conv(c_in: int, c_out: int) -> int:  # 3x3 with bias
        return c_in * c_out * 9 + c_out

    if arch == "EDSR":  # 1 -> 8 channels, 1 residual block, x2, 8 -> 1: conv_first, the block's two
        # convs, conv_after_body, the x2 upsampler (8 -> 4*8 channels, pixel shuffle), conv_last
        return conv(1, 8) + 2 * conv(8, 8) + conv(8, 8) + conv(8, 32) + conv(8, 1)  # 4241
    net = yaml.safe_load(REAL[arch].read_text())["network_g"]
    net.update(TINY_NET[arch])
    del net["type"]
    return sum(p.numel() for p in W2AMSN(**net).parameters())


def _strict_json(text: str) -> dict:
    def refuse(name: str) -> None:
        raise ValueError(f"non-standard JSON constant {name}")

    return json.loads(text, parse_constant=refuse)


def test_two_methods_end_to_end(run, lmdb_root, tmp_path):
    opts = [tiny_options(arch, lmdb_root, tmp_path / "opts") for arch in ("W2AMSN", "EDSR")]
    out = run([sys.executable, str(SCRIPT), "--train-opts", *map(str, opts), "--iters", "3"],
              cwd=tmp_path, timeout=300)
    assert out.returncode == 0, (out.stdout + out.stderr)[-4000:]
    res = tmp_path / "results" / "baselines"
    for name in ("comparison.md", "comparison.csv", "psnr_vs_params.png", "benchmark.json"):
        assert (res / name).is_file(), name
    assert (res / "psnr_vs_params.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    with open(res / "comparison.csv", newline="") as f:
        rows = {r["method"]: r for r in csv.DictReader(f)}
    assert list(rows) == ["Bicubic", "W2AMSN", "EDSR"]
    report = _strict_json((res / "benchmark.json").read_text())
    for label, arch in (("W2AMSN", "W2AMSN"), ("EDSR", "EDSR")):
        row = rows[label]
        for key in ("params", "macs", "train_s", "train_wall_s", "test_s_per_slice", "psnr_fg", "ssim_fg",
                    "psnr", "ssim"):
            assert math.isfinite(float(row[key])), (label, key, row[key])
        assert int(row["train_iters"]) == 3 and int(row["n_volumes"]) == 1 and int(row["n_slices"]) == 4
        assert int(row["params"]) == _tiny_params(arch)
        method = report["methods"][label]
        train_opt = yaml.safe_load(Path(method["train"]["options"]).read_text())
        assert train_opt["name"] == f"{arch}_tiny_bench3it" and train_opt["train"]["total_iter"] == 3
        assert "val" not in train_opt["datasets"]
        assert Path(method["train"]["weights"]).is_file()
        assert "iter:       3," in Path(method["train"]["log"]).read_text()
        test = method["tests"][label]
        assert Path(test["csv"]).parent.name == f"test_{arch}_tiny_bench3it"
        assert test["dataroot_gt"] == str(lmdb_root / "IXI_T1_test_HR.lmdb")
    bicubic = rows["Bicubic"]
    assert 20 < float(bicubic["psnr_fg"]) < 50 and 0.5 < float(bicubic["ssim_fg"]) <= 1
    assert bicubic["params"] == "0" and bicubic["macs"] == ""
    table = (res / "comparison.md").read_text()
    assert "# Benchmark: T1 ×2, 3 iterations" in table
    assert table.count("\n| Bicubic |") == table.count("\n| W2AMSN |") == table.count("\n| EDSR |") == 1
    assert report["rows"][1]["method"] == "W2AMSN" and report["scale"] == 2


def test_training_failure_names_the_log(lmdb_root, tmp_path, capsys):
    bad = tiny_options("EDSR", lmdb_root, tmp_path / "opts", gt_size=512)  # larger than a 96x96 slice
    code = cmd.main(["--train-opts", str(bad), "--iters", "2", "--workdir", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1, err
    log = tmp_path / "results" / "baselines" / "logs" / "train_EDSR_T1_x2.txt"
    # basicsr train refuses the patch before training: exit 2 and its one line
    assert "training EDSR_T1_x2 failed (exit 2)" in err and "training patch" in err and str(log) in err
    assert "smaller than the LQ training patch" in log.read_text()


@pytest.mark.parametrize("problem", ["missing", "no_test_set", "test_opts_count", "mixed_data"])
def test_user_errors_are_one_line(problem, lmdb_root, tmp_path, capsys):
    opts = [tiny_options(arch, lmdb_root, tmp_path / "opts") for arch in ("W2AMSN", "EDSR")]
    extra: list[str] = []
    if problem == "missing":
        opts[1] = tmp_path / "nowhere.yml"
        expected = "nowhere.yml: options file not found"
    elif problem == "no_test_set":
        extra = ["--test-split", "holdout"]
        expected = "IXI_T1_holdout_HR.lmdb not found"
    elif problem == "test_opts_count":
        extra = ["--test-opts", str(opts[0])]
        expected = "--test-opts: 1 files for 2 --train-opts"
    else:  # W2AMSN tested on the test split, EDSR on the validation split
        tests = []
        for arch, split in (("W2AMSN", "test"), ("EDSR", "val")):
            opt = options.derive_test_options(yaml.safe_load(opts[len(tests)].read_text()), arch, "w.pth",
                                         split=split)
            tests.append(tmp_path / f"test_{arch}.yml")
            tests[-1].write_text(yaml.safe_dump(opt, sort_keys=False))
        extra = ["--test-opts", *map(str, tests)]
        expected = "the methods are tested on different data"
    code = cmd.main(["--train-opts", *map(str, opts), "--iters", "2", "--workdir", str(tmp_path), *extra])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and expected in err, err
    assert not (tmp_path / "experiments").exists()  # checked before anything ran


def test_labels_strip_the_shared_suffix():
    assert options.method_labels(["a/train_W2AMSN_T1_x2.yml", "b/train_W2AMSN_S_T1_x2.yml",
                             "c/train_EDSR_T1_x2.yml"]) == ["W2AMSN", "W2AMSN_S", "EDSR"]
    assert options.method_labels(["train_RCAN_T2_x4.yml"]) == ["RCAN_T2_x4"]
    with pytest.raises(method.BenchmarkError, match="same label"):
        options.method_labels(["a/train_EDSR_T1_x2.yml", "b/train_EDSR_T1_x2.yml"])


def test_budget_compresses_the_schedule():
    opt = yaml.safe_load(REAL["W2AMSN"].read_text())  # MultiStepLR halving every 100k of 500k
    budget = options.budget_train_options(opt, 5000, "x_bench5000it")
    assert budget["train"]["total_iter"] == 5000
    assert budget["train"]["scheduler"]["milestones"] == [1000, 2000, 3000, 4000]
    assert budget["logger"]["save_checkpoint_freq"] == 5000 and budget["name"] == "x_bench5000it"
    assert "val" not in budget["datasets"] and opt["datasets"]["val"]  # the input is not modified
    cosine = {"total_iter": 1000, "warmup_iter": 100,
              "scheduler": {"type": "CosineAnnealingRestartLR", "periods": [250, 250, 500]}}
    options.scale_schedule(cosine, 7)
    assert cosine["total_iter"] == 7 and sum(cosine["scheduler"]["periods"]) >= 7
    assert len(cosine["scheduler"]["periods"]) == 3 and cosine["warmup_iter"] == 1


def test_test_options_derived_from_training_options():
    opt = yaml.safe_load(REAL["EDSR"].read_text())
    test = options.derive_test_options(opt, "EDSR", "/w/net_g_latest.pth", self_ensemble=True)
    data = test["datasets"]["test_1"]
    assert data["dataroot_gt"] == "datasets/IXI_T1/IXI_T1_test_HR.lmdb"
    assert data["dataroot_lq"] == "datasets/IXI_T1/IXI_T1_test_LR_bicubic_X2.lmdb"
    assert data["name"] == "IXI_T1_test" and "gt_size" not in data
    assert test["name"] == f"test_plus_{opt['name']}" and test["network_g"] == opt["network_g"]
    assert test["path"]["pretrain_network_g"] == "/w/net_g_latest.pth"
    assert test["val"]["method_name"] == "EDSR+" and test["val"]["self_ensemble"] is True
    assert test["val"]["metrics"] == opt["val"]["metrics"] and "train" not in test
    opt["datasets"]["val"]["dataroot_gt"] = "data/hr.lmdb"
    with pytest.raises(method.BenchmarkError, match="pass --test-opts"):
        options.derive_test_options(opt, "EDSR", "w.pth")


def test_minutes_budget_from_the_iteration_log():
    lines = [f"2026-01-01 10:00:{s:06.3f} INFO: [x..][epoch:  0, iter: {i:7,d}, lr:(1.000e-04,)] "
             "[eta: 0:00:00, time (data): 0.1 (0.0)] l_pix: 1e-1".replace(".", ",", 1)
             for i, s in [(1, 0.0), (2, 5.0), (3, 5.5), (4, 6.0), (5, 6.5), (6, 7.0)]]
    text = "2026-01-01 10:00:00,000 INFO: Start training from epoch: 0, iter: 0\n" + "\n".join(lines)
    assert logs.seconds_per_iteration(text) == pytest.approx(0.5)  # the slow first step is not timed
    assert logs.iterations_for_minutes(2, 0.5) == 240 and logs.iterations_for_minutes(0.001, 9) == 1
    with pytest.raises(method.BenchmarkError, match="--calib-iters"):
        logs.seconds_per_iteration("\n".join(lines[:3]))


@pytest.mark.slow  # six basicsr runs in subprocesses: minutes on a loaded 2-core machine
def test_methods_on_one_recipe_write_table_iii_and_both_figures(lmdb_root, tmp_path):
    """``--methods``: registered networks on the data and recipe of ``--like`` (NLM untrained,
    SRCNN 2 iterations, W2AMSN small with its x8 self-ensemble), Table III's shape as columns."""
    like = tiny_options("EDSR", lmdb_root, tmp_path / "opts")
    out = tmp_path / "res"
    code = cmd.main(["--methods", "NLM", "SRCNN", "W2AMSN", "--like", str(like), "--small", "--iters", "2",
                     "--workdir", str(tmp_path), "--out", str(out),
                     "--force-yml", "num_gpu=0"])
    assert code == 0
    for name in ("table_iii.md", "table_iii.csv", "table_iii.json", "psnr_vs_time.png", "psnr_vs_params.png"):
        assert (out / name).is_file(), name
    assert (out / "psnr_vs_time.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with open(out / "table_iii.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert list(table[0]) == ["measure", "Bicubic", "NLM", "SRCNN", "W2AMSN", "W2AMSN+"]
    assert table[0]["measure"] == "PSNR/SSIM" and "/" in table[0]["NLM"]
    report = _strict_json((out / "benchmark.json").read_text())
    assert report["methods"]["NLM"]["iters"] == 0 and report["methods"]["NLM"]["size"]["params"] == 0
    assert report["methods"]["SRCNN"]["iters"] == 2
    assert report["methods"]["W2AMSN"]["network_g"]["num_block"] == 2  # the SMALL cut
    assert "| PSNR/SSIM |" in (out / "table_iii.md").read_text()


def test_methods_errors_are_one_line(lmdb_root, tmp_path, capsys):
    like = tiny_options("EDSR", lmdb_root, tmp_path / "opts")
    assert cmd.main(["--methods", "SRCNN", "--iters", "2", "--workdir", str(tmp_path)]) == 2
    assert "--methods needs --like" in capsys.readouterr().err
    assert cmd.main(["--methods", "Nope", "--like", str(like), "--iters", "2",
                     "--workdir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "unknown network 'Nope'" in err
