"""Arch discovery (archs/discovery.py): every ``*_arch.py`` is imported; a broken one stops the
import with one line naming the file; presets merge from each arch's file; experiment names work
for a network without num_block/num_feat."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

import w2amsn_plugin  # noqa: F401  (registers the archs)
from w2amsn_plugin.archs import PRESETS, TABLE_II, experiment_tag
from w2amsn_plugin.archs.discovery import ArchImportError, arch_files, import_arch_modules
from w2amsn_plugin.archs.presets import preset_source


def _package(tmp_path: Path, files: dict[str, str]) -> str:
    pkg = tmp_path / "fake_archs"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    for name, text in files.items():
        (pkg / name).write_text(text)
    sys.path.insert(0, str(tmp_path))
    return str(pkg)


def test_every_arch_file_is_imported_and_a_broken_one_is_named(tmp_path: Path) -> None:
    pkg = _package(tmp_path, {"good_arch.py": "PRESETS = {'Good': {'type': 'X'}}\n",
                              "helper.py": "raise RuntimeError('not an arch file')\n",
                              "broken_arch.py": "import torch\ndef broken(:\n"})
    try:
        with pytest.raises(ArchImportError) as info:
            import_arch_modules("fake_archs", Path(pkg))
        message = str(info.value)
        assert "broken_arch.py" in message and "SyntaxError" in message and "\n" not in message
        (Path(pkg) / "broken_arch.py").unlink()
        modules = import_arch_modules("fake_archs", Path(pkg))
        assert [m.__name__ for m in modules] == ["fake_archs.good_arch"]  # helper.py not imported
    finally:
        sys.path.remove(str(tmp_path))
        for name in [n for n in sys.modules if n.startswith("fake_archs")]:
            del sys.modules[name]


def test_presets_come_from_the_arch_files() -> None:
    names = {p.name for p in arch_files()}
    assert {"gray_baselines_arch.py", "w2amsn_arch.py", "w2amsn_presets.py"} <= names
    assert preset_source("RCAN").endswith("gray_baselines_arch.py")
    assert preset_source("W2AMSN").endswith("w2amsn_presets.py")
    assert {"W2AMSN", "W2AMSN-S", "EDSR", "RCAN"} <= set(PRESETS) and set(TABLE_II) <= set(PRESETS)


def test_experiment_tag_without_block_keys() -> None:
    assert experiment_tag({"type": "W2AMSN", "num_feat": 32, "num_block": 20}) == "a32t20"
    assert experiment_tag({"type": "SomethingNew", "num_feat": 8, "num_block": 2}) == "b2f8"
    assert experiment_tag({"type": "SomethingNew", "width": 8}) == ""
