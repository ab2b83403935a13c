"""Training batches by step number: worker processes prepare the same batches as the training process."""

from __future__ import annotations

import csv

import numpy as np

import torch
import yaml

from innreg.batches import PairBatches
from innreg.cli import main
from innreg.data import read_manifest


def _draw(batches: PairBatches, steps: list[int]) -> list[torch.Tensor]:
    return [torch.cat(batches(step)) for step in steps]


def test_workers_prepare_the_batches_the_training_process_draws(phantom, tiny_config):
    records = read_manifest(phantom["train"])
    alone = PairBatches(records, tiny_config, torch.device("cpu"))
    ahead = PairBatches(records, tiny_config.updated(train={"data_workers": 2}), torch.device("cpu"))
    # In order, then a jump (the distillation's steps), then a step back (a resumed loop).
    steps = [0, 1, 2, 10**6, 10**6 + 1, 1]
    torch.manual_seed(0)
    expected = _draw(alone, steps)
    got = _draw(ahead, steps)
    assert all(torch.equal(a, b) for a, b in zip(expected, got))
    assert not torch.equal(expected[0], expected[1])  # the steps differ: the check is not vacuous
    # The augmentations follow the torch seed (the translator stages reseed): the workers follow it too.
    before = _draw(alone, [3])[0]
    torch.manual_seed(7)
    reseeded = _draw(alone, [3])[0]
    assert not torch.equal(reseeded, before)
    assert torch.equal(_draw(ahead, [3])[0], reseeded)
    ahead.close()


def test_training_with_workers_gives_the_same_run(phantom, tiny_dict, tmp_path):
    # The joint steps, the translator stages and the distillation: the same losses and the same model.
    histories, weights = [], []
    for workers in (0, 2):
        cfg = tmp_path / f"w{workers}.yaml"
        cfg.write_text(yaml.safe_dump({**tiny_dict, "train": {**tiny_dict["train"], "data_workers": workers,
                                                              "distil_steps": 2, "translator_steps": 2}}))  # fmt: skip
        out = tmp_path / f"run{workers}"
        assert main(["train", "--pairs", str(phantom["train"]), "--out", str(out), "--config", str(cfg),
                     "--steps", "3", "--quiet"]) == 0  # fmt: skip
        histories.append(list(csv.DictReader((out / "history.csv").open())))
        weights.append(torch.load(out / "model.pt", map_location="cpu", weights_only=False)["state_dict"])
    assert histories[0] == histories[1]
    assert weights[0].keys() == weights[1].keys() and all(torch.equal(v, weights[1][k]) for k, v in weights[0].items())


def test_bad_training_image_with_workers_gives_one_line(tmp_path, tiny_dict, capsys):
    import nibabel as nib
    import numpy as np

    rows = ["moving,fixed"]
    for i in range(2):
        images = np.random.default_rng(i).random((2, 32, 32)).astype(np.float32)
        if i == 1:
            images[0, 3, 3] = np.nan
        for name, image in zip(("m", "f"), images):
            nib.save(nib.Nifti1Image(image, np.eye(4)), tmp_path / f"{name}{i}.nii.gz")
        rows.append(f"m{i}.nii.gz,f{i}.nii.gz")
    (tmp_path / "pairs.csv").write_text("\n".join(rows) + "\n")
    cfg = tmp_path / "w.yaml"
    cfg.write_text(yaml.safe_dump({**tiny_dict, "train": {**tiny_dict["train"], "data_workers": 2}}))
    code = main(["train", "--pairs", str(tmp_path / "pairs.csv"), "--out", str(tmp_path / "run"), "--config", str(cfg),
                 "--steps", "3", "--quiet"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "m1.nii.gz" in err and "NaN" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_a_resumed_run_takes_this_machines_workers_and_the_same_batches(phantom, tiny_dict, tmp_path, capsys):
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump({**tiny_dict, "train": {**tiny_dict["train"], "translator_rounds": 0, "distil_steps": 0}}))
    common = ["train", "--pairs", str(phantom["train"]), "--config", str(cfg), "--quiet"]
    assert main([*common, "--out", str(tmp_path / "straight"), "--steps", "3"]) == 0
    assert main([*common, "--out", str(tmp_path / "resumed"), "--steps", "2"]) == 0
    assert main([*common, "--out", str(tmp_path / "resumed"), "--steps", "3", "--resume", "--data-workers", "2"]) == 0
    saved = yaml.safe_load((tmp_path / "resumed" / "config.yaml").read_text())
    assert saved["train"]["data_workers"] == 2
    rows = [list(csv.DictReader((tmp_path / run / "history.csv").open())) for run in ("straight", "resumed")]
    assert rows[0] == rows[1] and len(rows[0]) == 3


def test_ranks_take_disjoint_shares_of_each_steps_pairs():
    from innreg.batches import step_indices

    for step in range(20):
        shares = [step_indices(10, 2, 0, step, rank, 4) for rank in range(4)]
        assert all(len(share) == 2 for share in shares)
        assert len(set(np.concatenate(shares).tolist())) == 8  # 8 distinct pairs of 10: no pair on two ranks
    # Fewer pairs than the ranks' batches: the order repeats, every pair is used, none twice within a rank.
    shares = np.concatenate([step_indices(3, 2, 0, 5, rank, 2) for rank in range(2)])
    assert sorted(set(shares.tolist())) == [0, 1, 2] and all(len(set(s)) == 2 for s in shares.reshape(2, 2).tolist())
    # One process keeps its draws (runs trained before resume with the same batches).
    alone = np.random.default_rng([0, 3]).choice(10, size=2, replace=False)
    assert np.array_equal(step_indices(10, 2, 0, 3), alone)
    assert not np.array_equal(step_indices(10, 2, 0, 3), step_indices(10, 2, 0, 4))  # by step


def test_each_rank_draws_its_share_with_its_own_augmentations(phantom, tiny_config):
    records = read_manifest(phantom["train"])
    torch.manual_seed(0)
    ranks = [PairBatches(records, tiny_config, torch.device("cpu"), (rank, 2)) for rank in range(2)]
    first, second = (torch.cat(batches(0)) for batches in ranks)
    assert not torch.equal(first, second)
