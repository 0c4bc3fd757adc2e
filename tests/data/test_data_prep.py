"""IXI preparation: naming, reorientation, cropping, degradations and ``make_ixi_lmdb`` end to end,
on fake IXI trees built from the shipped real MR samples (Colin27, ICBM152)."""
from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

import w2amsn_plugin  # noqa: F401,I001  (compat before basicsr)
from basicsr.data.data_util import paired_paths_from_lmdb
from basicsr.utils.matlab_functions import imresize
from w2amsn_plugin.cli import w2amsn_main
from w2amsn_plugin.data import prepare, volume_slices
from w2amsn_plugin.data.degradations import bicubic_downscale, bicubic_matrix, kspace_truncate
from w2amsn_plugin.data.fake_ixi import make_fake_ixi_tree
from w2amsn_plugin.data.ixi import (IXIDataError, axial_stack, crop_stack, load_canonical,
                                    parse_ixi_name, parse_slice_key, scan_ixi_tree, slice_key)
from w2amsn_plugin.data.lmdb_io import read_meta_keys, readonly_env
from w2amsn_plugin.data.normalization import normalize_intensity
from w2amsn_plugin.data.png16 import decode_png
from w2amsn_plugin.data.samples import sample_path
from w2amsn_plugin.data.split import split_subjects

REPO = Path(__file__).resolve().parents[2]
CROP = (96, 96, 6)  # small crop of the real anatomy keeps every run to about a second
FAKE_SHAPE = (120, 136, 40)


@pytest.fixture(scope="module")
def colin() -> np.ndarray:
    """Colin27, canonical RAS, normalised to [0, 1]."""
    vol, _ = load_canonical(sample_path("colin27_t1"))
    return normalize_intensity(vol)[0]


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six subjects; subject 2 has no T2; plus a file whose name is not IXI's."""
    root = tmp_path_factory.mktemp("ixi")
    make_fake_ixi_tree(root, 6, ("T1", "T2"), shape=FAKE_SHAPE, skip=[(2, "T2")])
    (root / "notes").mkdir()
    (root / "notes" / "scan_copy.nii.gz").write_bytes((root / "IXI100-Guys-1000-T2.nii.gz")
                                                      .read_bytes())
    return root


def _cfg(root: Path, out: Path, **kw) -> prepare.PrepConfig:
    base = dict(ixi_root=root, modality="T2", out=out, scales=(2, 4), n_train=3, n_test=1,
                n_val=1, crop=CROP, workers=1, progress=False)
    base.update(kw)
    return prepare.PrepConfig(**base)


def _db_items(path: Path) -> dict[str, bytes]:
    with readonly_env(path).begin() as txn:
        return {k.decode(): bytes(v) for k, v in txn.cursor()}


# ------------------------------------------------------------------------------ naming, split
def test_ixi_names_and_keys():
    f = parse_ixi_name("/d/IXI002-Guys-0828-T1.nii.gz")
    assert (f.subject, f.modality) == ("IXI002-Guys-0828", "T1")
    assert parse_ixi_name("IXI013-HH-1212-PD.nii.gz").subject == "IXI013-HH-1212"
    for bad in ("IXI002-Guys-0828-T1.nii.gz.bak", "IXI2-Guys-0828-T1.nii.gz", "ch2.nii.gz",
                "IXI002-Guys-0828-FLAIR.nii.gz"):
        assert parse_ixi_name(bad) is None
    key = slice_key("IXI002-Guys-0828", "T1", 42)
    assert key == "IXI002-Guys-0828_T1_s042" and "." not in key
    assert parse_slice_key(key) == ("IXI002-Guys-0828", "T1", 42)


def test_scan_tree_skips_foreign_names_and_handles_missing_modality(tree: Path):
    t2, warnings = scan_ixi_tree(tree, "T2")
    t1, _ = scan_ixi_tree(tree, "T1")
    assert len(t1) == 6 and len(t2) == 5 and "IXI102-IOP-1002" not in t2
    assert len(warnings) == 1 and "scan_copy.nii.gz" in warnings[0] and "not an IXI" in warnings[0]


