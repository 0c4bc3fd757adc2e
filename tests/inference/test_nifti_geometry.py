"""Geometry of super-resolved NIfTI volumes (w2amsn_plugin.inference.geometry)."""
from __future__ import annotations

import itertools

import nibabel as nib
import numpy as np
import pytest
from nibabel import orientations

from w2amsn_plugin.inference import geometry as geo
from w2amsn_plugin.data.planes import ANATOMICAL_PLANES

# an oblique, anisotropic, non-canonical affine (voxel 0.9 x 1.2 x 3 mm, rotated, LPI-ish)
_ROT = nib.eulerangles.euler2mat(0.3, -0.2, 0.1)
OBLIQUE = nib.affines.from_matvec(_ROT @ np.diag([-0.9, -1.2, -3.0]), [40.0, 60.0, -20.0])


def _all_ornts():
    for perm in itertools.permutations(range(3)):
        for flips in itertools.product((1, -1), repeat=3):
            yield np.array([[p, f] for p, f in zip(perm, flips)], dtype=float)


def test_upscale_voxel_map_keeps_outer_edges_and_centres():
    for scales in ((2, 2, 1), (3, 1, 3), (1, 4, 4)):
        vox = geo.upscale_voxel_map(scales)
        shape = (5, 6, 7)
        out_shape = tuple(n * s for n, s in zip(shape, scales))
        np.testing.assert_allclose(geo.voxel_corners_world(vox, out_shape),
                                   geo.voxel_corners_world(np.eye(4), shape), atol=1e-12)
        # first output voxel centre at -0.5 + 0.5 / s input voxels, last at n - 0.5 - 0.5 / s
        first = nib.affines.apply_affine(vox, [0, 0, 0])
        last = nib.affines.apply_affine(vox, np.array(out_shape) - 1)
        s = np.array(scales, float)
        np.testing.assert_allclose(first, -0.5 + 0.5 / s)
        np.testing.assert_allclose(last, np.array(shape) - 0.5 - 0.5 / s)


def test_voxel_corners_world_are_voxel_edges():
    corners = geo.voxel_corners_world(np.diag([2.0, 3.0, 4.0, 1.0]), (10, 20, 30))
    assert corners.shape == (8, 3)
    np.testing.assert_allclose(corners.min(0), [-1.0, -1.5, -2.0])
    np.testing.assert_allclose(corners.max(0), [19.0, 58.5, 118.0])


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_upscaled_affine_keeps_world_extent_and_divides_zooms(scale):
    shape = (11, 13, 7)
    for normal in ANATOMICAL_PLANES.values():
        scales = [scale if ax != normal else 1 for ax in range(3)]
        aff = geo.upscaled_affine(OBLIQUE, scales)
        out_shape = [n * s for n, s in zip(shape, scales)]
        np.testing.assert_allclose(geo.voxel_corners_world(aff, out_shape),
                                   geo.voxel_corners_world(OBLIQUE, shape), atol=1e-9)
        np.testing.assert_allclose(nib.affines.voxel_sizes(aff),
                                   np.array([0.9, 1.2, 3.0]) / scales)
        assert nib.aff2axcodes(aff) == nib.aff2axcodes(OBLIQUE)


def test_canonical_round_trip_every_orientation():
    rng = np.random.default_rng(0)
    canon = rng.random((4, 5, 6)).astype(np.float32)
    canon_aff = nib.affines.from_matvec(np.diag([1.0, 2.0, 3.0]), [-10.0, 5.0, 7.0])
    for ornt in _all_ornts():
        data = orientations.apply_orientation(canon, orientations.ornt_transform(
            orientations.axcodes2ornt("RAS"), ornt))
        # the affine of `data`: same voxels in the world as `canon`
        aff = canon_aff @ orientations.inv_ornt_aff(
            orientations.ornt_transform(orientations.axcodes2ornt("RAS"), ornt), canon.shape)
        assert nib.aff2axcodes(aff) == tuple(orientations.ornt2axcodes(ornt))
        got_ornt = geo.canonical_ornt(aff)
        np.testing.assert_array_equal(geo.to_canonical(data, got_ornt), canon)
        np.testing.assert_array_equal(geo.from_canonical(canon, got_ornt), data)
        # canonical axis k lives on input axis input_axes([k])
        for k in range(3):
            (ax,) = geo.input_axes([k], got_ornt)
            assert data.shape[ax] == canon.shape[k]


