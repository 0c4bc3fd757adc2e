"""``import w2amsn_plugin`` puts each of its names in BasicSR's registries (README table), the
registered objects are the plugin's own, and importing again does not re-register (BasicSR's
``Registry`` asserts on a duplicate name)."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

import w2amsn_plugin  # first: makes BasicSR importable (compat), then registers
from basicsr.utils import registry
from w2amsn_plugin.archs import EDSRGray, RCANGray, W2AMSN
from w2amsn_plugin.archs.csfm_arch import CSFM
from w2amsn_plugin.archs.csn_arch import CSN
from w2amsn_plugin.archs.nlm_arch import NLMUpsampler
from w2amsn_plugin.archs.rdn_arch import RDN
from w2amsn_plugin.archs.srcnn_arch import SRCNN
from w2amsn_plugin.archs.vdsr_arch import VDSR
from w2amsn_plugin.data import IXIPairedDataset, MRSliceDataset
from w2amsn_plugin.metrics import calculate_psnr_fg, calculate_psnr_mr, calculate_ssim_fg, calculate_ssim_mr
from w2amsn_plugin.models import MRSRModel
from w2amsn_plugin.selfsr.patch_dataset import SelfSRPatchDataset

#: (registry, name) -> the plugin object that must be registered under that name
EXPECTED = {
    ("ARCH_REGISTRY", "W2AMSN"): W2AMSN,
    ("ARCH_REGISTRY", "EDSRGray"): EDSRGray,
    ("ARCH_REGISTRY", "RCANGray"): RCANGray,
    **{("ARCH_REGISTRY", cls.__name__): cls for cls in (SRCNN, VDSR, RDN, CSN, CSFM, NLMUpsampler)},
    ("DATASET_REGISTRY", "IXIPairedDataset"): IXIPairedDataset,
    ("DATASET_REGISTRY", "MRSliceDataset"): MRSliceDataset,
    ("DATASET_REGISTRY", "SelfSRPatchDataset"): SelfSRPatchDataset,
    ("METRIC_REGISTRY", "calculate_psnr_mr"): calculate_psnr_mr,
    ("METRIC_REGISTRY", "calculate_ssim_mr"): calculate_ssim_mr,
    ("METRIC_REGISTRY", "calculate_psnr_fg"): calculate_psnr_fg,
    ("METRIC_REGISTRY", "calculate_ssim_fg"): calculate_ssim_fg,
    ("MODEL_REGISTRY", "MRSRModel"): MRSRModel,
}
REGISTRIES = ("ARCH_REGISTRY", "DATASET_REGISTRY", "LOSS_REGISTRY", "METRIC_REGISTRY", "MODEL_REGISTRY")

# in a fresh interpreter: the plugin's entries of every registry after `import w2amsn_plugin` alone
_FRESH_IMPORT = f"""
import json
import w2amsn_plugin
from basicsr.utils import registry
print(json.dumps(sorted([reg, name] for reg in {REGISTRIES!r}
                        for name, obj in getattr(registry, reg)
                        if obj.__module__.startswith("w2amsn_plugin."))))
"""


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=180)


@pytest.mark.parametrize("reg, name", sorted(EXPECTED))
def test_name_is_registered_as_the_plugin_object(reg: str, name: str) -> None:
    obj = getattr(registry, reg).get(name)
    assert obj is EXPECTED[reg, name]
    assert obj.__module__.startswith("w2amsn_plugin.") and obj.__name__ == name


def test_import_alone_registers_exactly_the_expected_names() -> None:
    """No name missing, none unlisted (a new registration belongs in EXPECTED and the README)."""
    out = _python(_FRESH_IMPORT)
    assert out.returncode == 0, out.stderr[-3000:]
    assert sorted(map(tuple, json.loads(out.stdout.splitlines()[-1]))) == sorted(EXPECTED)


def test_plugin_names_do_not_shadow_basicsr_ones() -> None:
    """BasicSR's own EDSR/RCAN stay registered beside the 1-channel subclasses."""
    assert registry.ARCH_REGISTRY.get("EDSR") is EDSRGray.__mro__[1]
    assert registry.ARCH_REGISTRY.get("RCAN") is RCANGray.__mro__[1]
    assert registry.MODEL_REGISTRY.get("SRModel") is MRSRModel.__mro__[1]


def test_importing_again_does_not_raise() -> None:
    """A second import of the package and of each registering module, after BasicSR scanned its
    own folders, neither raises nor replaces an entry."""
    code = """
    import importlib
    import w2amsn_plugin
    from basicsr.utils.registry import ARCH_REGISTRY, MODEL_REGISTRY
    first = ARCH_REGISTRY.get("W2AMSN"), MODEL_REGISTRY.get("MRSRModel")
    import basicsr.archs, basicsr.data, basicsr.metrics, basicsr.models
    for name in ("w2amsn_plugin", "w2amsn_plugin.archs.w2amsn_arch",
                 "w2amsn_plugin.archs.gray_baselines_arch", "w2amsn_plugin.data.ixi_paired_dataset",
                 "w2amsn_plugin.metrics.psnr_ssim",
                 "w2amsn_plugin.models.mr_sr_model", "w2amsn_plugin.cli"):
        importlib.import_module(name)
    w2amsn_plugin.compat.apply()
    assert (ARCH_REGISTRY.get("W2AMSN"), MODEL_REGISTRY.get("MRSRModel")) == first
    print("OK")
    """
    out = _python(code)
    assert out.returncode == 0 and out.stdout.strip().endswith("OK"), out.stderr[-3000:]


def test_version_matches_the_package_metadata() -> None:
    from importlib.metadata import version

    assert w2amsn_plugin.__version__ == version("w2amsn-plugin")
