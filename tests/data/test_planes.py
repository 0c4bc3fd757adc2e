"""The plane definition shared by preparation and inference (w2amsn_plugin.data.planes)."""
from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from w2amsn_plugin.data.planes import PLANES, acquisition_voxel_axis, plane_name, slice_axis


def _affine(axcodes: str, zooms: tuple[float, float, float]) -> np.ndarray:
    """An affine whose voxel axes point along ``axcodes`` (e.g. 'PSR') with these voxel sizes."""
    ornt = nib.orientations.axcodes2ornt(tuple(axcodes))
    aff = np.eye(4)
    aff[:3, :3] = 0
    for vox_axis, (ras_axis, flip) in enumerate(ornt.astype(int)):
        aff[ras_axis, vox_axis] = flip * zooms[vox_axis]
    return aff


def test_ixi_t1_sagittal_acquisition():
    # IXI T1: 256x256x150 at 0.94x0.94x1.2 mm, stored with the third axis left-right
    zooms = (0.9375, 0.9375, 1.2)
    aff = _affine("PSR", zooms)
    assert acquisition_voxel_axis(zooms) == 2
    assert slice_axis("acquisition", aff, zooms) == 0 and plane_name(0) == "sagittal"
    assert slice_axis("axial", aff, zooms) == 2


def test_t2_pd_axial_acquisition_and_ties():
    zooms = (0.9375, 0.9375, 1.2)
    assert slice_axis("acquisition", _affine("LPS", zooms), zooms) == 2  # IXI T2/PD: axial
    iso = (1.0, 1.0, 1.0)
    assert acquisition_voxel_axis(iso) == 2  # ties: the stored first two axes are the plane
    assert slice_axis("acquisition", _affine("RSA", iso), iso) == 1  # third stored axis is A-P
    # the coarsest axis may be stored first (a 2x3 mm in-plane scan with 1 mm slices is not that)
    assert acquisition_voxel_axis((3.0, 0.9, 0.9)) == 0
    assert acquisition_voxel_axis((2.0, 3.0, 2.0)) == 1


def test_bad_values():
    assert PLANES[0] == "acquisition"
    with pytest.raises(ValueError, match="unknown plane"):
        slice_axis("oblique", np.eye(4), (1, 1, 1))
    with pytest.raises(ValueError, match="three positive"):
        acquisition_voxel_axis((1.0, 0.0, 1.0))


def test_display_convention_keeps_anatomy_upright():
    from w2amsn_plugin.data.planes import plane_stack, unplane_stack

    vol = np.zeros((20, 30, 40), np.float32)  # RAS: x = L->R, y = P->A, z = I->S
    vol[15:, 25:, 35:] = 1  # a corner at patient right, anterior, superior
    axial = plane_stack(vol, 2)
    assert axial.shape == (40, 30, 20)
    rows, cols = np.nonzero(axial[38])
    assert rows.max() < 5 and cols.min() >= 15  # anterior at the top, right on the right
    coronal = plane_stack(vol, 1)
    assert coronal.shape == (30, 40, 20)
    rows, cols = np.nonzero(coronal[28])
    assert rows.max() < 5 and cols.min() >= 15  # superior at the top, right on the right
    sagittal = plane_stack(vol, 0)
    assert sagittal.shape == (20, 40, 30)
    rows, cols = np.nonzero(sagittal[18])
    assert rows.max() < 5 and cols.max() < 5  # superior at the top, anterior on the left
    for axis in (0, 1, 2):
        np.testing.assert_array_equal(unplane_stack(plane_stack(vol, axis), axis), vol)
    with pytest.raises(ValueError, match="unknown orientation"):
        slice_axis("acquisition", np.diag([1.0, 0.0, 1.0, 1.0]), (1, 1, 1))