def test_split_is_deterministic_disjoint_and_consistent_across_modalities():
    subjects = [f"IXI{i:03d}-HH-{i:04d}" for i in range(40)]
    a = split_subjects(subjects, 30, 6, 2, seed=1)
    assert a == split_subjects(reversed(subjects), 30, 6, 2, seed=1)
    assert a != split_subjects(subjects, 30, 6, 2, seed=2)
    assert [len(a[s]) for s in ("train", "test", "val", "unused")] == [30, 6, 2, 2]
    assert len(set().union(*a.values())) == 40
    # a modality lacking one unused subject keeps every other subject's split
    fewer = split_subjects([s for s in subjects if s != a["unused"][0]], 30, 6, 2, seed=1)
    assert {k: v for k, v in fewer.items() if k != "unused"} == \
        {k: v for k, v in a.items() if k != "unused"}
    with pytest.raises(IXIDataError, match="has 40 subjects, but the split asks for 41"):
        split_subjects(subjects, 33, 6, 2, seed=1)


# ------------------------------------------------------------------ orientation and cropping
def test_load_canonical_undoes_ixi_orientations(tmp_path: Path):
    img = nib.load(str(sample_path("mni152_2009a_t1")))
    ras = np.asarray(img.dataobj)[40:100, 50:120, 60:100].astype(np.int16)
    src = nib.Nifti1Image(ras, img.affine)
    for codes in (("P", "S", "R"), ("L", "P", "S"), ("R", "A", "S")):
        stored = src.as_reoriented(nib.orientations.ornt_transform(
            nib.orientations.axcodes2ornt("RAS"), nib.orientations.axcodes2ornt(codes)))
        path = tmp_path / f"IXI001-HH-0001-{''.join(codes)}.nii.gz"
        nib.save(stored, str(path))
        vol, got_codes = load_canonical(path)
        assert got_codes == codes
        np.testing.assert_array_equal(vol, ras)


def test_axial_stack_orientation():
    vol = np.zeros((20, 30, 10), np.float32)
    vol[15:, 25:, 3] = 1  # patient right (high x), anterior (high y), slice z = 3
    stack = axial_stack(vol)
    assert stack.shape == (10, 30, 20)
    rows, cols = np.nonzero(stack[3])
    assert rows.max() < 5 and cols.min() >= 15  # anterior at the top, right on the right


def test_crop_centres_the_foreground_and_pads(colin: np.ndarray):
    stack = axial_stack(colin)  # 181 slices, 217 x 181
    out, z0 = crop_stack(stack, 240, 200, 96)
    assert out.shape == (96, 240, 200)
    fg = np.flatnonzero((stack > 0.1).any(axis=(1, 2)))
    assert abs((z0 + 48) - (fg[0] + fg[-1] + 1) / 2) <= 1
    # padding: 23 rows = 12 above + 11 below, 19 columns = 10 left + 9 right
    np.testing.assert_array_equal(out[:, 12:12 + 217, 10:10 + 181], stack[z0:z0 + 96])
    assert out[:, :12].max() == 0 and out[:, :, :10].max() == 0 and out[:, -11:].max() == 0
    short, z_short = crop_stack(stack[:50], 64, 64, 60)
    assert short.shape == (60, 64, 64) and z_short == -5
    assert short[:5].max() == 0 and short[55:].max() == 0 and short[5:55].max() > 0


