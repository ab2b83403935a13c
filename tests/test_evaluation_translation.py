import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from innreg.data import load_image, normalize_intensity, read_manifest
from innreg.data.phantom import generate_phantom_dataset
from innreg.evaluation import evaluate, head_mask, maps_hu_by_curve, runs_on_cuda, translation_fidelity
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


def ct_in_hu_head() -> np.ndarray:
    """Air around a head of soft tissue (40 HU) in a skull (1200 HU) with brain (30 and 45 HU) inside."""
    image = np.full((40, 40), -1000.0, np.float32)
    image[4:36, 4:36] = 40.0
    image[7:33, 7:33] = 1200.0
    image[9:31, 9:31] = 30.0
    image[14:26, 14:26] = 45.0
    return image


def test_head_mask_of_ct_in_hu_measures_from_air():
    mask = head_mask(ct_in_hu_head())
    # 5 % of the 99th percentile in HU (60 HU) would leave the scalp and the brain out
    assert mask[5, 5] and mask[20, 20] and mask[10, 10] and not mask[2, 2]


def test_translation_fidelity_reads_ct_in_hu_as_the_method_does():
    truth = ct_in_hu_head()
    moving = np.where(truth > -500, 100.0 - np.clip(truth, 0, 100), 0).astype(np.float32)  # an MR-like contrast
    translated = normalize_intensity(truth, hu_curve=True)  # what a perfect curve-trained translator gives
    by_curve = translation_fidelity(translated, moving, truth, hu_curve=True)
    by_percentiles = translation_fidelity(translated, moving, truth)
    assert by_curve.ncc == pytest.approx(1.0) and by_curve.ssim == pytest.approx(1.0)
    assert by_percentiles.ncc < 0.99
    # the floor: an MR moving image scored as it is, CT in HU as the moving image read through the curve
    assert by_curve.identity_ncc == pytest.approx(translation_fidelity(moving, moving, truth, hu_curve=True).ncc)
    flipped = translation_fidelity(moving, truth, moving, hu_curve=True)
    assert flipped.identity_ncc == pytest.approx(translation_fidelity(moving, translated, moving).identity_ncc)


def test_maps_hu_by_curve_reads_the_method_or_its_wrapped_model():
    def method(hu_curve: bool):
        return SimpleNamespace(config=SimpleNamespace(model=SimpleNamespace(hu_curve=hu_curve)))

    assert maps_hu_by_curve(method(True)) and not maps_hu_by_curve(method(False))
    wrapper = SimpleNamespace(config=method(False).config, model=method(True))  # the loaded model decides
    assert maps_hu_by_curve(wrapper) and not maps_hu_by_curve(object())


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


def test_evaluate_scores_a_translation_into_ct_in_hu_through_the_curve(tmp_path):
    paths = generate_phantom_dataset(tmp_path / "d", "t1", "ct-hu", n=3, size=(48, 40), seed=0, progress=False)
    records = read_manifest(paths["train"])
    truths = [normalize_intensity(load_image(r.moving_as_fixed).array, hu_curve=True) for r in records]
    registrar = TruthTranslator(truths)
    registrar.config = SimpleNamespace(model=SimpleNamespace(hu_curve=True))
    summary = evaluate(registrar, records, tmp_path / "eval", overview_pairs=0, progress=False)
    assert summary.translation_ncc == pytest.approx(1.0) and summary.translation_ssim == pytest.approx(1.0)


def test_evaluate_shows_the_translation_in_the_fixed_images_units_when_the_method_can(tmp_path):
    paths = generate_phantom_dataset(tmp_path / "d", "pd", "t1", n=3, size=(48, 40), seed=0, progress=False)
    records = read_manifest(paths["train"])[:1]
    registrar = TruthTranslator([load_image(records[0].moving_as_fixed).array])
    calls = []
    registrar.in_fixed_units = lambda values, fixed, mask=None: calls.append(values.shape) or values
    evaluate(registrar, records, tmp_path / "eval", overview_pairs=1, progress=False)
    assert calls == [(48, 40)] and len(list((tmp_path / "eval").glob("overview_*.png"))) == 1


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