def _nifti(affine, qform=None, qcode=1, scode=4, dtype=np.int16, klass=nib.Nifti1Image):
    data = np.arange(4 * 5 * 6, dtype=dtype).reshape(4, 5, 6)
    img = klass(data, affine)
    img.header.set_qform(affine if qform is None else qform, code=qcode)
    img.header.set_sform(affine, code=scode)
    img.header.set_xyzt_units("mm", "sec")
    return klass(data, img.header.get_best_affine(), img.header)


@pytest.mark.parametrize("klass", [nib.Nifti1Image, nib.Nifti2Image])
def test_sr_image_maps_qform_and_sform_and_keeps_codes(klass):
    qform = OBLIQUE.copy()
    qform[:3, 3] += [1.0, -2.0, 3.0]  # a qform that differs from the sform
    ref = _nifti(OBLIQUE, qform=qform, qcode=1, scode=4, klass=klass)
    scales = (2, 1, 2)
    data = np.zeros((8, 5, 12), dtype=np.float32)
    out = geo.sr_image(ref, data, scales, description="test x2")
    assert type(out) is klass
    hdr = out.header
    assert (int(hdr["qform_code"]), int(hdr["sform_code"])) == (1, 4)
    vox = geo.upscale_voxel_map(scales)
    np.testing.assert_allclose(hdr.get_sform(), OBLIQUE @ vox, atol=1e-5)
    np.testing.assert_allclose(hdr.get_qform(), ref.header.get_qform() @ vox, atol=1e-5)
    np.testing.assert_allclose(hdr.get_zooms(), [0.45, 1.2, 1.5], rtol=1e-6)
    assert hdr.get_data_dtype() == np.float32
    assert hdr.get_xyzt_units() == ("mm", "sec")
    np.testing.assert_allclose(geo.voxel_corners_world(out.affine, data.shape),
                               geo.voxel_corners_world(ref.affine, ref.shape), atol=1e-4)


def test_sr_image_written_and_read_back(tmp_path):
    ref = _nifti(OBLIQUE, qcode=0, scode=2)
    data = np.arange(4 * 10 * 12, dtype=np.int16).reshape(4, 10, 12) - 100
    out = geo.sr_image(ref, data, (1, 2, 2))
    nib.save(out, tmp_path / "sr.nii.gz")
    back = nib.load(tmp_path / "sr.nii.gz")
    assert back.get_data_dtype() == np.int16
    np.testing.assert_array_equal(np.asanyarray(back.dataobj), data)  # no intensity scaling
    assert (int(back.header["qform_code"]), int(back.header["sform_code"])) == (0, 2)
    np.testing.assert_allclose(back.affine, ref.affine @ geo.upscale_voxel_map((1, 2, 2)),
                               atol=1e-5)


def test_sr_image_from_analyze_is_nifti_with_its_affine():
    data = np.zeros((4, 5, 6), dtype=np.int16)
    ref = nib.AnalyzeImage(data, np.diag([-2.0, 2.0, 2.5, 1.0]))
    out = geo.sr_image(ref, np.zeros((8, 10, 6), dtype=np.int16), (2, 2, 1))
    assert isinstance(out, nib.Nifti1Image)
    np.testing.assert_allclose(out.affine, ref.affine @ geo.upscale_voxel_map((2, 2, 1)))
    np.testing.assert_allclose(out.header.get_zooms(), [1.0, 1.0, 2.5])
    assert out.header.get_data_dtype() == np.int16
