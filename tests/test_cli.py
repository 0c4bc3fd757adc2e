"""The `basicsr` and `w2amsn` commands: BasicSR's own trainer/tester, run from the plugin on CPU,
resumed, under torchrun with gloo, and clear errors for a user's mistakes."""
from __future__ import annotations

import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import w2amsn_plugin
from w2amsn_plugin.cli import basicsr_main

PACKAGE_DIR = Path(w2amsn_plugin.__file__).parent


def _log_text(exp: Path, prefix: str = "train_") -> str:
    return "\n".join(p.read_text() for p in sorted(exp.glob(f"{prefix}*.log")))


def test_help_lists_verbs(run, tmp_path):
    out = run(["basicsr", "--help"], cwd=tmp_path)
    assert out.returncode == 0 and "train" in out.stdout and "test" in out.stdout
    out = run(["w2amsn", "--help"], cwd=tmp_path)
    assert out.returncode == 0
    for verb in ("stats", "infer", "bench", "baselines"):
        assert verb in out.stdout
    out = run(["basicsr", "train", "--help"], cwd=tmp_path)
    for flag in ("-opt", "--launcher", "--auto_resume", "--debug", "--force_yml", "--local-rank"):
        assert flag in out.stdout


def test_train_then_resume_then_test(run, tiny_options, tmp_path):
    opt = tiny_options("tiny_cpu", total_iter=4, checkpoint_freq=2, val_freq=2)
    out = run(["basicsr", "train", "-opt", str(opt)], cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    exp = tmp_path / "experiments" / "tiny_cpu"
    assert (exp / "models" / "net_g_latest.pth").is_file()
    assert sorted(p.name for p in (exp / "training_states").glob("*.state")) == ["2.state", "4.state"]
    assert (exp / opt.name).is_file(), "BasicSR copies the options file into the experiment"
    log = _log_text(exp)
    assert re.search(r"# psnr: *[0-9.]+", log), "a validation metric is logged"
    assert "End of training" in log
    assert not (PACKAGE_DIR / "experiments").exists() and not (PACKAGE_DIR.parent / "tb_logger").exists()

    # --auto_resume on CPU continues from training_states/4.state up to the new total
    out = run(["basicsr", "train", "-opt", str(opt), "--auto_resume",
               "--force_yml", "train:total_iter=6"], cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    log = _log_text(exp)
    assert "Resuming training from epoch" in log and "iter: 4." in log
    assert (exp / "training_states" / "6.state").is_file()
    assert re.search(r"iter:\s+6,", log), "the resumed run reaches iteration 6"

    # basicsr test with the trained weights writes results/<name>
    test_opt = tiny_options("tiny_cpu_test", phase="test",
                            pretrain=str(exp / "models" / "net_g_latest.pth"))
    out = run(["basicsr", "test", "-opt", str(test_opt)], cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    res = tmp_path / "results" / "tiny_cpu_test"
    assert len(list((res / "visualization" / "tiny_test").glob("*.png"))) == 6
    assert re.search(r"# psnr: *[0-9.]+", _log_text(res, "test_"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_torchrun_two_cpu_ranks_with_gloo(run, tiny_options, tmp_path):
    """Two CPU ranks with gloo; with W2AMSN_TEST_NUM_GPU=1, one rank per GPU with nccl."""
    import torch

    from conftest import NUM_GPU

    nproc = torch.cuda.device_count() if NUM_GPU else 2
    opt = tiny_options("tiny_ddp", total_iter=4, checkpoint_freq=4, val_freq=4)
    out = run([sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}",
               f"--master_port={_free_port()}", "-m", "w2amsn_plugin.cli", "train",
               "-opt", str(opt), "--launcher", "pytorch"], cwd=tmp_path, timeout=400)
    assert out.returncode == 0, (out.stdout + out.stderr)[-4000:]
    log = _log_text(tmp_path / "experiments" / "tiny_ddp")
    assert re.search(r"dist: True", log) and "End of training" in log
    assert f"world_size: {nproc}" in log
    assert (tmp_path / "experiments" / "tiny_ddp" / "training_states" / "4.state").is_file()


def _error_of(capsys, argv: list[str]) -> str:
    assert basicsr_main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_missing_options_file(capsys, tmp_path):
    err = _error_of(capsys, ["train", "-opt", str(tmp_path / "nope.yml")])
    assert "nope.yml" in err and "not found" in err


def test_unknown_type_lists_close_names(capsys, tiny_options):
    opt = tiny_options("typo")
    data = yaml.safe_load(opt.read_text())
    data["network_g"]["type"] = "SRVGGNetCompakt"
    opt.write_text(yaml.safe_dump(data))
    err = _error_of(capsys, ["train", "-opt", str(opt)])
    assert "SRVGGNetCompakt" in err and "'SRVGGNetCompact'" in err and str(opt) in err


def test_unknown_network_argument(capsys, tiny_options):
    opt = tiny_options("badarg")
    data = yaml.safe_load(opt.read_text())
    data["network_g"]["num_convs"] = 2
    opt.write_text(yaml.safe_dump(data))
    err = _error_of(capsys, ["train", "-opt", str(opt)])
    assert "num_convs" in err and "'num_conv'" in err


def test_force_yml_unknown_key(capsys, tiny_options):
    err = _error_of(capsys, ["train", "-opt", str(tiny_options("fy")), "--force_yml", "train:total_iters=3"])
    assert "total_iters" in err and "cannot create" in err


def test_unknown_mrsrmodel_val_option(capsys, tiny_options):
    opt = tiny_options("valtypo")
    data = yaml.safe_load(opt.read_text())
    data["model_type"] = "MRSRModel"
    data["val"]["self_ensamble"] = True
    opt.write_text(yaml.safe_dump(data))
    err = _error_of(capsys, ["train", "-opt", str(opt)])
    assert "self_ensamble" in err and "'self_ensemble'" in err


def test_missing_dataset_is_one_line_before_basicsr_starts(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    opt = Path(__file__).resolve().parent.parent / "options" / "train_W2AMSN_T1_x2.yml"
    err = _error_of(capsys, ["train", "-opt", str(opt)])
    assert "datasets/IXI_T1/IXI_T1_train_HR.lmdb not found" in err and "make_ixi_lmdb.py" in err
    assert not (tmp_path / "experiments").exists() and not (tmp_path / "tb_logger").exists()


def test_bad_yaml(capsys, tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("name: x\nnum_gpu: [0\n")
    err = _error_of(capsys, ["train", "-opt", str(bad)])
    assert "bad.yml" in err and "line" in err


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="checks the no-CUDA message")
def test_num_gpu_without_cuda(capsys, tiny_options):
    opt = tiny_options("gpu")
    err = _error_of(capsys, ["train", "-opt", str(opt), "--force_yml", "num_gpu=1"])
    assert "no CUDA" in err and "num_gpu=0" in err


# modules `w2amsn --help` must not import: each costs seconds (torch alone 1-5 s on 2 cores)
HEAVY = ("torch", "torchvision", "basicsr", "numpy", "cv2", "torch._dynamo")


def _imported(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", code], capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = [line for line in out.stderr.splitlines() if line.startswith("import time:")]
    return {line.split("|")[-1].strip() for line in lines}


# the commands whose --help is instant
@pytest.mark.parametrize("argv", [["w2amsn", "--help"], ["basicsr", "--help"], ["basicsr", "train", "--help"],
                                  *(["w2amsn", verb, "--help"] for verb in (
                                      "prepare", "prepare-ixi", "calibrate", "make-options", "demo", "infer",
                                      "self-sr", "stats", "bench", "baselines"))])
def test_help_imports_neither_torch_nor_basicsr(argv):
    """`w2amsn --help` loads no torch/BasicSR (0.2 s instead of 5-12 s on 2 loaded cores)."""
    main = "w2amsn_main" if argv[0] == "w2amsn" else "basicsr_main"
    code = (f"import sys; from w2amsn_plugin.cli import {main}; sys.argv = {argv!r}; {main}()")
    imported = _imported(f"try:\n    {code}\nexcept SystemExit:\n    pass")
    assert "w2amsn_plugin.cli" in imported and not imported & set(HEAVY), sorted(imported & set(HEAVY))


def test_import_loads_nothing_heavy_yet_registers_before_the_first_look_up():
    """`import w2amsn_plugin` loads no torch/BasicSR, yet BasicSR's registries hold the plugin's
    names at their first look-up (the import hook of w2amsn_plugin.compat)."""
    imported = _imported("import w2amsn_plugin")
    assert not imported & set(HEAVY), sorted(imported & set(HEAVY))
    registered = subprocess.run(
        [sys.executable, "-c", "import w2amsn_plugin, basicsr.train\n"
         "from basicsr.utils.registry import ARCH_REGISTRY, MODEL_REGISTRY\n"
         "print(ARCH_REGISTRY.get('W2AMSN').__module__, MODEL_REGISTRY.get('MRSRModel').__name__)"],
        capture_output=True, text=True, timeout=300)
    assert registered.stdout.split() == ["w2amsn_plugin.archs.w2amsn_arch", "MRSRModel"], \
        registered.stderr[-2000:]


@pytest.mark.parametrize("section, key, value, words", [
    ("val", "bf16", "maybe", "'val: bf16' must be true, false or auto"),
    ("val", "best_metric", "psnr_typo", "best_metric: psnr_typo"),
    ("train", "compile", "fastest", "'train: compile' must be"),
])
def test_bad_mrsrmodel_value_is_one_line_before_basicsr_starts(section, key, value, words, capsys,
                                                               tiny_options, tmp_path, monkeypatch):
    """MRSRModel's own option values are checked with the options, not after BasicSR archived."""
    monkeypatch.chdir(tmp_path)
    opt = tiny_options("mrvalue")
    data = yaml.safe_load(opt.read_text())
    data["model_type"] = "MRSRModel"
    data[section][key] = value
    opt.write_text(yaml.safe_dump(data))
    err = _error_of(capsys, ["train", "-opt", str(opt)])
    assert words in err and str(opt) in err
    assert not (tmp_path / "experiments").exists()
