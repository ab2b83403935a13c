"""Hand cases for the measures that benchmark scripts compute themselves."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_haar_hh_is_the_checkerboard_component():
    haar_hh = _script("translation_fidelity").haar_hh
    checkerboard = np.indices((6, 8)).sum(axis=0) % 2 * 2.0 - 1.0  # +-1 alternating in both axes
    np.testing.assert_allclose(haar_hh(checkerboard), np.full((3, 4), -2.0))  # (-1 - 1 - 1 - 1) / 2
    ramps = np.add.outer(np.arange(6.0), 3.0 * np.arange(8.0))  # linear in rows and columns: no HH
    np.testing.assert_allclose(haar_hh(ramps), np.zeros((3, 4)))
    assert haar_hh(np.ones((7, 5))).shape == (3, 2)  # the even-sized crop


def test_whole_cells_are_the_cells_wholly_inside_the_mask():
    whole_cells = _script("translation_fidelity").whole_cells
    mask = np.zeros((5, 6), dtype=bool)
    mask[0:3, 0:4] = True  # rows 0-2: cells of row 0 inside, cells of row 1 only half inside
    expected = np.array([[True, True, False], [False, False, False]])
    np.testing.assert_array_equal(whole_cells(mask), expected)


def test_noise_sd_recovers_white_noise_on_a_structured_image():
    noise_sd = _script("translation_fidelity").noise_sd
    rng = np.random.default_rng(0)
    structure = np.zeros((128, 128))
    structure[32:96, 32:96] = 1.0  # edges: a few large HH responses the median ignores
    image = structure + rng.normal(0.0, 0.05, structure.shape)
    assert noise_sd(image, np.ones_like(image, dtype=bool)) == pytest.approx(0.05, rel=0.05)
    assert noise_sd(structure, np.ones_like(image, dtype=bool)) == 0.0


def test_mono_modal_twins_share_fixed_image_and_field(tmp_path):
    """The premise of mono_modal_ceiling.py: the same phantom command with another moving contrast gives
    the same fixed images and true fields; a set of another seed is refused."""
    from innreg.data import read_manifest
    from innreg.data.phantom import generate_phantom_dataset

    script = _script("mono_modal_ceiling")
    sets = {}
    for name, moving, seed in (("t2", "t2", 3), ("t1", "t1", 3), ("other", "t1", 4)):
        generate_phantom_dataset(
            tmp_path / name, n=2, moving=moving, fixed="t1", size=(40, 32), seed=seed, test_fraction=0.5, progress=False,
            contact_sheet_pairs=1,
        )
        sets[name] = read_manifest(tmp_path / name / "test.csv")[0]
    assert script.twin_problem(sets["t2"], sets["t1"]) is None
    assert "not the fixed image" in script.twin_problem(sets["t2"], sets["other"])


def test_mono_modal_dice_scores_the_warped_labels():
    dice = _script("mono_modal_ceiling")._dice
    import torch

    labels = np.zeros((12, 10), dtype=np.int16)
    labels[2:6, 2:6], labels[6:10, 2:6], labels[2:10, 6:9] = 1, 2, 3
    shifted = np.roll(labels, 1, axis=0)  # the moving labels one row down
    zero = torch.zeros(1, 2, 12, 10)
    back = zero.clone()
    back[:, 0] = 1.0  # pull from one row further down: undoes the shift
    assert dice(shifted, labels, back) == 1.0
    # one row off: label 1 keeps 3 of 4 rows (Dice 0.75), label 2 too, label 3 7 of 8 (0.875)
    assert abs(dice(shifted, labels, zero) - (0.75 + 0.75 + 0.875) / 3) < 1e-9


def test_cascade_probe_starts_the_cascade_as_the_trained_single_pass(tiny_config):
    import torch

    from innreg.model import INNReg

    torch.manual_seed(0)
    single = INNReg(tiny_config.model)
    with torch.no_grad():
        single.registration.flow.weight.normal_(std=0.02)
    moving, fixed = torch.rand(1, 1, 16, 16), torch.rand(1, 1, 16, 16)
    expected = single(moving, fixed).ddf
    cascade = _script("cascade_probe").with_cascade(single, 2)
    (unet, flow), = cascade.registration.cascade
    for a, b in zip(unet.state_dict().values(), single.registration.unet.state_dict().values()):
        assert torch.equal(a, b)  # the second pass starts from the trained first pass's U-Net
    assert flow.weight.abs().max() < 1e-3  # and a tiny head: the cascade starts as the single pass
    with torch.no_grad():
        assert torch.allclose(cascade(moving, fixed).ddf, expected, atol=1e-3)


def test_criterion_probe_local_normalisation_ignores_gain_and_offset():
    import torch

    local_normalised = _script("criterion_probe").local_normalised
    image = torch.rand(1, 1, 16, 12, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(local_normalised(3.0 * image + 0.5, 2.0), local_normalised(image, 2.0), atol=1e-4, rtol=1e-4)
    assert local_normalised(torch.full((1, 1, 8, 8), 0.7), 2.0).abs().max() < 1e-5  # flat: no structure


def test_criterion_probe_variants_add_their_channels_to_the_shipped_ones():
    import torch

    from innreg.config import RefineConfig

    script = _script("criterion_probe")
    config, level = RefineConfig(), (10, 8)
    pair = torch.rand(1, 2, 20, 16, generator=torch.Generator().manual_seed(1))
    shipped = script.SHIPPED(pair, level, config)
    mind_channels = script.SHIPPED(pair[:, :1], level, config).shape[1]
    assert script.variant_features("default") is script.SHIPPED
    assert script.variant_features("mind:0.5:1")(pair, level, config).shape[1] == shipped.shape[1] + mind_channels
    lncc = script.variant_features("lncc:4:1")(pair, level, config)
    torch.testing.assert_close(lncc[:, : shipped.shape[1]], shipped)
    assert lncc.shape[1] == shipped.shape[1] + 1
    assert script.variant_features("smooth:1")(pair, level, config).shape == shipped.shape
    torch.testing.assert_close(script.variant_features("lncc:4:1")(pair[:, :1], level, config), script.SHIPPED(pair[:, :1], level, config))
    highpass = script.variant_features("highpass:8")
    assert highpass(pair, level, config).shape == shipped.shape
    offset = pair + torch.tensor([0.0, 0.3]).view(1, 2, 1, 1)  # a constant on the intensity channel
    torch.testing.assert_close(highpass(offset, level, config), highpass(pair, level, config), atol=1e-5, rtol=1e-5)
    coarse = script.variant_features("coarse:1:4")
    assert coarse(pair, (5, 4), config).shape[1] == shipped.shape[1] + mind_channels  # factor 4: added
    torch.testing.assert_close(coarse(pair, level, config), shipped)  # factor 2: the shipped features


def test_criterion_probe_inverse_on_coarse_levels_drops_the_channel_on_finer_ones():
    import torch

    import innreg.refinement as refinement
    from innreg.config import RefineConfig

    script = _script("criterion_probe")
    config = RefineConfig(inverse_weight=4.0)
    warped = torch.rand(1, 2, 16, 12, generator=torch.Generator().manual_seed(2))
    fixed, back = torch.rand(2, 1, 16, 12, generator=torch.Generator().manual_seed(3)).split(1)
    descriptors = script.inverse_on_coarse_levels(2.0)
    for level in ((8, 6), (16, 12)):  # factor 2: the channel; full resolution: without it
        expected = refinement._descriptors(warped, fixed, level, config, back if level == (8, 6) else None)
        for got, want in zip(descriptors(warped, fixed, level, config, back), expected):
            torch.testing.assert_close(got, want)


def test_translation_resolution_ceiling_loses_only_fine_detail():
    script = _script("translation_resolution")
    rows, cols = np.mgrid[0:32, 0:24]
    head = ((rows - 15.5) / 13) ** 2 + ((cols - 11.5) / 10) ** 2 < 1
    smooth = np.where(head, 1.0 + 0.5 * np.sin(rows / 5.0), 0.0)  # structure far coarser than 2 voxels
    floor, coarse_floor, ceiling = script.resolution_nccs(smooth, smooth, 2)
    assert abs(floor - 1.0) < 1e-9
    assert min(coarse_floor, ceiling) > 0.9  # only the head's edge blurs
    fine = np.where(head, 1.0 + 0.5 * (np.indices((32, 24)).sum(axis=0) % 2), 0.0)  # a 1-voxel checkerboard
    assert script.resolution_nccs(fine, fine, 2)[2] < 0.3  # averaged away on the coarse grid


def test_translation_headroom_stand_in_gives_its_channel_and_keeps_the_inverse():
    import torch

    class Doubling(torch.nn.Module):
        def forward(self, x):
            return 2 * x

        def inverse(self, y):
            return y / 2

    script = _script("translation_headroom")
    stand_in = script.StandIn(Doubling())
    truth = torch.arange(16.0).reshape(1, 1, 4, 4)
    stand_in.channel = script.channel_of("truth", truth, torch.zeros_like(truth), torch.zeros_like(truth), 0.0)
    torch.testing.assert_close(stand_in(torch.zeros(1, 1, 4, 4)), truth)  # whatever the input
    assert stand_in(torch.zeros(1, 1, 2, 2)).shape == (1, 1, 2, 2)  # at the size asked for
    torch.testing.assert_close(stand_in.inverse(torch.full((1, 1, 2, 2), 6.0)), torch.full((1, 1, 2, 2), 3.0))


def test_translation_headroom_sources_compose_truth_and_translation_by_hand():
    import torch

    script = _script("translation_headroom")
    doubling = lambda x: 2 * x  # noqa: E731 - the "translator"
    x = torch.rand(1, 1, 6, 5, generator=torch.Generator().manual_seed(1))
    truth, moving = torch.full_like(x, 0.5), torch.full_like(x, 0.1)
    brain = torch.zeros_like(x)
    brain[..., :3, :] = 1

    def channel(source, sd=0.0):
        return script.channel_of(source, truth, moving, brain, sd)(doubling, x)

    torch.testing.assert_close(channel("truth-mix:0.25"), torch.full_like(x, 0.75 * 0.5 + 0.25 * 0.1))
    inside = channel("truth-brain")
    torch.testing.assert_close(inside[..., :3, :], truth[..., :3, :])  # the truth in the brain
    torch.testing.assert_close(inside[..., 3:, :], 2 * x[..., 3:, :])  # the translation outside
    torch.testing.assert_close(channel("translation-brain"), brain * 2 * x + (1 - brain) * truth)
    # The coarse error added to the truth and taken from the translation split the translation's error in two.
    torch.testing.assert_close(channel("truth+low:2") + channel("translation-low:2"), truth + 2 * x)
    torch.testing.assert_close(channel("truth-blur:1"), truth)  # a constant image stays
    noisy = channel("truth+noise:2", sd=0.01)
    assert 0.015 < float((noisy - truth).std()) < 0.025  # twice the s.d. given
    # Test-time flips: an equivariant translator gives itself back; one that reads position averages its views.
    torch.testing.assert_close(channel("translator-flip:01"), 2 * x)
    ramp = torch.arange(5.0).expand(1, 1, 6, 5)
    position = script.channel_of("translator-flip:1", truth, moving, brain, 0.0)(lambda image: image + ramp, x)
    torch.testing.assert_close(position, x + 2.0)  # (x + ramp + x + ramp reversed) / 2
    # The translation of a coarser input comes back on the input's grid; a constant image stays constant.
    coarse = script.channel_of("translator-coarse:2", truth, moving, brain, 0.0)(doubling, truth)
    assert coarse.shape == truth.shape
    torch.testing.assert_close(coarse, 2 * truth)
    with pytest.raises(SystemExit):
        channel("truth-sharpen:2")


def test_wholehead_table_pairs_the_evaluations_it_finds(tmp_path):
    import csv
    import json

    table = _script("wholehead_table")

    def evaluation(folder: Path, dice: list[float]) -> None:
        folder.mkdir(parents=True)
        with (folder / "per_pair.csv").open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=["moving", "fixed", "dice_mean"])
            writer.writeheader()
            writer.writerows({"moving": f"m{i}", "fixed": f"f{i}", "dice_mean": v} for i, v in enumerate(dice))
        summary = {"dice_mean": float(np.mean(dice)), "dice_std": 0.0, "hd95_mean": 1.0, "neg_jacobian_fraction": 0.0}
        (folder / "summary.json").write_text(json.dumps(summary))

    set_dir = tmp_path / "t2-axial-1"
    evaluation(set_dir / "innreg", [0.90, 0.85, 0.80])
    evaluation(set_dir / "innreg-no-translate", [0.88, 0.84, 0.77])
    evaluation(set_dir / "innreg-mind-only", [0.89, 0.86, 0.78])
    evaluation(set_dir / "peers" / "ants-syn-cc" / "eval", [0.70, 0.75, 0.72])
    text = table.set_table(set_dir)
    assert "| innreg | 0.850" in text and "| ants-syn-cc | 0.723" in text and "| innreg-mind-only | 0.843" in text
    assert "- Dice innreg - innreg-no-translate: +0.020 (95% CI " in text
    assert "- Dice innreg - innreg-mind-only: +0.007 (95% CI " in text
    assert "- Dice innreg - ants-syn-cc: +0.127 (95% CI " in text
    assert "innreg-no-refine -" not in text  # not evaluated: not paired


def test_slice_guide_probe_attaches_the_guide_and_keeps_the_model(tmp_path, tiny_dict):
    import torch

    from innreg.config import Config
    from innreg.model import INNReg
    from innreg.model_file import read_model, save_model
    from innreg.nn import SliceWise

    probe = _script("slice_guide_probe")
    config = Config.from_dict(tiny_dict).updated(model={"dim": 3})
    torch.manual_seed(0)
    save_model(INNReg(config.model), config, tmp_path / "model.pt")
    moving = torch.rand(1, 1, 12, 10, 6)
    torch.save([(moving, 1.0 - moving, torch.ones_like(moving))], tmp_path / "aligned.pt")
    probe.train(str(tmp_path / "model.pt"), str(tmp_path / "aligned.pt"), str(tmp_path / "guide.pt"), steps=2, factor=1)
    guide = torch.load(tmp_path / "guide.pt")
    probe.attach(str(tmp_path / "model.pt"), str(tmp_path / "guide.pt"), str(tmp_path / "out.pt"))
    before, after = read_model(tmp_path / "model.pt"), read_model(tmp_path / "out.pt")
    assert (after.config.model.guide, after.config.model.guide_slices) == ("inn", True)
    network = after.network()
    assert isinstance(network.guide, SliceWise) and network.guide.net.dim == 2
    for key, value in before.state_dict.items():
        torch.testing.assert_close(after.state_dict[key], value, msg=key)
    torch.manual_seed(0)  # the guide train() starts from
    fresh = INNReg(after.config.model).guide.net.state_dict()
    assert any(not torch.equal(value, fresh[key]) for key, value in guide.items())  # the two steps trained it
    for key, value in guide.items():
        torch.testing.assert_close(network.guide.net.state_dict()[key], value, msg=key)
