"""Coarse axis, factor and output grid of ``w2amsn self-sr`` (w2amsn_plugin.selfsr.geometry) on
synthetic headers of every orientation: RAS, LPS, permuted and oblique affines, integer and
non-integer factors, and the inputs it refuses."""
from __future__ import annotations

import math

import nibabel as nib
import numpy as np
import pytest

from w2amsn_plugin.inference.geometry import voxel_corners_world
from w2amsn_plugin.selfsr.errors import SelfSRError
from w2amsn_plugin.selfsr.geometry import MIN_FACTOR, scan_geometry, voxel_spacings


def _rotation(ax: float, ay: float, az: float) -> np.ndarray:
    cx, sx, cy, sy, cz, sz = (math.cos(ax), math.sin(ax), math.cos(ay), math.sin(ay),
                              math.cos(az), math.sin(az))
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


def _affine(zooms, rotation=None, flips=(1, 1, 1), perm=(0, 1, 2), origin=(-90, 12, 40)):
    """Columns: voxel axis i moves by zooms[i] along world axis perm[i] (flipped), then rotated."""
    cols = np.zeros((3, 3))
    for i, (z, f, p) in enumerate(zip(zooms, flips, perm)):
        cols[p, i] = z * f
    aff = np.eye(4)
    aff[:3, :3] = (np.eye(3) if rotation is None else rotation) @ cols
    aff[:3, 3] = origin
    return aff


ORIENTATIONS = {
    "RAS": dict(),
    "LPS": dict(flips=(-1, -1, 1)),
    "LAS-permuted": dict(flips=(-1, 1, 1), perm=(2, 0, 1)),
    "oblique": dict(rotation=_rotation(0.3, -0.2, 0.5)),
    "oblique-LPI": dict(rotation=_rotation(-0.4, 0.1, 0.25), flips=(-1, -1, -1), perm=(1, 2, 0)),
}


@pytest.mark.parametrize("name", sorted(ORIENTATIONS))
@pytest.mark.parametrize("coarse", [0, 1, 2])
@pytest.mark.parametrize("factor", [2.0, 4.0, 1.5, 4.8, 2.5])
def test_axis_factor_and_field_of_view(name, coarse, factor):
    shape = [40, 36, 44]
    shape[coarse] = 15
    zooms = [0.9, 0.9, 0.9]
    zooms[coarse] = 0.9 * factor
    affine = _affine(zooms, **ORIENTATIONS[name])
    assert np.allclose(voxel_spacings(affine), zooms)
    geo = scan_geometry(tuple(shape), affine)
    assert geo.axis == coarse
    assert geo.factor == pytest.approx(factor)
    assert geo.net_factor == math.ceil(factor - 1e-9)
    assert geo.out_len == round(15 * factor)
    assert geo.integer == (geo.out_len == 15 * geo.net_factor)
    out_affine = geo.out_affine(affine)
    # the same field of view: the outer voxel edges stay where they were in world coordinates
    assert np.allclose(voxel_corners_world(out_affine, geo.out_shape),
                       voxel_corners_world(affine, tuple(shape)), atol=1e-6)
    # on the in-plane spacing along the coarse axis, the other axes untouched, same orientation
    out_zooms = voxel_spacings(out_affine)
    assert out_zooms[coarse] == pytest.approx(0.9, rel=0.51 / geo.out_len)  # whole voxels in the FOV
    assert out_zooms[coarse] == pytest.approx(geo.out_spacing)
    assert np.allclose(np.delete(out_zooms, coarse), np.delete(zooms, coarse))
    assert nib.aff2axcodes(out_affine) == nib.aff2axcodes(affine)


def test_anisotropic_in_plane_uses_the_finer_spacing():
    geo = scan_geometry((64, 60, 20), _affine((0.8, 1.0, 4.0)))
    assert geo.axis == 2 and geo.in_plane == pytest.approx(0.8) and geo.factor == pytest.approx(5.0)


def test_slice_spacing_override():
    geo = scan_geometry((64, 64, 20), _affine((1.0, 1.0, 3.0)), slice_spacing=4.0)
    assert geo.factor == pytest.approx(4.0) and geo.net_factor == 4


@pytest.mark.parametrize("shape,zooms,match", [
    ((32, 32, 32), (1.0, 1.0, 1.0), "isotropic.*nothing to do"),
    ((32, 32, 32), (1.0, 1.0, 1.01), "isotropic.*nothing to do"),
    ((32, 32, 32), (1.0, 1.0, 1.1), f"below {MIN_FACTOR}"),
    ((32, 32), (1.0, 1.0, 3.0), "expected a 3-D volume"),
    ((32, 32, 8, 3), (1.0, 1.0, 3.0), "4-D series"),
])
def test_refused(shape, zooms, match):
    with pytest.raises(SelfSRError, match=match) as err:
        scan_geometry(shape, _affine(zooms), name="scan.nii.gz")
    assert "\n" not in str(err.value) and str(err.value).startswith("scan.nii.gz")
