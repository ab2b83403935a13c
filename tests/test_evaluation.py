import math

import numpy as np
import pytest

from innreg.evaluation import endpoint_error_mm, overlap_metrics


def test_endpoint_error_uses_spacing_and_mask():
    est = np.zeros((2, 4, 5))
    true = np.zeros((2, 4, 5))
    true[0] = 1.0  # one voxel along axis 0 everywhere
    true[1, :2] = 1.0  # plus one voxel along axis 1 in the first two rows
    mask = np.zeros((4, 5))
    mask[2:] = 1
    # spacing (2, 3): errors are 2 mm where only axis 0 is off, sqrt(4 + 9) mm elsewhere
    assert endpoint_error_mm(est, true, (2.0, 3.0), mask) == pytest.approx(2.0)
    expected = (2 * 5 * math.sqrt(13) + 2 * 5 * 2.0) / 20
    assert endpoint_error_mm(est, true, (2.0, 3.0), None) == pytest.approx(expected)


def test_overlap_metrics_only_scores_labels_present_in_fixed():
    fixed = np.zeros((10, 10), int)
    fixed[2:6, 2:6] = 1
    fixed[6:9, 6:9] = 2
    warped = fixed.copy()
    warped[6:9, 6:9] = 0
    warped[0, 0] = 3  # a label the fixed map lacks is ignored
    row = overlap_metrics(warped, fixed, (1.0, 1.0)).to_row()
    assert row["dice_1"] == 1.0 and row["dice_2"] == 0.0 and "dice_3" not in row
    assert row["dice_mean"] == 0.5
    # The lost label scores the grid's diagonal (9 * sqrt(2) mm), so it counts against the mean.
    assert row["hd95_1"] == 0.0 and row["hd95_2"] == pytest.approx(9 * math.sqrt(2))
    assert row["hd95_mean"] == pytest.approx(4.5 * math.sqrt(2))


class _IdentityRegistrar:
    """Returns the moving image and label map unchanged (zero field): the scores are the pair's own."""

    device = "cpu"

    def register(self, moving, fixed, moving_seg=None):
        from innreg.inference import RegistrationResult

        ddf = np.zeros((moving.dim, *moving.shape), np.float32)
        return RegistrationResult(moving.array, moving.array, ddf, ddf, moving_seg, 0.0)


@pytest.mark.parametrize("axis, mm", [(0, 2.0), (1, 1.0)])
def test_evaluate_reads_the_voxel_size_from_the_files(tmp_path, axis, mm):
    import nibabel as nib

    from innreg.data import PairRecord, load_image, save_field
    from innreg.evaluation import evaluate

    affine = np.diag([2.0, 1.0, 1.0, 1.0])  # 2 mm along axis 0, 1 mm along axis 1
    fixed_seg = np.zeros((16, 16), np.int16)
    fixed_seg[4:10, 4:10] = 1
    moving_seg = np.roll(fixed_seg, 1, axis=axis)  # one voxel off: mm apart
    paths = {}
    for name, array in {"fixed": fixed_seg * 1.0 + 0.1, "moving": moving_seg * 1.0 + 0.1,
                        "fixed_seg": fixed_seg, "moving_seg": moving_seg}.items():  # fmt: skip
        paths[name] = tmp_path / f"{name}.nii.gz"
        nib.save(nib.Nifti1Image(array.astype(np.float32 if "seg" not in name else np.int16), affine), paths[name])
    true = np.zeros((2, 16, 16), np.float32)
    true[axis] = 1.0  # the truth: one voxel along the axis everywhere
    paths["true_ddf"] = save_field(tmp_path / "true.nii.gz", true, load_image(paths["fixed"]))
    summary = evaluate(_IdentityRegistrar(), [PairRecord(**paths)], tmp_path / "eval", overview_pairs=0, progress=False)
    assert summary.hd95_mean == pytest.approx(mm) and summary.identity.hd95_mean == pytest.approx(mm)
    assert summary.epe_mm == pytest.approx(mm)
    assert summary.dice_mean == pytest.approx(2 * 30 / 72)  # 6x6 squares overlapping on 5x6 voxels
