"""End to end on tiny data: train a few steps, register, evaluate; bad input gives one line, exit 2."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
import yaml

import innreg
from innreg.cli import main


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def trained(tmp_path_factory, phantom, tiny_dict) -> Path:
    run_dir = tmp_path_factory.mktemp("run")
    cfg = run_dir / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(tiny_dict))
    assert main(["train", "--pairs", str(phantom["train"]), "--out", str(run_dir), "--config", str(cfg),
                 "--steps", "3", "--quiet"]) == 0  # fmt: skip
    return run_dir


def test_train_writes_model_config_history_and_curve(trained):
    for name in ("model.pt", "checkpoint.pt", "config.yaml", "history.csv", "loss_curve.png"):
        assert (trained / name).is_file(), name
    rows = list(csv.DictReader((trained / "history.csv").open()))
    assert [int(float(r["step"])) for r in rows] == [1, 2, 3]
    assert yaml.safe_load((trained / "config.yaml").read_text())["model"]["inn_hidden"] == 8


def test_register_single_pair_writes_outputs_on_fixed_grid(trained, phantom, tmp_path, capsys):
    row = next(csv.DictReader(Path(phantom["test"]).open()))
    root = Path(phantom["test"]).parent
    out = tmp_path / "reg"
    code, _, err = run(capsys, "register", "--model", trained / "model.pt", "--moving", root / row["moving"],
                       "--fixed", root / row["fixed"], "--moving-seg", root / row["moving_seg"], "--out", out)  # fmt: skip
    assert code == 0, err
    fixed = nib.load(root / row["fixed"])
    for name in ("warped", "translated", "warped_seg"):
        img = nib.load(out / f"{name}.nii.gz")
        assert np.allclose(img.affine, fixed.affine) and img.shape == fixed.shape
    ddf = nib.load(out / "ddf.nii.gz")
    assert "pull-back" in ddf.header["descrip"].tobytes().decode()
    assert (out / "inverse_ddf.nii.gz").is_file() and (out / "overview.png").stat().st_size > 1000
    labels = np.asarray(nib.load(out / "warped_seg.nii.gz").dataobj)
    assert set(np.unique(labels)) <= {0, 1, 2, 3}
    record = json.loads((out / "registration.json").read_text())  # what produced the folder
    assert record["moving"] == str(root / row["moving"]) and record["moving_seg"] == str(root / row["moving_seg"])
    assert record["seconds"] > 0 and 0.0 <= record["neg_jacobian_fraction"] <= 1.0
    assert list(record["phase_seconds"]) == ["translate", "network (affine stage)", "affine correction", "demons", "warp"]
    assert 0 < sum(record["phase_seconds"].values()) <= record["seconds"]
    assert record["run"]["model"] == str(trained / "model.pt") and record["run"]["translate"]
    assert record["run"]["innreg_version"] == innreg.__version__ and record["run"]["refine"]["enabled"]
    assert record["run"]["cpu_threads"] == torch.get_num_threads()  # the seconds depend on them


def test_register_and_apply_keep_large_label_ids_exactly(trained, phantom, tmp_path, capsys):
    # Atlas-style ids: beyond int16 (written as int16 before) and beyond float32's 2**24 (warped as floats before).
    row = next(csv.DictReader(Path(phantom["test"]).open()))
    root = Path(phantom["test"]).parent
    seg = nib.load(root / row["moving_seg"])
    ids = np.array([0, 40000, 16777217, 614454277])
    big = tmp_path / "big_seg.nii.gz"
    nib.save(nib.Nifti1Image(ids[np.asarray(seg.dataobj).astype(int)].astype(np.int32), seg.affine), big)
    out, applied = tmp_path / "reg", tmp_path / "applied.nii.gz"
    code, _, err = run(capsys, "register", "--model", trained / "model.pt", "--moving", root / row["moving"],
                       "--fixed", root / row["fixed"], "--moving-seg", big, "--out", out)  # fmt: skip
    assert code == 0, err
    warped = np.asarray(nib.load(out / "warped_seg.nii.gz").dataobj)
    assert set(np.unique(warped)) <= set(ids) and len(np.unique(warped)) == 4
    code, _, err = run(capsys, "apply", "--registration", out, "--image", big, "--out", applied, "--labels")
    assert code == 0, err
    np.testing.assert_array_equal(np.asarray(nib.load(applied).dataobj), warped)


def test_register_batch_form(trained, phantom, tmp_path, capsys):
    from innreg.data import read_manifest

    code, out, err = run(capsys, "register", "--model", trained / "model.pt", "--pairs", phantom["test"], "--out", tmp_path / "a")
    assert code == 0, err
    assert len(list((tmp_path / "a").glob("*/warped.nii.gz"))) == 2
    # The index names this run's folders and inputs; a later run into the same --out with fewer pairs keeps
    # the older folders but lists only its own.
    records = read_manifest(phantom["test"])
    index = list(csv.DictReader((tmp_path / "a" / "registrations.csv").open()))
    assert [row["moving"] for row in index] == [str(r.moving) for r in records]
    assert all((tmp_path / "a" / row["folder"] / "warped.nii.gz").is_file() and float(row["seconds"]) > 0 for row in index)
    one = tmp_path / "one.csv"
    one.write_text(f"moving,fixed\n{records[1].moving},{records[1].fixed}\n")
    code, _, err = run(capsys, "register", "--model", trained / "model.pt", "--pairs", one, "--out", tmp_path / "a", "--quiet")
    assert code == 0, err
    index = list(csv.DictReader((tmp_path / "a" / "registrations.csv").open()))
    assert [row["moving"] for row in index] == [str(records[1].moving)]
    assert len(list((tmp_path / "a").glob("0*"))) == 3  # 0000_A and 0001_B of the first run, 0000_B of this one
    code, _, err = run(capsys, "register", "--model", trained / "model.pt", "--pairs", phantom["test"], "--out", tmp_path / "b", "--quiet")
    assert code == 0 and "register" not in err
    # A label map given for one pair is not silently dropped for a manifest's pairs.
    code, _, err = run(capsys, "register", "--model", trained / "model.pt", "--pairs", phantom["test"], "--out", tmp_path / "c",
                       "--moving-seg", phantom["test"])  # fmt: skip
    assert code == 2 and err.strip().startswith("innreg: error: --moving-seg: for one pair") and not (tmp_path / "c").exists()


def test_register_writes_the_translation_in_the_fixed_images_units(trained, phantom, tmp_path):
    """A fixed image in other units (here 100 + 800 x the phantom's): ``translated.nii.gz`` is in them too."""
    from dataclasses import replace

    from innreg.data import load_image, read_manifest, save_image
    from innreg.inference import load_model, write_registration

    record = read_manifest(phantom["test"])[0]
    fixed = load_image(record.fixed)
    save_image(tmp_path / "fixed.nii.gz", 100.0 + 800.0 * fixed.array, fixed)
    model = load_model(trained / "model.pt", "cpu")
    result = write_registration(model, replace(record, fixed=tmp_path / "fixed.nii.gz"), tmp_path / "reg")
    translated = load_image(tmp_path / "reg" / "translated.nii.gz").array
    lo, hi = np.percentile(100.0 + 800.0 * fixed.array, [1, 99])
    np.testing.assert_allclose(translated, lo + (hi - lo) * result.translated, rtol=1e-5, atol=1e-3)


def test_registration_reports_its_phases_in_order(trained, phantom, tmp_path):
    """What register's progress bar shows beside the pair count: the phase of the pair in progress."""
    from innreg.data import read_manifest
    from innreg.inference import load_model, write_registration

    phases = []
    model = load_model(trained / "model.pt", "cpu")
    result = write_registration(model, read_manifest(phantom["test"])[0], tmp_path, phases.append)
    assert phases == ["translate", "network (affine stage)", "affine correction", "demons", "warp", "write outputs"]
    # Each phase is timed, the last one reported ("write outputs") after the registration's own seconds.
    assert list(result.phase_seconds) == phases[:-1] and all(s >= 0 for s in result.phase_seconds.values())
    assert result.seconds - 0.01 <= sum(result.phase_seconds.values()) <= result.seconds


def test_evaluate_writes_per_pair_and_summary(trained, phantom, tmp_path, capsys):
    code, out, err = run(capsys, "evaluate", "--model", trained / "model.pt", "--pairs", phantom["test"],
                         "--out", tmp_path, "--quiet")  # fmt: skip
    assert code == 0, err
    summary = json.loads((tmp_path / "summary.json").read_text())
    for key in ("dice_mean", "hd95_mean", "neg_jacobian_fraction", "seconds_per_pair", "n_pairs", "identity", "epe_mm"):
        assert key in summary
    assert summary["n_pairs"] == 2 and 0 <= summary["dice_mean"] <= 1
    rows = list(csv.DictReader((tmp_path / "per_pair.csv").open()))
    assert len(rows) == 2 and all(Path(r["warped_seg"]).is_file() for r in rows)
    assert {"dice_1", "dice_2", "dice_3", "hd95_1", "nmi_before", "nmi_after", "seconds"} <= set(rows[0])
    assert "| identity |" in (tmp_path / "summary.md").read_text()
    # the phantom manifest has moving_as_fixed: translation fidelity is scored and printed
    assert -1 <= summary["translation_ncc"] <= 1 and "translation vs moving_as_fixed: NCC" in out
    phases = summary["phase_seconds_per_pair"]  # where the time goes, and printed
    assert "demons" in phases and sum(phases.values()) <= summary["seconds_per_pair"]
    assert "seconds a pair by phase: translate " in out
    assert f" s/pair (cpu, {torch.get_num_threads()} CPU thread" in out  # what the seconds were measured with


def test_evaluate_no_translate_runs_the_pipeline_on_the_raw_moving_image(trained, phantom, tmp_path, capsys):
    from innreg.data import load_pair, normalize_percentile, read_manifest
    from innreg.inference import load_model

    code, _, err = run(capsys, "evaluate", "--model", trained / "model.pt", "--pairs", phantom["test"],
                       "--out", tmp_path, "--quiet", "--no-translate")  # fmt: skip
    assert code == 0, err
    moving, fixed, moving_seg, _ = load_pair(read_manifest(phantom["test"])[0])
    raw = load_model(trained / "model.pt", "cpu", translate=False).register(moving, fixed, moving_seg.array)
    np.testing.assert_allclose(raw.translated, normalize_percentile(moving.array), atol=1e-6)
    written = nib.load(next(csv.DictReader((tmp_path / "per_pair.csv").open()))["warped_seg"])
    np.testing.assert_array_equal(np.asarray(written.dataobj), raw.warped_seg)


def test_evaluate_no_refine_registers_with_the_network_alone(trained, phantom, tmp_path, capsys):
    from innreg.data import load_pair, read_manifest
    from innreg.inference import load_model

    code, _, err = run(capsys, "evaluate", "--model", trained / "model.pt", "--pairs", phantom["test"],
                       "--out", tmp_path, "--quiet", "--no-refine")  # fmt: skip
    assert code == 0, err
    moving, fixed, moving_seg, _ = load_pair(read_manifest(phantom["test"])[0])
    network = load_model(trained / "model.pt", "cpu", refine=False).register(moving.array, fixed.array, moving_seg.array)
    refined = load_model(trained / "model.pt", "cpu").register(moving.array, fixed.array)
    assert not np.allclose(network.ddf, refined.ddf)
    written = nib.load(next(csv.DictReader((tmp_path / "per_pair.csv").open()))["warped_seg"])
    np.testing.assert_array_equal(np.asarray(written.dataobj), network.warped_seg)


def test_refinement_can_start_from_the_full_network_field(trained, phantom):
    from innreg.data import load_pair, read_manifest
    from innreg.inference import load_model
    from innreg.metrics import neg_jacobian_fraction

    moving, fixed, _, _ = load_pair(read_manifest(phantom["test"])[0])
    model = load_model(trained / "model.pt", "cpu")
    from_affine = model.register(moving.array, fixed.array)
    model.config = model.config.updated(refine={"init": "network"})
    from_network = model.register(moving.array, fixed.array)
    assert not np.allclose(from_affine.ddf, from_network.ddf)
    assert from_network.ddf.shape == from_network.inverse_ddf.shape == (2, *fixed.shape)
    assert neg_jacobian_fraction(from_network.ddf) < 0.01


def test_inverse_weight_adds_the_fixed_image_translated_back_to_the_refinement(trained, phantom):
    from innreg.data import load_pair, read_manifest
    from innreg.inference import load_model
    from innreg.metrics import neg_jacobian_fraction

    moving, fixed, _, _ = load_pair(read_manifest(phantom["test"])[0])
    forward_only = load_model(trained / "model.pt", "cpu", refine={"inverse_weight": 0.0}).register(moving.array, fixed.array)
    both = load_model(trained / "model.pt", "cpu", refine={"inverse_weight": 3.0}).register(moving.array, fixed.array)
    assert not np.allclose(forward_only.ddf, both.ddf)
    finer = load_model(trained / "model.pt", "cpu", refine={"inverse_weight": 3.0, "inverse_factor": 1})
    assert not np.allclose(finer.register(moving.array, fixed.array).ddf, both.ddf)  # inverse_factor reaches it
    assert neg_jacobian_fraction(both.ddf) < 0.01
    network = load_model(trained / "model.pt", "cpu", refine=False).register(moving.array, fixed.array)
    unused = load_model(trained / "model.pt", "cpu", refine={"enabled": False, "inverse_weight": 3.0})
    np.testing.assert_allclose(unused.register(moving.array, fixed.array).ddf, network.ddf)  # no refinement: no effect


def test_model_files_with_the_earlier_adam_refinement_settings_load_with_todays(trained, tmp_path):
    import torch

    from innreg.config import RefineConfig
    from innreg.inference import load_model

    ckpt = torch.load(trained / "model.pt", weights_only=False)
    ckpt["config"]["refine"] = {"enabled": False, "init": "network", "steps": [40, 30, 10, 10], "lr": 1.0, "smooth": 0.3}
    torch.save(ckpt, tmp_path / "old.pt")
    # today's settings, in voxel units and on unsmoothed images as every file of that era
    expected = RefineConfig(
        enabled=False, init="network", reference_spacing=0.0, mind_presmooth=0.0, inverse_weight=0.0, inverse_factor=1
    )
    assert load_model(tmp_path / "old.pt", "cpu").config.refine == expected


def test_model_files_without_squeeze_key_load_the_cell_squeeze(trained, tmp_path):
    import torch

    from innreg.inference import load_model

    ckpt = torch.load(trained / "model.pt", weights_only=False)
    assert load_model(trained / "model.pt", "cpu").model.translator.haar  # today's default
    del ckpt["config"]["model"]["squeeze"]  # as written before the option existed
    torch.save(ckpt, tmp_path / "old.pt")
    assert not load_model(tmp_path / "old.pt", "cpu").model.translator.haar


def test_refine_config_overrides_the_models_refinement(trained, phantom, tmp_path, capsys):
    from innreg.inference import load_model

    model = load_model(trained / "model.pt", "cpu", refine={"smooth_sigma": 1.0, "steps": [2, 2, 2, 2]})
    assert model.config.refine.enabled and model.config.refine.smooth_sigma == 1.0
    assert model.config.refine.steps == (2, 2, 2, 2)
    cfg = tmp_path / "refine.yaml"
    cfg.write_text("refine: {smooth_sigma: 1.0, mind_dilation: 1}\n")
    code, out, err = run(capsys, "evaluate", "--model", trained / "model.pt", "--pairs", phantom["test"],
                         "--out", tmp_path / "e", "--refine-config", cfg, "--quiet")  # fmt: skip
    assert code == 0, err
    summary = json.loads((tmp_path / "e" / "summary.json").read_text())
    assert summary["n_pairs"] > 0
    # What produced the figures: the refinement as run (the file's keys over the model's), the translation on.
    assert summary["run"]["refine"]["smooth_sigma"] == 1.0 and summary["run"]["refine"]["mind_dilation"] == 1
    assert summary["run"]["translate"] and summary["run"]["model"] == str(trained / "model.pt")


@pytest.mark.parametrize(
    "text, needle",
    [("model: {dim: 3}\n", "only a refine section"), ("refine: {sigma: 1}\n", "sigma"), ("refine: {step_size: 0}\n", "step_size")],
)
def test_bad_refine_config_names_the_file(trained, phantom, tmp_path, capsys, text, needle):
    cfg = tmp_path / "bad_refine.yaml"
    cfg.write_text(text)
    code, _, err = run(capsys, "register", "--model", trained / "model.pt", "--pairs", phantom["test"],
                       "--out", tmp_path / "o", "--refine-config", cfg)  # fmt: skip
    assert code == 2 and "bad_refine.yaml" in err and needle in err and len(err.strip().splitlines()) == 1


def test_no_refine_and_refine_config_exclude_each_other(trained, phantom, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["evaluate", "--model", str(trained / "model.pt"), "--pairs", str(phantom["test"]), "--out",
              str(tmp_path), "--no-refine", "--refine-config", str(tmp_path / "r.yaml")])  # fmt: skip
    assert "not allowed with" in capsys.readouterr().err


@pytest.mark.parametrize("steps", [["--steps", "5"], []], ids=["steps-given", "steps-of-the-run"])
def test_train_resume_continues_an_interrupted_run(phantom, tmp_path, capsys, monkeypatch, tiny_dict, steps):
    # Without --steps the resumed run ends at its own 5 steps, not at the default 1200.
    import innreg.training as training

    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump({**tiny_dict, "train": {**tiny_dict["train"], "checkpoint_every": 2}}))
    real_step = training.train_step

    def interrupted(state, *args):
        if state.step == 3:
            raise KeyboardInterrupt
        return real_step(state, *args)

    monkeypatch.setattr(training, "train_step", interrupted)
    code, _, err = run(capsys, "train", "--pairs", phantom["train"], "--out", tmp_path, "--config", cfg, "--steps", "5", "--quiet")
    assert code == 130 and "--resume" in err and not (tmp_path / "model.pt").exists()
    monkeypatch.setattr(training, "train_step", real_step)
    code, _, err = run(capsys, "train", "--pairs", phantom["train"], "--out", tmp_path, *steps, "--resume", "--quiet")
    assert code == 0, err
    done = [int(float(r["step"])) for r in csv.DictReader((tmp_path / "history.csv").open())]
    assert done == [1, 2, 3, 4, 5]