# ----------------------------------------------------------------------------- degradations
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_bicubic_equals_basicsr_imresize_on_real_slices(colin: np.ndarray, scale: int):
    stack, _ = crop_stack(axial_stack(colin), 120, 96, 3)  # rectangular: both axes differ
    ours = bicubic_downscale(stack, scale)
    for k in range(3):
        ref = imresize(stack[k], 1 / scale)
        assert ref.shape == ours[k].shape == (120 // scale, 96 // scale)
        np.testing.assert_allclose(ours[k], ref, atol=1e-6)
    assert np.allclose(bicubic_matrix(96, scale).sum(axis=1), 1.0)


def test_kspace_truncation_samples_band_limited_images_exactly():
    yy, xx = np.mgrid[0:48, 0:64]
    img = 1.5 + np.cos(2 * np.pi * (2 * xx / 64 + 3 * yy / 48)) + 0.3 * np.sin(2 * np.pi * yy / 48)
    for scale in (2, 4):
        low = kspace_truncate(img[None], scale)[0]
        assert low.shape == (48 // scale, 64 // scale)
        np.testing.assert_allclose(low, img[::scale, ::scale], atol=1e-9)
    # frequencies above the LR band are removed, not aliased
    fine = 1.0 + 0.5 * np.cos(2 * np.pi * 20 * xx / 64)
    np.testing.assert_allclose(kspace_truncate(fine[None], 4)[0], 1.0, atol=1e-9)


# ------------------------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def built(tree: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, prepare.PrepResult]:
    out = tmp_path_factory.mktemp("out")
    return out, prepare.make_ixi_lmdb(_cfg(tree, out, degradations=("bicubic", "truncation")),
                                      log=lambda m: None)


def test_outputs_layout_meta_info_and_manifest(built):
    out, result = built
    names = sorted(p.name for p in out.iterdir())
    expected = sorted([f"IXI_T2_{sp}_{kind}.lmdb" for sp in ("train", "val", "test")
                       for kind in ("HR", "LR_bicubic_X2", "LR_bicubic_X4", "LR_truncation_X2",
                                    "LR_truncation_X4")] + ["IXI_T2_split.json"])
    assert names == expected  # no staging, no .tmp left
    manifest = json.loads((out / "IXI_T2_split.json").read_text())
    splits = manifest["splits"]
    assert [len(splits[s]) for s in ("train", "val", "test")] == [3, 1, 1]
    assert "IXI102-IOP-1002" not in sum(splits.values(), [])  # has no T2
    assert manifest["options"]["crop"] == list(CROP)
    assert manifest["options"]["percentile"] == 99.5
    vol = manifest["volumes"][splits["test"][0]]
    assert vol["source_axcodes"] == "LPS" and vol["hi"] > vol["lo"]
    lines = (out / "IXI_T2_train_LR_bicubic_X4.lmdb" / "meta_info.txt").read_text().splitlines()
    assert len(lines) == 3 * CROP[2]
    assert lines[0] == f"{splits['train'][0]}_T2_s000.png (24,24,1) 1"
    # BasicSR's own reader accepts the pair and finds the same keys
    pairs = paired_paths_from_lmdb([str(out / "IXI_T2_train_LR_bicubic_X4.lmdb"),
                                    str(out / "IXI_T2_train_HR.lmdb")], ["lq", "gt"])
    assert [p["gt_path"] for p in pairs] == sorted(
        slice_key(s, "T2", k) for s in splits["train"] for k in range(CROP[2]))
    assert result.volumes_processed == 5


def test_values_are_16bit_and_lr_is_bicubic_of_stored_hr(built):
    out, _ = built
    hr = _db_items(out / "IXI_T2_val_HR.lmdb")
    lr = _db_items(out / "IXI_T2_val_LR_bicubic_X2.lmdb")
    tr = _db_items(out / "IXI_T2_val_LR_truncation_X4.lmdb")
    assert hr.keys() == lr.keys() == tr.keys() and len(hr) == CROP[2]
    key = sorted(hr)[CROP[2] // 2]
    import cv2
    raw = cv2.imdecode(np.frombuffer(hr[key], np.uint8), cv2.IMREAD_UNCHANGED)
    assert raw.dtype == np.uint16 and raw.shape == (96, 96)
    assert len(np.unique(raw)) > 1000  # real 16-bit content, not 8-bit
    hr_img = decode_png(hr[key])
    expected = np.clip(bicubic_downscale(hr_img[None].astype(np.float64), 2)[0], 0, 1)
    np.testing.assert_allclose(decode_png(lr[key]), expected, atol=0.6 / 65535)
    np.testing.assert_allclose(decode_png(tr[key]),
                               np.clip(kspace_truncate(hr_img[None], 4)[0], 0, 1), atol=1e-4)


def test_resume_after_interrupt_skips_finished_volumes(tree: Path, built, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch):
    reference, _ = built
    calls: list[str] = []
    real = volume_slices.process_volume

    def interrupted(path, *args, **kwargs):  # Ctrl-C while the third volume is processed
        calls.append(Path(path).name)
        if len(calls) == 3 and not interrupted.done:
            interrupted.done = True
            raise KeyboardInterrupt
        return real(path, *args, **kwargs)

    interrupted.done = False

    monkeypatch.setattr(volume_slices, "process_volume", interrupted)
    cfg = _cfg(tree, tmp_path, degradations=("bicubic", "truncation"))
    with pytest.raises(KeyboardInterrupt):
        prepare.make_ixi_lmdb(cfg, log=lambda m: None)
    assert not list(tmp_path.glob("*.lmdb")) and not (tmp_path / "IXI_T2_split.json").exists()
    assert len((tmp_path / ".IXI_T2_staging" / "done.jsonl").read_text().splitlines()) == 2
    calls.clear()
    result = prepare.make_ixi_lmdb(cfg, log=lambda m: None)
    assert len(calls) == 3 and result.volumes_processed == 3  # 5 volumes, 2 were done
    for name in ("IXI_T2_train_HR.lmdb", "IXI_T2_test_LR_truncation_X4.lmdb"):
        assert _db_items(tmp_path / name) == _db_items(reference / name)
    assert (tmp_path / "IXI_T2_train_HR.lmdb" / "meta_info.txt").read_text() == \
        (reference / "IXI_T2_train_HR.lmdb" / "meta_info.txt").read_text()
    # complete: a rerun does nothing; other options are refused unless --overwrite
    calls.clear()
    assert prepare.make_ixi_lmdb(cfg, log=lambda m: None).volumes_processed == 0 and not calls
    with pytest.raises(IXIDataError, match="IXI_T2_split.json: written with other options"):
        prepare.make_ixi_lmdb(_cfg(tree, tmp_path, crop=(64, 64, 6)), log=lambda m: None)
    monkeypatch.setattr(volume_slices, "process_volume", real)
    again = prepare.make_ixi_lmdb(_cfg(tree, tmp_path, crop=(64, 64, 6), overwrite=True),
                                  log=lambda m: None)
    assert again.volumes_processed == 5
    assert not list(tmp_path.glob("*truncation*"))


def test_crash_while_publishing_is_finished_by_a_rerun(tree: Path, built, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch):
    reference, _ = built
    real_replace = prepare.os.replace
    published: list[str] = []

    def crashing_replace(src, dst):
        if str(src).endswith(".lmdb.final"):
            if len(published) == 4:
                raise KeyboardInterrupt  # killed after 4 of 15 databases were moved
            published.append(Path(dst).name)
        real_replace(src, dst)

    monkeypatch.setattr(prepare.os, "replace", crashing_replace)
    cfg = _cfg(tree, tmp_path, degradations=("bicubic", "truncation"))
    with pytest.raises(KeyboardInterrupt):
        prepare.make_ixi_lmdb(cfg, log=lambda m: None)
    monkeypatch.setattr(prepare.os, "replace", real_replace)
    assert len(list(tmp_path.glob("*.lmdb"))) == 4
    assert prepare.make_ixi_lmdb(cfg, log=lambda m: None).volumes_processed == 0
    assert sorted(p.name for p in tmp_path.glob("*.lmdb")) == \
        sorted(p.name for p in reference.glob("*.lmdb"))
    for path in reference.glob("*.lmdb"):
        assert _db_items(tmp_path / path.name) == _db_items(path)
    assert not (tmp_path / ".IXI_T2_staging").exists()


def test_adding_a_scale_later_keeps_the_hr_database(tree: Path, tmp_path: Path):
    prepare.make_ixi_lmdb(_cfg(tree, tmp_path, scales=(2,)), log=lambda m: None)
    before = (tmp_path / "IXI_T2_train_HR.lmdb" / "data.mdb").stat().st_mtime_ns
    prepare.make_ixi_lmdb(_cfg(tree, tmp_path, scales=(2,), degradations=("truncation",)),
                          log=lambda m: None)
    assert (tmp_path / "IXI_T2_train_HR.lmdb" / "data.mdb").stat().st_mtime_ns == before
    assert read_meta_keys(tmp_path / "IXI_T2_train_LR_truncation_X2.lmdb") == \
        read_meta_keys(tmp_path / "IXI_T2_train_HR.lmdb")


def test_crop_is_cut_to_a_multiple_of_the_scales(tree: Path, tmp_path: Path):
    msgs: list[str] = []
    res = prepare.make_ixi_lmdb(_cfg(tree, tmp_path, scales=(3, 4), crop=(100, 90, 4),
                                     n_train=1, n_test=0, n_val=0), log=msgs.append)
    assert res.manifest["options"]["crop"] == [96, 84, 4]
    assert res.manifest["protocol"]["crop"] == [84, 96, 4]  # height, width, depth
    assert any("cut to 96x84" in m for m in msgs)
    assert (tmp_path / "IXI_T2_train_LR_bicubic_X3.lmdb" / "meta_info.txt").read_text() \
        .splitlines()[0].endswith("(28,32,1) 1")  # height 84 / 3, width 96 / 3
    assert read_meta_keys(tmp_path / "IXI_T2_train_LR_bicubic_X3.lmdb")
    assert not (tmp_path / "IXI_T2_val_HR.lmdb").exists()  # empty splits get no database


# ---------------------------------------------------------------------------------- bad input
def _bad_tree(tmp_path: Path, kind: str) -> Path:
    root = tmp_path / "ixi"
    make_fake_ixi_tree(root, 3, ("T1",), shape=(64, 72, 24))  # stored P S R: sagittal plane
    bad = root / "IXI101-HH-1001-T1.nii.gz"
    img = nib.load(str(bad))
    data = np.asarray(img.dataobj).astype(np.float32)
    if kind == "truncated":
        raw = bad.read_bytes()
        bad.write_bytes(raw[: len(raw) // 2])
    elif kind == "not_nifti":
        bad.write_bytes(gzip.compress(b"this is not a NIfTI file" * 20))
    elif kind == "4d":
        nib.save(nib.Nifti1Image(np.stack([data, data], -1), img.affine), str(bad))
    elif kind == "nan":
        data[10, 10, 10] = np.nan
        nib.save(nib.Nifti1Image(data, img.affine), str(bad))
    elif kind == "small":  # stored P x S x R: a 30 x 30 sagittal plane
        nib.save(nib.Nifti1Image(data[:30, :30], img.affine), str(bad))
    elif kind == "unoriented":
        unoriented = nib.Nifti1Image(data, None)
        affine = img.affine.copy()
        affine[:, 1] = 0  # the second stored axis points nowhere
        unoriented.header.set_sform(affine, code=1)
        unoriented.header.set_qform(None, code=0)
        nib.save(unoriented, str(bad))
    return root


@pytest.mark.parametrize("kind, problem", [
    ("truncated", "cannot read voxel data, file corrupt or truncated"),
    ("not_nifti", "cannot read NIfTI header"),
    ("4d", "expected a 3-D volume, got shape (64, 72, 24, 2)"),
    ("nan", "NaN or infinite values"),
    ("small", "acquisition plane (sagittal) is 30x30 (height x width), smaller than the crop 48x48"),
    ("unoriented", "unknown orientation"),
])
def test_bad_volume_is_one_clear_line_and_no_database(tmp_path: Path, capsys, kind, problem):
    root = _bad_tree(tmp_path, kind)
    out = tmp_path / "out"
    args = ["--ixi-root", str(root), "--modality", "T1", "--out", str(out), "--n-train", "2",
            "--n-test", "1", "--n-val", "0", "--crop", "48", "48", "4", "--workers", "1",
            "--no-progress"]
    assert _run_cli(args) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(err) == 1
    assert "IXI101-HH-1001-T1.nii.gz" in err[0] and problem in err[0]
    assert not list(out.glob("*.lmdb")) and not list(out.glob("*.json"))


def test_too_few_subjects_and_bad_options(tree: Path, tmp_path: Path, capsys):
    base = ["--ixi-root", str(tree), "--out", str(tmp_path), "--no-progress"]
    assert _run_cli(base + ["--modality", "T2", "--n-train", "5"]) == 2
    err = capsys.readouterr().err
    assert "(T2) has 5 subjects, but the split asks for 81" in err
    assert _run_cli(base + ["--modality", "T2", "--n-train", "1", "--scales", "1"]) == 2
    assert "--scales must be integers >= 2" in capsys.readouterr().err
    assert _run_cli(["--ixi-root", str(tmp_path / "nope"), "--modality", "T1", "--out",
                     str(tmp_path)]) == 2
    assert "IXI root is not a folder" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.lmdb"))


def _run_cli(args: list[str]) -> int:
    return w2amsn_main(["prepare-ixi", *args])


@pytest.mark.slow
def test_script_with_two_workers_matches_one_worker(tree: Path, built, tmp_path: Path):
    reference, _ = built
    cmd = [sys.executable, str(REPO / "scripts" / "make_ixi_lmdb.py"), "--ixi-root", str(tree),
           "--modality", "T2", "--out", str(tmp_path), "--scales", "2", "4", "--degradation",
           "bicubic", "truncation", "--n-train", "3", "--n-test", "1", "--n-val", "1", "--crop",
           *map(str, CROP), "--workers", "2", "--no-progress"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "5 volumes processed" in proc.stderr
    for path in reference.glob("*.lmdb"):
        assert _db_items(tmp_path / path.name) == _db_items(path)


# ------------------------------------------------------- IXI's real geometry: the protocol
@pytest.fixture(scope="module")
def ixi_sized(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two subjects with IXI's geometry: T1 stored PSR 256x256x150, T2 LPS 256x256x130,
    0.9375 x 0.9375 x 1.2 mm."""
    root = tmp_path_factory.mktemp("ixi_sized")
    make_fake_ixi_tree(root, 2, ("T1", "T2"), shape="ixi")
    return root


def _ixi_cfg(root: Path, out: Path, modality: str, **kw) -> prepare.PrepConfig:
    base = dict(ixi_root=root, modality=modality, out=out, scales=(2, 4), n_train=1, n_test=1,
                n_val=0, crop=(240, 240, 6), workers=1, progress=False)
    base.update(kw)
    return prepare.PrepConfig(**base)


@pytest.mark.parametrize("modality, plane, axis", [("T1", "sagittal", 0), ("T2", "axial", 2)])
def test_acquisition_plane_of_ixi_geometry_fills_240x240(ixi_sized: Path, tmp_path: Path,
                                                         modality: str, plane: str, axis: int):
    res = prepare.make_ixi_lmdb(_ixi_cfg(ixi_sized, tmp_path, modality), log=lambda m: None)
    protocol = res.manifest["protocol"]
    assert protocol["plane"] == "acquisition" and protocol["crop"] == [240, 240, 6]
    assert protocol["in_plane_voxel_mm"] == [0.9375, 0.9375]
    assert (protocol["percentile"], protocol["bits"], protocol["slice_selection"]) == \
        (99.5, 16, "head")
    assert protocol["degradation"] == ["bicubic"] and protocol["scales"] == [2, 4]
    assert len(protocol["id"]) == 16
    for vol in res.manifest["volumes"].values():
        assert vol["plane_axis_ras"] == axis and not vol["padded"]
    hr = _db_items(tmp_path / f"IXI_{modality}_train_HR.lmdb")
    lr = _db_items(tmp_path / f"IXI_{modality}_train_LR_bicubic_X4.lmdb")
    for key in sorted(hr):
        img = decode_png(hr[key])
        assert img.shape == (240, 240)
        # no padding band: every border row and column holds anatomy or noise, never exact zeros
        for band in (img[0], img[-1], img[:, 0], img[:, -1]):
            assert np.count_nonzero(band) > 200
        expected = np.clip(bicubic_downscale(img[None].astype(np.float64), 4)[0], 0, 1)
        np.testing.assert_allclose(decode_png(lr[key]), expected, atol=0.6 / 65535)
    stamp = json.loads((tmp_path / f"IXI_{modality}_train_HR.lmdb" / "w2amsn_protocol.json")
                       .read_text())
    assert stamp["protocol_id"] == protocol["id"] and stamp["kind"] == "HR"


def test_sagittal_slices_are_upright(ixi_sized: Path, tmp_path: Path):
    """Display convention: superior at the top, anterior on the left (data/planes.DISPLAY)."""
    prepare.make_ixi_lmdb(_ixi_cfg(ixi_sized, tmp_path, "T1", n_test=0, n_train=1),
                          log=lambda m: None)
    manifest = json.loads((tmp_path / "IXI_T1_split.json").read_text())
    subject = manifest["splits"]["train"][0]
    vol = manifest["volumes"][subject]
    ras, _ = load_canonical(ixi_sized / vol["file"])
    ras = normalize_intensity(ras)[0]
    hr = _db_items(tmp_path / "IXI_T1_train_HR.lmdb")
    k = 3
    img = decode_png(hr[slice_key(subject, "T1", k)])
    x = vol["slice_start"] + k
    expected = ras[x, ::-1, ::-1].T[8:248, 8:248]  # rows: S at the top; cols: A on the left
    np.testing.assert_allclose(img, expected, atol=0.6 / 65535)


def test_axial_of_sagittal_t1_is_one_flag_away_and_padded(ixi_sized: Path, tmp_path: Path):
    msgs: list[str] = []
    res = prepare.make_ixi_lmdb(_ixi_cfg(ixi_sized, tmp_path, "T1", plane="axial"),
                                log=msgs.append)
    assert res.manifest["protocol"]["plane"] == "axial"
    assert res.manifest["protocol"]["in_plane_voxel_mm"] == [0.9375, 1.2]  # rows A-P, cols L-R
    assert all(v["padded"] and v["plane_axis_ras"] == 2 for v in res.manifest["volumes"].values())
    assert any("axial plane of 2 volume(s)" in m and "zero-padded" in m for m in msgs)
    img = decode_png(next(iter(_db_items(tmp_path / "IXI_T1_test_HR.lmdb").values())))
    assert img.shape == (240, 240) and img[:, :45].max() == 0  # 150 L-R voxels in 240 columns


def test_protocol_flags_bits_percentile_and_central_slices(tree: Path, tmp_path: Path):
    res = prepare.make_ixi_lmdb(_cfg(tree, tmp_path, bits=8, percentile=100.0, slices="central",
                                     scales=(2,)), log=lambda m: None)
    protocol = res.manifest["protocol"]
    assert (protocol["bits"], protocol["percentile"], protocol["slice_selection"]) == \
        (8, 100.0, "central")
    import cv2
    hr = _db_items(tmp_path / "IXI_T2_val_HR.lmdb")
    lr = _db_items(tmp_path / "IXI_T2_val_LR_bicubic_X2.lmdb")
    key = sorted(hr)[2]
    raw = cv2.imdecode(np.frombuffer(hr[key], np.uint8), cv2.IMREAD_UNCHANGED)
    assert raw.dtype == np.uint8
    assert cv2.imdecode(np.frombuffer(lr[key], np.uint8), cv2.IMREAD_UNCHANGED).dtype == np.uint8
    expected = np.clip(bicubic_downscale(decode_png(hr[key])[None].astype(np.float64), 2)[0], 0, 1)
    np.testing.assert_allclose(decode_png(lr[key]), expected, atol=0.51 / 255)
    vol = next(iter(res.manifest["volumes"].values()))
    assert vol["slice_start"] == (FAKE_SHAPE[2] - CROP[2]) // 2  # T2 is axial: 40 slices
    # another protocol in the same folder is refused, with the option named by the manifest
    with pytest.raises(IXIDataError, match="written with other options"):
        prepare.make_ixi_lmdb(_cfg(tree, tmp_path, bits=16, percentile=100.0, slices="central",
                                   scales=(2,)), log=lambda m: None)
