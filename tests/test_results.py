"""Typed evaluation records and their files: the column and key names results and tests rely on."""

import csv
import json
import math

import pytest

import innreg
from innreg.results import EvaluationSummary, Overlap, PairMetrics, TranslationFidelity, write_results


def _pair(i: int, dice: dict, hd95: dict, seconds: float, nmi_after: float, identity_dice: float, **extra):
    return PairMetrics(
        pair=i, moving=f"m{i}", fixed=f"f{i}", moving_seg=f"ms{i}", fixed_seg=f"fs{i}", warped_seg=f"w{i}",
        overlap=Overlap(dice, hd95), neg_jacobian_fraction=0.01 * i, nmi_before=0.1, nmi_after=nmi_after,
        seconds=seconds, identity=Overlap({1: identity_dice}, {1: 4.0 + 2 * i}), **extra,
    )  # fmt: skip


def test_summary_means_over_pairs_ignore_nan():
    pairs = [
        _pair(0, {1: 0.5}, {1: 2.0}, 1.0, 0.2, 0.3),
        _pair(1, {1: 0.7}, {1: float("nan")}, 3.0, 0.3, 0.5),
    ]
    s = EvaluationSummary.of_pairs(pairs, "m")
    assert s.dice_mean == pytest.approx(0.6) and s.hd95_mean == 2.0
    assert s.dice_std == pytest.approx(0.1 * math.sqrt(2))  # sample std (n - 1) of 0.5 and 0.7
    assert s.seconds_per_pair == 2.0 and s.neg_jacobian_fraction == pytest.approx(0.005)
    assert s.identity.dice_mean == pytest.approx(0.4) and s.per_label()["dice_1"] == pytest.approx(0.6)
    assert s.epe_mm is None and s.translation_ncc is None  # measured by no pair


def test_phase_seconds_average_over_the_pairs_that_timed_them(tmp_path):
    pairs = [
        _pair(0, {1: 0.5}, {1: 2.0}, 1.0, 0.2, 0.3, phase_seconds={"translate": 0.2, "demons": 0.6}),
        _pair(1, {1: 0.7}, {1: 1.0}, 3.0, 0.3, 0.5, phase_seconds={"translate": 0.4, "warp": 0.2}),
        _pair(2, {1: 0.7}, {1: 1.0}, 3.0, 0.3, 0.5),  # a method that times no phases
    ]
    s = EvaluationSummary.of_pairs(pairs, "m")
    # A phase a timed pair did not run counts 0 there; first-seen order.
    assert s.phase_seconds_per_pair == pytest.approx({"translate": 0.3, "demons": 0.3, "warp": 0.1})
    assert list(s.phase_seconds_per_pair) == ["translate", "demons", "warp"]
    write_results(pairs, s, tmp_path)
    data = json.loads((tmp_path / "summary.json").read_text())
    assert EvaluationSummary.from_dict(data) == s
    assert EvaluationSummary.of_pairs(pairs[2:], "peer").phase_seconds_per_pair is None
    assert "phase_seconds_per_pair" not in EvaluationSummary.of_pairs(pairs[2:], "peer").to_dict()


def test_files_keep_their_column_and_key_names(tmp_path):
    fidelity = TranslationFidelity(ncc=0.9, ssim=0.8, identity_ncc=0.1, identity_ssim=0.2)
    pairs = [
        _pair(0, {1: 0.5, 2: 0.9, 10: 0.4}, {1: 2.0, 2: 1.0, 10: 3.0}, 1.0, 0.2, 0.3, epe_mm=1.5,
              identity_epe_mm=3.0, translation=fidelity),
        _pair(1, {1: 0.7, 2: 0.8}, {1: 1.0, 2: 2.0}, 3.0, 0.3, 0.5),
    ]  # fmt: skip
    summary = EvaluationSummary.of_pairs(pairs, "m")
    write_results(pairs, summary, tmp_path, run={"model": "m.pt"})
    with open(tmp_path / "per_pair.csv", newline="") as fh:
        reader = csv.DictReader(fh)
        rows = list(reader)
    assert reader.fieldnames == [
        "pair", "moving", "fixed", "moving_seg", "fixed_seg", "warped_seg", "dice_1", "dice_2", "dice_10",
        "hd95_1", "hd95_2", "hd95_10", "dice_mean", "hd95_mean", "neg_jacobian_fraction", "nmi_before", "nmi_after",
        "seconds", "identity_dice_mean", "identity_hd95_mean", "epe_mm", "identity_epe_mm", "translation_ncc",
        "translation_ssim", "identity_translation_ncc", "identity_translation_ssim",
    ]  # fmt: skip
    assert rows[1]["dice_10"] == "" and rows[1]["epe_mm"] == "" and float(rows[0]["dice_mean"]) == pytest.approx(0.6)
    data = json.loads((tmp_path / "summary.json").read_text())
    assert list(data) == [
        "method", "n_pairs", "dice_mean", "dice_std", "hd95_mean", "neg_jacobian_fraction", "seconds_per_pair",
        "nmi_before", "nmi_after", "per_label", "identity", "epe_mm", "translation_ncc", "translation_ssim", "run",
    ]  # fmt: skip
    assert data["run"] == {"innreg_version": innreg.__version__, "model": "m.pt"}
    assert list(data["per_label"]) == ["dice_1", "dice_10", "dice_2", "hd95_1", "hd95_10", "hd95_2"]
    assert data["per_label"]["dice_10"] == pytest.approx(0.4)  # only the pair that has label 10
    assert data["identity"] == {"dice_mean": 0.4, "hd95_mean": 5.0, "neg_jacobian_fraction": 0.0,
                                "seconds_per_pair": 0.0, "epe_mm": 3.0, "translation_ncc": 0.1,
                                "translation_ssim": 0.2}  # fmt: skip
    assert data["epe_mm"] == 1.5 and data["translation_ssim"] == 0.8  # means over the pairs that have them
    assert EvaluationSummary.from_dict(data) == summary
    header = (tmp_path / "summary.md").read_text().splitlines()[0]
    assert header == "| method | dice_mean | hd95_mean | neg_jacobian_percent | seconds_per_pair | epe_mm | " \
                     "translation_ncc | translation_ssim |"
    assert math.isnan(EvaluationSummary.of_pairs([], "none").dice_std)
    assert math.isnan(EvaluationSummary.of_pairs(pairs[:1], "one").dice_std)