def test_train_that_diverges_stops_with_one_line_and_keeps_the_last_good_checkpoint(phantom, tmp_path, capsys, monkeypatch, tiny_dict):
    import torch

    import innreg.training as training

    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump({**tiny_dict, "train": {**tiny_dict["train"], "checkpoint_every": 1}}))
    real_step = training.train_step

    def diverging(state, *args, **kwargs):
        logs = real_step(state, *args, **kwargs)
        if state.step == 2:  # the third step: its update ruined the weights
            with torch.no_grad():
                for p in state.model.parameters():
                    p.fill_(float("nan"))
            logs["total"] = float("nan")
        return logs

    monkeypatch.setattr(training, "train_step", diverging)
    code, _, err = run(capsys, "train", "--pairs", phantom["train"], "--out", tmp_path, "--config", cfg, "--steps", "5", "--quiet")
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 1, err
    assert "train: total not finite at step 3" in lines[0] and "holds step 2" in lines[0]
    assert not (tmp_path / "model.pt").exists()
    saved = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    assert saved["step"] == 2
    assert all(torch.isfinite(v).all() for v in saved["parts"]["model"].values() if v.is_floating_point())


@pytest.mark.parametrize(
    "argv_tail, needle",
    [
        (["train", "--pairs", "{tmp}/missing.csv", "--out", "{tmp}/o"], "missing.csv"),
        (["evaluate", "--model", "{tmp}/nope.pt", "--pairs", "{tmp}/x.csv", "--out", "{tmp}/o"], "nope.pt"),
        (["train", "--pairs", "{tmp}/bad.csv", "--out", "{tmp}/o"], "bad.csv"),
        (["register", "--model", "{tmp}/nope.pt", "--out", "{tmp}/o"], "--moving"),
    ],
)
def test_bad_input_gives_one_line_error(tmp_path, capsys, argv_tail, needle):
    (tmp_path / "bad.csv").write_text("moving,wrong\na.nii.gz,b.nii.gz\n")
    code, out, err = run(capsys, *[a.format(tmp=tmp_path) for a in argv_tail])
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("innreg: error:") and needle in lines[0]
    assert "Traceback" not in err


