"""ITK/ANTs export: applying ``ddf_itk`` with ANTsPy reproduces innreg's warp on oblique, anisotropic grids."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from innreg.data import Image, load_image, resample_to, save_image
from innreg.data.itk import itk_displacement, save_itk_field
from innreg.nn import warp

ants = pytest.importorskip("ants")


def ncc(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


def grid_affine(shape: tuple[int, ...], angles: tuple[float, ...], spacing: tuple[float, ...], centre: tuple[float, ...]) -> np.ndarray:
    """4x4 affine of a grid with rotated (oblique) axes whose centre sits at world ``centre``; 2D grids
    rotate in the x-y plane."""
    dim = len(shape)
    rotation = Rotation.from_euler("zyx"[: len(angles)], angles, degrees=True).as_matrix()
    affine = np.eye(4)
    affine[:3, :3] = rotation @ np.diag(list(spacing) + [1.0] * (3 - dim))
    half = np.array([(s - 1) / 2 for s in shape] + [0.0] * (3 - dim))
    affine[:3, 3] = np.asarray(centre) - affine[:3, :3] @ half
    return affine


def blobs(image_shape: tuple[int, ...], affine: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Smooth test content defined in world coordinates, so every grid sees the same object."""
    dim = len(image_shape)
    index = np.stack(np.meshgrid(*[np.arange(s) for s in image_shape], indexing="ij"))
    world = np.einsum("ck,k...->c...", affine[:3, :dim], index) + affine[:3, 3].reshape(3, *([1] * dim))
    out = np.zeros(image_shape)
    for k, centre in enumerate(centres):
        dist2 = ((world - centre.reshape(3, *([1] * dim))) ** 2).sum(0)
        out += (k + 1) * np.exp(-dist2 / (2 * 4.0**2))
    return out.astype(np.float32)


def smooth_field(dim: int, shape: tuple[int, ...], rng: np.random.Generator, amplitude: float) -> np.ndarray:
    coarse = torch.from_numpy(rng.normal(0, amplitude, size=(1, dim) + (3,) * dim).astype(np.float32))
    mode = ("bilinear", "trilinear")[dim - 2]
    return torch.nn.functional.interpolate(coarse, size=shape, mode=mode, align_corners=True)[0].numpy()


# (shape, rotation angles in degrees, spacing in mm, world position of the grid centre); the moving
# grid covers the fixed one, so both see the whole object (edges are handled differently by ITK).
CASES = {
    2: dict(fixed=((40, 36), (20.0,), (1.2, 0.8), (1, -1, 0)), moving=((44, 48), (-10.0,), (1.0, 1.1), (-1, 1, 0))),
    3: dict(
        fixed=((28, 24, 18), (20.0, 10.0, -15.0), (1.2, 1.0, 2.0), (1, -1, 2)),
        moving=((36, 40, 24), (-5.0, 12.0, 8.0), (1.3, 1.0, 2.0), (-1, 1, 0)),
    ),
}


@pytest.mark.parametrize("dim", [2, 3])
def test_ants_applies_the_exported_field_like_innreg(dim, tmp_path):
    rng = np.random.default_rng(dim)
    (f_shape, f_ang, f_sp, f_org), (m_shape, m_ang, m_sp, m_org) = CASES[dim]["fixed"], CASES[dim]["moving"]
    fixed_aff, moving_aff = grid_affine(f_shape, f_ang, f_sp, f_org), grid_affine(m_shape, m_ang, m_sp, m_org)
    centres = np.array([[0, 0, 0], [7, -5, 0 if dim == 2 else 3], [-6, 4, 0 if dim == 2 else -3]], dtype=float)
    fixed = Image(blobs(f_shape, fixed_aff, centres), fixed_aff)
    moving = Image(blobs(m_shape, moving_aff, centres + (2.0, -1.0, 0.0)), moving_aff)
    save_image(tmp_path / "fixed.nii.gz", fixed.array, fixed)
    save_image(tmp_path / "moving.nii.gz", moving.array, moving)
    ddf = smooth_field(dim, f_shape, rng, amplitude=2.0)
    # innreg: resample onto the fixed grid through world coordinates, then pull back through ddf
    on_fixed = torch.from_numpy(resample_to(moving, fixed).array)[None, None]
    ours = warp(on_fixed, torch.from_numpy(ddf)[None])[0, 0].numpy()
    field = save_itk_field(tmp_path / "ddf_itk.nii.gz", ddf, fixed)
    theirs = ants.apply_transforms(
        ants.image_read(str(tmp_path / "fixed.nii.gz")), ants.image_read(str(tmp_path / "moving.nii.gz")), [str(field)]
    ).numpy()
    assert theirs.shape == ours.shape
    assert ncc(ours, theirs) >= 0.99
    # the field is not trivially small: without it ANTs' result differs clearly
    plain = ants.apply_transforms(
        ants.image_read(str(tmp_path / "fixed.nii.gz")), ants.image_read(str(tmp_path / "moving.nii.gz")), []
    ).numpy()
    assert ncc(ours, plain) < ncc(ours, theirs) - 0.01


def test_itk_displacement_is_world_millimetres_in_lps():
    affine = np.diag([2.0, 3.0, 4.0, 1.0])
    reference = Image(np.zeros((4, 5, 6), np.float32), affine)
    ddf = np.zeros((3, 4, 5, 6), np.float32)
    ddf[0], ddf[1], ddf[2] = 1.0, -1.0, 0.5
    out = itk_displacement(ddf, reference)
    assert out.shape == (4, 5, 6, 3)
    np.testing.assert_allclose(out[0, 0, 0], [-2.0, 3.0, 2.0])


def test_ants_applies_the_field_of_a_coronal_slice_stored_with_a_singleton_middle_axis(tmp_path):
    """A 2D slice stored as H x 1 x W is a 3D image to ITK: the field gets 3 components and still applies."""
    rng = np.random.default_rng(0)
    data = rng.random((20, 1, 16)).astype(np.float32)
    affine = np.diag([2.0, 1.5, 3.0, 1.0])
    affine[:3, 3] = [5.0, -7.0, 11.0]
    nib.save(nib.Nifti1Image(data, affine), str(tmp_path / "slice.nii.gz"))
    image = load_image(tmp_path / "slice.nii.gz")
    ddf = np.zeros((2, *image.shape), np.float32)
    ddf[0] = 1.0  # one voxel along the first array axis: out(i) = in(i + 1)
    field = save_itk_field(tmp_path / "ddf_itk.nii.gz", ddf, image)
    assert nib.load(str(field)).shape == (20, 1, 16, 1, 3)
    reference = ants.image_read(str(tmp_path / "slice.nii.gz"))
    out = ants.apply_transforms(reference, reference, [str(field)]).numpy()[:, 0, :]
    np.testing.assert_allclose(out[:-1], image.array[1:], atol=1e-5)
