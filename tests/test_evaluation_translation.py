import json

import numpy as np
import pytest
import torch

from innreg.data import load_image, read_manifest
from innreg.data.phantom import generate_phantom_dataset
from innreg.evaluation import evaluate, head_mask, runs_on_cuda, translation_fidelity
from innreg.inference import RegistrationResult
from innreg.results import read_per_pair


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


class CountingRegistrar:
    """Identity registration on a stated device, recording the seconds it reports call by call."""

    def __init__(self, device: str):
        self.device = torch.device(device)  # only read, nothing runs there
        self.calls = 0

    def register(self, moving, fixed, moving_seg=None):
        self.calls += 1
        moving = moving.array
        ddf = np.zeros((moving.ndim, *moving.shape), np.float32)
        return RegistrationResult(moving, moving, ddf, ddf, moving_seg, float(self.calls))


@pytest.mark.parametrize("device, warm_up", [("cpu", 0), ("cuda", 1)])
def test_evaluate_times_the_first_pair_again_on_a_gpu(tmp_path, device, warm_up):
    paths = generate_phantom_dataset(tmp_path / "d", "pd", "t1", n=3, size=(32, 32), seed=0, progress=False)
    n = len(read_manifest(paths["train"]))
    registrar = CountingRegistrar(device)
    evaluate(registrar, paths["train"], tmp_path / "eval", overview_pairs=0, progress=False)
    assert n >= 2 and registrar.calls == n + warm_up
    seconds = list(read_per_pair(tmp_path / "eval", "seconds").values())
    # each pair reports the seconds of its last call: call k + warm_up for pair k (counted from 1)
    assert seconds == [float(k + 1 + warm_up) for k in range(n)]


def test_runs_on_cuda_reads_the_method_or_its_wrapped_model():
    class Wrapper:
        model = CountingRegistrar("cuda")

    assert runs_on_cuda(Wrapper()) and runs_on_cuda(CountingRegistrar("cuda:1"))
    assert not runs_on_cuda(CountingRegistrar("cpu")) and not runs_on_cuda(object())