def test_register_rejects_non_nifti_moving(trained, phantom, tmp_path, capsys):
    bogus = tmp_path / "fake.nii.gz"
    bogus.write_text("not an image")
    root = Path(phantom["test"]).parent
    fixed = next(csv.DictReader(Path(phantom["test"]).open()))["fixed"]
    code, _, err = run(capsys, "register", "--model", trained / "model.pt", "--moving", bogus, "--fixed", root / fixed, "--out", tmp_path / "o")
    assert code == 2 and "fake.nii.gz" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o" / "warped.nii.gz").exists()


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    for cmd in ("phantom", "train", "register", "apply", "evaluate", "compare", "demo", "benchmark"):
        assert cmd in text


def test_evaluate_says_when_the_translation_is_coarser_than_its_floor():
    from types import SimpleNamespace

    from innreg.cli.evaluate import translation_line

    identity = SimpleNamespace(translation_ncc=0.518, translation_ssim=0.249)
    summary = SimpleNamespace(translation_ncc=0.529, translation_ssim=0.215, identity=identity)
    full = translation_line(summary, 1)
    assert full == "translation vs moving_as_fixed: NCC 0.529 (untranslated 0.518), SSIM 0.215 (untranslated 0.249)"
    assert translation_line(summary, 2) == full + "; translated at 1/2 resolution, the untranslated floor at full resolution"


