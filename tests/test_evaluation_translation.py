import json

import numpy as np
import pytest

from innreg.data import load_image, read_manifest
from innreg.data.phantom import generate_phantom_dataset
from innreg.evaluation import evaluate, head_mask, translation_fidelity
from innreg.inference import RegistrationResult


def test_translation_fidelity_perfect_translator_scores_one_and_moving_is_the_floor():
    truth = np.zeros((40, 40), np.float32)
    truth[8:32, 8:32] = 1.0
    truth[14:26, 14:26] = 0.3  # a darker core
    moving = np.where(truth > 0, 1.3 - truth, 0).astype(np.float32)  # inverted contrast inside the head
    row = translation_fidelity(2 * truth + 0.1 * (truth > 0), moving, truth).to_row()
    assert row["translation_ncc"] == pytest.approx(1.0) and row["translation_ssim"] == pytest.approx(1.0)
    assert row["identity_translation_ncc"] < 0 and row["identity_translation_ssim"] < 0.5


def test_head_mask_fills_dark_tissue_inside_the_head():
    image = np.zeros((30, 30))
    image[5:25, 5:25] = 1.0
    image[10:20, 10:20] = 0.0  # e.g. bone, dark in MR, enclosed by scalp
    mask = head_mask(image)
    assert mask[15, 15] and mask[6, 6] and not mask[2, 2]


class TruthTranslator:
    """Identity registration whose translation is the phantom's truth: a perfect translator."""

    def __init__(self, truths):
        self.truths = list(truths)

    def register(self, moving, fixed, moving_seg=None):
        moving = moving.array  # evaluation hands over Images
        ddf = np.zeros((moving.ndim, *moving.shape), np.float32)
        return RegistrationResult(moving, self.truths.pop(0), ddf, ddf, moving_seg, 0.0)


def test_evaluate_reports_translation_fidelity_when_the_manifest_has_the_truth(tmp_path):
    paths = generate_phantom_dataset(tmp_path / "d", "pd", "t1", n=3, size=(48, 40), seed=0, progress=False)
    records = read_manifest(paths["train"])
    truths = [load_image(r.moving_as_fixed).array for r in records]
    summary = evaluate(TruthTranslator(truths), records, tmp_path / "eval", overview_pairs=0, progress=False)
    assert summary.translation_ncc == pytest.approx(1.0) and summary.translation_ssim == pytest.approx(1.0)
    assert summary.identity.translation_ncc < 0.9  # PD is not T1
    assert json.loads((tmp_path / "eval" / "summary.json").read_text())["translation_ssim"] == pytest.approx(1.0)
    assert "translation_ncc" in (tmp_path / "eval" / "summary.md").read_text()
    header = (tmp_path / "eval" / "per_pair.csv").read_text().splitlines()[0]
    assert "identity_translation_ssim" in header
