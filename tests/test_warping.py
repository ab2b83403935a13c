"""``innreg apply`` and the ITK/ANTs export of ``register``: a registration written once is applied to
other images (forward and inverse, any grid) and in ANTs, and gives the same result as innreg."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from innreg.cli import main
from innreg.config import Config
from innreg.data import DeformationParams, Image, Interpolation, load_image, load_labels, make_phantom_pair, resample_to, save_image
from innreg.metrics import dice_per_label, mean_ignore_nan
from innreg.model import INNReg
from innreg.model_file import save_model

from .conftest import TINY


def oblique_affine(shape: tuple[int, ...], angles: tuple[float, ...], spacing: tuple[float, ...]) -> np.ndarray:
    """Affine of a grid with rotated axes and the given voxel size, centred on the world origin."""
    dim = len(shape)
    affine = np.eye(4)
    rotation = Rotation.from_euler("zyx"[: len(angles)], angles, degrees=True).as_matrix()
    affine[:3, :3] = rotation @ np.diag(list(spacing) + [1.0] * (3 - dim))
    affine[:3, 3] = -affine[:3, :3] @ np.array([(s - 1) / 2 for s in shape] + [0.0] * (3 - dim))
    return affine


def untrained_model(path: Path, dim: int) -> Path:
    """A tiny untrained network: its affine stage is the identity, so the per-pair refinement does the
    registration (a real field, found in seconds)."""
    config = Config.from_dict(TINY).updated(model={"dim": dim})
    save_model(INNReg(config.model), config, path)
    return path


def write_pair(
    folder: Path, dim: int, size: tuple[int, ...], fixed_affine: np.ndarray, moving_affine: np.ndarray | None,
    deformation: DeformationParams | None = None,
) -> dict[str, Path]:
    """A T2 -> T1 phantom pair on ``fixed_affine``; the moving image and labels resampled onto another
    grid (``moving_affine``, same shape) when given."""
    pair = make_phantom_pair(dim=dim, size=size, rng=3, deformation=deformation, skull_stripped=True)
    fixed = Image(pair.fixed, fixed_affine)
    moving, moving_seg = Image(pair.moving, fixed_affine), Image(pair.moving_seg, fixed_affine)
    if moving_affine is not None:
        grid = Image(np.zeros(size, np.float32), moving_affine)
        moving, moving_seg = resample_to(moving, grid), resample_to(moving_seg, grid, Interpolation.NEAREST)
    paths = {k: folder / f"{k}.nii.gz" for k in ("moving", "fixed", "moving_seg", "fixed_seg")}
    save_image(paths["fixed"], pair.fixed, fixed)
    save_image(paths["fixed_seg"], pair.fixed_seg, fixed)
    save_image(paths["moving"], moving.array, moving)
    save_image(paths["moving_seg"], moving_seg.array, moving_seg)
    return paths


def register(model: Path, pair: dict[str, Path], out: Path) -> Path:
    argv = ["register", "--model", model, "--moving", pair["moving"], "--fixed", pair["fixed"],
            "--moving-seg", pair["moving_seg"], "--out", out]  # fmt: skip
    assert main([str(a) for a in argv]) == 0
    return out


def ncc(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


@pytest.fixture(scope="module")
def oblique_3d(tmp_path_factory) -> dict[str, Path]:
    """A 3D pair registered by ``innreg register``: oblique, anisotropic fixed grid, moving image on
    another oblique grid."""
    root = tmp_path_factory.mktemp("oblique3d")
    size = (40, 40, 32)
    fixed_affine = oblique_affine(size, (15.0, -10.0, 8.0), (1.0, 1.2, 1.5))
    moving_affine = oblique_affine(size, (-8.0, 6.0, -12.0), (1.1, 1.0, 1.4))
    pair = write_pair(root, 3, size, fixed_affine, moving_affine)
    model = untrained_model(root / "model.pt", 3)
    return pair | {"reg": register(model, pair, root / "reg")}


@pytest.fixture(scope="module")
def phantom_2d(tmp_path_factory) -> dict[str, Path]:
    """A 2D phantom pair at the phantom's native size on an anisotropic grid, with a milder misalignment
    than the default (rotation 5 degrees, scaling 5 %, elastic 2 voxels), registered by ``innreg register``."""
    root = tmp_path_factory.mktemp("phantom2d")
    size = (192, 160)
    mild = DeformationParams(rotation_deg=5.0, scale=(0.95, 1.05), elastic_magnitude_vox=2.0)
    pair = write_pair(root, 2, size, oblique_affine(size, (0.0,), (1.0, 1.2)), None, mild)
    model = untrained_model(root / "model.pt", 2)
    return pair | {"reg": register(model, pair, root / "reg")}


@pytest.mark.parametrize("case", ["oblique_3d", "phantom_2d"])
def test_ants_applies_ddf_itk_like_innreg(case, request):
    ants = pytest.importorskip("ants")
    data = request.getfixturevalue(case)
    reg = data["reg"]
    fixed, moving = ants.image_read(str(data["fixed"])), ants.image_read(str(data["moving"]))
    theirs = ants.apply_transforms(fixed, moving, [str(reg / "ddf_itk.nii.gz")]).numpy()
    ours = load_image(reg / "warped.nii.gz").array
    unregistered = ants.apply_transforms(fixed, moving, []).numpy()
    print(f"NCC ANTs vs innreg {ncc(ours, theirs):.4f}, without the field {ncc(ours, unregistered):.4f}")
    assert ncc(ours, theirs) >= 0.99
    assert ncc(ours, unregistered) < 0.98  # the registration moved something


def test_ants_applies_inverse_ddf_itk_like_innreg_apply_inverse(oblique_3d, tmp_path):
    ants = pytest.importorskip("ants")
    reg = oblique_3d["reg"]
    ours = tmp_path / "fixed_on_moving.nii.gz"
    assert main(["apply", "--registration", str(reg), "--image", str(oblique_3d["fixed"]), "--out", str(ours), "--inverse"]) == 0
    fixed, moving = ants.image_read(str(oblique_3d["fixed"])), ants.image_read(str(oblique_3d["moving"]))
    theirs = ants.apply_transforms(moving, fixed, [str(reg / "inverse_ddf_itk.nii.gz")]).numpy()
    ours_arr = load_image(ours).array
    # innreg reads 0 outside the fixed field of view, ITK extends the field by zero: compare inside
    inside = ours_arr != 0
    print(f"inverse NCC ANTs vs innreg {ncc(ours_arr[inside], theirs[inside]):.4f}")
    assert inside.mean() > 0.3
    assert ncc(ours_arr[inside], theirs[inside]) >= 0.99


@pytest.mark.parametrize("case", ["oblique_3d", "phantom_2d"])
def test_apply_reproduces_register_outputs_exactly(case, request, tmp_path):
    data = request.getfixturevalue(case)
    reg = data["reg"]
    labels, image = tmp_path / "seg.nii.gz", tmp_path / "img.nii.gz"
    assert main(["apply", "--registration", str(reg), "--image", str(data["moving_seg"]), "--out", str(labels), "--labels"]) == 0
    assert main(["apply", "--registration", str(reg), "--image", str(data["moving"]), "--out", str(image)]) == 0
    expected = load_labels(reg / "warped_seg.nii.gz")
    got = load_labels(labels)
    np.testing.assert_array_equal(got.array, expected.array)
    np.testing.assert_allclose(got.affine, expected.affine)
    np.testing.assert_array_equal(load_image(image).array, load_image(reg / "warped.nii.gz").array)


def test_apply_inverse_maps_fixed_labels_onto_the_moving_labels(phantom_2d, tmp_path):
    """The inverse is as good as the forward map: mapping the fixed labels back scores (almost) the
    Dice of the registration itself (measured on 6 phantom pairs: within 0.01 of it)."""
    reg, out = phantom_2d["reg"], tmp_path / "fixed_seg_on_moving.nii.gz"
    argv = ["apply", "--registration", reg, "--image", phantom_2d["fixed_seg"], "--out", out, "--labels", "--inverse"]
    assert main([str(a) for a in argv]) == 0
    moving_seg, fixed_seg = load_labels(phantom_2d["moving_seg"]), load_labels(phantom_2d["fixed_seg"])
    back = load_labels(out)
    assert back.shape == moving_seg.shape and np.allclose(back.affine, moving_seg.affine)
    dice = mean_ignore_nan(dice_per_label(back.array, moving_seg.array, labels=[1, 2, 3]))
    before = mean_ignore_nan(dice_per_label(fixed_seg.array, moving_seg.array, labels=[1, 2, 3]))
    forward = mean_ignore_nan(dice_per_label(load_labels(reg / "warped_seg.nii.gz").array, fixed_seg.array, labels=[1, 2, 3]))
    print(f"inverse Dice {dice:.3f}, forward {forward:.3f}, unregistered {before:.3f}")
    assert dice >= 0.9 > before
    assert dice >= forward - 0.02


def test_apply_to_an_image_on_another_grid_resamples_through_world_coordinates(phantom_2d, tmp_path):
    """The moving labels on a twice finer grid give (nearly) the same warped labels."""
    reg = phantom_2d["reg"]
    seg = load_labels(phantom_2d["moving_seg"])
    fine_affine = seg.affine.copy()
    fine_affine[:3, :2] *= 0.5  # twice as fine
    fine = resample_to(seg, Image(np.zeros((384, 320), np.int64), fine_affine), Interpolation.NEAREST)
    save_image(tmp_path / "fine.nii.gz", fine.array, fine)
    assert main(["apply", "--registration", str(reg), "--image", str(tmp_path / "fine.nii.gz"), "--out", str(tmp_path / "o.nii.gz"), "--labels"]) == 0
    out, expected = load_labels(tmp_path / "o.nii.gz"), load_labels(reg / "warped_seg.nii.gz")
    assert out.shape == expected.shape
    assert (out.array == expected.array).mean() > 0.97


def test_apply_warns_in_one_line_about_a_header_itk_may_read_elsewhere(phantom_2d, tmp_path, capsys):
    moving = nib.load(phantom_2d["moving"])
    odd = nib.Nifti1Image(np.asarray(moving.dataobj), moving.affine)
    odd.set_qform(moving.affine + np.diag([0.5, 0, 0, 0]), code=1)  # half a mm more along x
    nib.save(odd, tmp_path / "odd.nii.gz")
    argv = ["apply", "--registration", phantom_2d["reg"], "--image", tmp_path / "odd.nii.gz", "--out", tmp_path / "o.nii.gz"]
    assert main([str(a) for a in argv]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"innreg: warning: {tmp_path / 'odd.nii.gz'}: its qform and sform disagree; innreg uses the sform, "
                   "ITK and ANTs may use the qform (ddf_itk.nii.gz may not line up in them)"]  # fmt: skip


def test_apply_bad_input_gives_one_line(phantom_2d, oblique_3d, tmp_path, capsys):
    out = tmp_path / "o.nii.gz"
    assert main(["apply", "--registration", str(tmp_path), "--image", str(phantom_2d["moving"]), "--out", str(out)]) == 2
    assert "not a registration folder" in capsys.readouterr().err
    assert main(["apply", "--registration", str(oblique_3d["reg"]), "--image", str(phantom_2d["moving"]), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "2D image, but the registration is 3D" in err and str(phantom_2d["moving"]) in err and "\n" not in err
    assert main(["apply", "--registration", str(phantom_2d["reg"]), "--image", str(phantom_2d["moving"]), "--out", str(out),
                 "--device", "gpu"]) == 2  # fmt: skip
    assert capsys.readouterr().err.strip() == "innreg: error: --device gpu: expected auto, cpu or cuda[:k]"
    assert not out.exists()


@pytest.mark.parametrize("case", ["oblique_3d", "phantom_2d"])
def test_greedy_reslices_with_ddf_itk_like_innreg(case, request, tmp_path):
    """greedy (the engine of ITK-SNAP's registration) reads the exported field the same way."""
    picsl_greedy = pytest.importorskip("picsl_greedy")
    data = request.getfixturevalue(case)
    dim = load_image(data["fixed"]).dim
    greedy = (picsl_greedy.Greedy2D if dim == 2 else picsl_greedy.Greedy3D)()
    out = tmp_path / "greedy.nii.gz"
    greedy.execute(f"-d {dim} -rf {data['fixed']} -rm {data['moving']} {out} -r {data['reg'] / 'ddf_itk.nii.gz'}")
    assert ncc(load_image(out).array, load_image(data["reg"] / "warped.nii.gz").array) >= 0.99