def _per_pair(folder: Path, dice: list[float]) -> Path:
    folder.mkdir()
    rows = [{"pair": i, "moving": f"m{i}.nii.gz", "fixed": f"f{i}.nii.gz", "dice_mean": v} for i, v in enumerate(dice)]
    with (folder / "per_pair.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return folder


def test_compare_pairs_two_evaluations_by_their_images(tmp_path, capsys):
    a = _per_pair(tmp_path / "a", [0.90, 0.80, 0.70, 0.85])
    b = _per_pair(tmp_path / "b", [0.875, 0.775, 0.675, 0.825])
    code, out, _ = run(capsys, "compare", a, b / "per_pair.csv")
    assert code == 0
    assert "dice_mean, A - B over 4 pairs: +0.0250 (95% CI +0.0250 to +0.0250)" in out
    assert "higher on 4 and lower on 0 of 4 pairs" in out
    assert "runs differ" not in out  # neither folder has a summary.json recording its run


def test_compare_says_what_differed_between_the_two_runs(tmp_path, capsys):
    a = _per_pair(tmp_path / "a", [0.90, 0.80])
    b = _per_pair(tmp_path / "b", [0.875, 0.775])
    refine = {"enabled": True, "steps": [20, 10]}
    run_a = {"innreg_version": "0.1.0", "model": "m.pt", "translate": True, "refine": refine}
    run_b = run_a | {"translate": False, "refine": refine | {"steps": [20, 15, 10, 5]}}
    (a / "summary.json").write_text(json.dumps({"n_pairs": 2, "run": run_a}))
    (b / "summary.json").write_text(json.dumps({"n_pairs": 2, "run": run_b}))
    code, out, _ = run(capsys, "compare", a, b / "per_pair.csv")
    assert code == 0
    assert "runs differ in: refine.steps: [20, 10] -> [20, 15, 10, 5]; translate: True -> False" in out
    (b / "summary.json").write_text("{not json")  # an unreadable record says nothing, and the comparison stands
    code, out, _ = run(capsys, "compare", a, b)
    assert code == 0 and "runs differ" not in out


@pytest.mark.parametrize(
    "b_dice, metric, needle",
    [
        ([0.9], "dice_mean", "needs at least two pairs with both values, got 1"),
        ([0.9, 0.8], "epe_mm", "needs columns moving, fixed and epe_mm"),
        ([0.9, 0.8], "moving", "column moving is not numeric"),
    ],
)
def test_compare_refuses_too_few_shared_pairs_and_unknown_metrics(tmp_path, capsys, b_dice, metric, needle):
    a = _per_pair(tmp_path / "a", [0.90, 0.80])
    b = _per_pair(tmp_path / "b", b_dice)
    code, _, err = run(capsys, "compare", a, b, "--metric", metric)
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1


def test_compare_refuses_a_pair_listed_twice(tmp_path, capsys):
    a = _per_pair(tmp_path / "a", [0.90, 0.80, 0.70])
    b = _per_pair(tmp_path / "b", [0.90, 0.80, 0.70])
    csv_path = b / "per_pair.csv"
    csv_path.write_text(csv_path.read_text().replace("m1.nii.gz,f1.nii.gz", "m0.nii.gz,f0.nii.gz"))
    code, _, err = run(capsys, "compare", a, b)
    assert code == 2 and "more than once" in err and str(csv_path) in err


def test_a_reader_that_went_away_ends_the_command_quietly(monkeypatch, capsys):
    import innreg.cli
    import innreg.cli.compare

    def closed_pipe(args):
        raise BrokenPipeError(32, "Broken pipe")

    redirected = []
    monkeypatch.setattr(innreg.cli.compare, "run", closed_pipe)
    monkeypatch.setattr(innreg.cli.os, "dup2", lambda fd, fd2: redirected.append(fd2))  # leave pytest's stdout alone
    monkeypatch.setattr(innreg.cli.sys.stdout, "fileno", lambda: 1, raising=False)
    code, _, err = run(capsys, "compare", "a", "b")
    assert code == 141 and err == "" and redirected == [1]
