"""``prepare-ixi`` writes today what it wrote before it became the IXI preset of ``prepare``:
every database key and value (as SHA-256), every ``meta_info.txt``, every protocol stamp and the
manifest (less the files' sizes and times), on a fixed fake IXI tree, compared with
``golden/prepare_ixi_fake.json`` (recorded with the code before the change).

Regenerate the golden file only for an intended format change:
``python tests/data/test_prepare_ixi_golden.py --record``.
"""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pytest

import w2amsn_plugin  # noqa: F401  (compat before basicsr)
from w2amsn_plugin.data.fake_ixi import make_fake_ixi_tree
from w2amsn_plugin.data.prepare import PrepConfig, make_ixi_lmdb

GOLDEN = Path(__file__).parent / "golden" / "prepare_ixi_fake.json"
#: the runs: (name, make_ixi_lmdb options); small volumes keep the whole file to seconds
RUNS = {
    "t1_acq_x234": dict(modality="T1", scales=(2, 3, 4), crop=(48, 48, 6)),
    "t2_axial_8bit_trunc": dict(modality="T2", scales=(2,), degradations=("bicubic", "truncation"),
                                crop=(48, 48, 4), bits=8, plane="coronal", slices="central"),
}
#: per-volume manifest fields that depend on the file's write time, not on the data
_FILE_FIELDS = ("mtime_ns", "size")


def make_tree(root: Path) -> Path:
    """Five subjects (subject 3 has no T2), stored shape 64x60x20, a fixed perturbation seed."""
    make_fake_ixi_tree(root, 5, ("T1", "T2"), shape=(64, 60, 20), skip=[(3, "T2")], seed=7)
    return root


def _lmdb_items(path: Path) -> dict[str, str]:
    import lmdb

    env = lmdb.open(str(path), readonly=True, lock=False, readahead=False, subdir=True)
    try:
        with env.begin() as txn:
            return {k.decode(): hashlib.sha256(bytes(v)).hexdigest() for k, v in txn.cursor()}
    finally:
        env.close()


def fingerprint(out: Path) -> dict:
    """Everything a run wrote into ``out`` that must not change (module docstring)."""
    result: dict = {}
    for path in sorted(out.iterdir()):
        if path.name.startswith("."):
            continue
        if path.suffix == ".lmdb":
            result[path.name] = {
                "values": _lmdb_items(path),
                "meta_info": (path / "meta_info.txt").read_text(),
                "stamp": json.loads((path / "w2amsn_protocol.json").read_text()),
                # lock.mdb is no longer published: it held process addresses (LMDB's lock table)
                "files": sorted(p.name for p in path.iterdir() if p.name != "lock.mdb"),
            }
        elif path.suffix == ".json":
            manifest = json.loads(path.read_text())
            for rec in manifest.get("volumes", {}).values():
                for key in _FILE_FIELDS:
                    rec.pop(key, None)
            result[path.name] = manifest
        else:
            result[path.name] = "unexpected file"
    return result


def run_all(tmp: Path) -> dict:
    tree = make_tree(tmp / "ixi")
    got = {}
    for name, options in RUNS.items():
        out = tmp / name
        make_ixi_lmdb(PrepConfig(ixi_root=tree, out=out, n_train=2, n_test=1, n_val=1,
                                 workers=1, progress=False, **options), log=lambda _msg: None)
        got[name] = fingerprint(out)
    return got


def test_prepare_ixi_writes_what_it_wrote_before(tmp_path: Path) -> None:
    golden = json.loads(GOLDEN.read_text())
    got = run_all(tmp_path)
    assert got.keys() == golden.keys()
    for name in golden:
        assert got[name].keys() == golden[name].keys(), name
        for entry, want in golden[name].items():
            if isinstance(want, dict) and "files" in want:
                want = want | {"files": [f for f in want["files"] if f != "lock.mdb"]}
            assert got[name][entry] == want, f"{name}: {entry} differs"


if __name__ == "__main__" and sys.argv[1:] == ["--record"]:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        GOLDEN.write_text(json.dumps(run_all(Path(tmp)), indent=1, sort_keys=True) + "\n")
    print(f"wrote {GOLDEN}")
elif __name__ == "__main__":
    pytest.main([__file__, "-q"])
