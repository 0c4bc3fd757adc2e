"""A non-editable install works: a wheel of this package, installed into a
fresh virtualenv that sees this one's dependencies but not the source tree, runs its console
scripts from a folder outside the checkout: ``w2amsn make-options``, ``w2amsn infer --dry-run``
on the shipped sample, ``w2amsn prepare-ixi`` then a 2-iteration ``basicsr train`` (TensorBoard
on) on generated options, and (slow) ``w2amsn demo --quick``."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import torch
import yaml

from w2amsn_plugin.archs import W2AMSN
from w2amsn_plugin.data.fake_ixi import make_fake_ixi_tree

REPO = Path(__file__).resolve().parent.parent
#: what a wheel is built from (an sdist holds the same)
SOURCES = ("pyproject.toml", "setup.py", "README.md", "LICENSE", "w2amsn_plugin")
TINY_NET = {"num_feat": 8, "num_block": 1, "widen": 2}


class Installed:
    """The fresh virtualenv with the wheel installed, and a way to run its commands."""

    def __init__(self, venv: Path, site: Path, outside: Path) -> None:
        self.venv, self.site, self.outside = venv, site, outside

    def run(self, command: str, *args: str | Path, cwd: Path, timeout: int = 300
            ) -> subprocess.CompletedProcess:
        """``NEW/bin/<command> args`` in ``cwd``, with no PYTHONPATH and one thread."""
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        env.update(OMP_NUM_THREADS="1", PATH=f"{self.venv / 'bin'}{os.pathsep}{env.get('PATH', '')}")
        return subprocess.run([str(self.venv / "bin" / command), *map(str, args)], cwd=cwd, env=env,
                              capture_output=True, text=True, timeout=timeout)


def _check(out: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert out.returncode == 0, (out.stdout + out.stderr)[-4000:]
    return out


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    root = tmp_path_factory.mktemp("install")
    src = root / "src"
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            src.mkdir(exist_ok=True)
            shutil.copy2(REPO / name, src / name)
    _check(subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                           "--disable-pip-version-check", "-q", str(src), "-w", str(root / "dist")],
                          capture_output=True, text=True, timeout=300))
    wheel, = (root / "dist").glob("w2amsn_plugin-*.whl")

    venv = root / "venv"
    _check(subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)],
                          capture_output=True, text=True, timeout=120))
    new_python = venv / "bin" / "python"
    site = Path(_check(subprocess.run(
        [str(new_python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, timeout=60)).stdout.strip())
    # this virtualenv's dependencies (torch, BasicSR...), after NEW's own site-packages; a path
    # line does not run that folder's .pth files, so the editable install of the checkout stays out
    (site / "_deps_of_the_test_venv.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _check(subprocess.run([sys.executable, "-m", "pip", "--python", str(new_python), "install",
                           "--no-deps", "--no-index", "--disable-pip-version-check", "-q", str(wheel)],
                          capture_output=True, text=True, timeout=300))
    outside = root / "elsewhere"
    outside.mkdir()
    return Installed(venv, site, outside)


def test_package_and_data_come_from_the_install_not_the_checkout(installed: Installed) -> None:
    code = ("import sys, w2amsn_plugin; from w2amsn_plugin.data.samples import sample_paths; "
            "print(w2amsn_plugin.__file__); print(*sample_paths(), sep='\\n'); print(*sys.path, sep='\\n')")
    out = _check(installed.run("python", "-c", code, cwd=installed.outside)).stdout.splitlines()
    module, samples = Path(out[0]), [Path(p) for p in out[1:3]]
    assert module == installed.site / "w2amsn_plugin" / "__init__.py"
    for sample in samples:
        assert sample.is_relative_to(installed.site) and sample.is_file()
    assert not any(p and Path(p).resolve() == REPO for p in out[3:]), "the checkout is on sys.path"
    for license_file in ("LICENSE", "w2amsn_plugin/sample_data/LICENSE"):
        assert list(installed.site.glob(f"w2amsn_plugin-*.dist-info/licenses/{license_file}"))


def test_make_options_writes_the_committed_options(installed: Installed) -> None:
    out = _check(installed.run("w2amsn", "make-options", "--out", "opts", cwd=installed.outside))
    made = {p.relative_to(installed.outside / "opts"): p for p in (installed.outside / "opts").rglob("*.yml")}
    committed = {p.relative_to(REPO / "options"): p for p in (REPO / "options").rglob("*.yml")}
    assert sorted(made) == sorted(committed) and f"wrote {len(made)} options files" in out.stdout
    assert all(made[rel].read_text() == committed[rel].read_text() for rel in made)


def test_infer_dry_run_on_the_shipped_sample(installed: Installed, tmp_path: Path) -> None:
    net = {"type": "W2AMSN", "num_in_ch": 1, "num_out_ch": 1, "upscale": 2, **TINY_NET}
    torch.save({"params": W2AMSN(**{k: v for k, v in net.items() if k != "type"}).state_dict()},
               tmp_path / "net_g_tiny.pth")
    (tmp_path / "tiny.yml").write_text(yaml.safe_dump({"scale": 2, "network_g": net}))
    sample = installed.site / "w2amsn_plugin" / "sample_data" / "colin27_t1.nii.gz"
    out = _check(installed.run("w2amsn", "infer", "--input", sample, "--output", "sr.nii.gz",
                               "--weights", tmp_path / "net_g_tiny.pth", "--opt", tmp_path / "tiny.yml",
                               "--device", "cpu", "--dry-run", cwd=installed.outside))
    assert "181x217x181" in out.stdout and "W2AMSN" in out.stdout, out.stdout
    assert not (installed.outside / "sr.nii.gz").exists()


def test_prepare_then_two_iterations_of_basicsr_train(installed: Installed) -> None:
    """Generated options, used as they are but for --force_yml, train on a tiny prepared LMDB
    (with TensorBoard logging on, as the options ship: BasicSR's tb-nightly is the one install)."""
    work = installed.outside / "train_run"
    make_fake_ixi_tree(work / "ixi", 3, ("T1",), shape=(100, 100, 8))
    _check(installed.run("w2amsn", "prepare-ixi", "--ixi-root", "ixi", "--modality", "T1",
                         "--out", "datasets/IXI_T1", "--scales", "2", "--n-train", "1", "--n-test", "1",
                         "--n-val", "1", "--crop", "96", "96", "4", "--workers", "1", "--no-progress",
                         cwd=work))
    _check(installed.run("w2amsn", "make-options", "--out", "options", cwd=work))
    opt_file = work / "options" / "train" / "W2AMSN" / "train_W2AMSN_T1_x2.yml"
    name = yaml.safe_load(opt_file.read_text())["name"]
    assert yaml.safe_load(opt_file.read_text())["logger"]["use_tb_logger"] is True
    out = _check(installed.run(
        "basicsr", "train", "-opt", opt_file, "--force_yml", "num_gpu=0", "train:total_iter=2",
        *(f"network_g:{k}={v}" for k, v in TINY_NET.items()), "datasets:train:batch_size_per_gpu=2",
        "datasets:train:gt_size=32", "datasets:train:num_worker_per_gpu=0", "val:val_freq=2",
        "logger:print_freq=1", cwd=work))
    exp = work / "experiments" / name
    assert (exp / "models" / "net_g_latest.pth").is_file(), out.stderr[-2000:]
    log = "\n".join(p.read_text() for p in exp.glob("train_*.log"))
    assert "End of training" in log and "# psnr_fg:" in log
    assert list((work / "tb_logger" / name).glob("events.out.tfevents.*"))


@pytest.mark.slow
def test_demo_quick(installed: Installed) -> None:
    work = installed.outside / "demo"
    _check(installed.run("w2amsn", "demo", "--quick", "--workdir", work, cwd=installed.outside,
                         timeout=900))
    for name in ("summary.json", "table.md", "figure.png"):
        assert (work / "results" / "demo" / name).is_file(), name
