"""Multi-process training with DDP on CPU (gloo, 2 processes): the ranks draw different batches,
their gradients are all-reduced, rank 0 writes the run, ``--resume`` works, and the model registers."""

from __future__ import annotations

import csv
import os
import socket
import time
from datetime import timedelta
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
import yaml

from innreg import distributed
from innreg.cli import main
from innreg.config import Config, Precision
from innreg.errors import InnregInputError



def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_worker(rank: int, port: int, train_csv: str, config: dict, out: str) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    from innreg.batches import PairBatches
    from innreg.training import build_state, train_step

    cfg = Config.from_dict(config)
    ctx, device = distributed.setup("cpu")
    state = build_state(cfg, device)
    state.ddp_model = distributed.wrap(state.model, ctx, device)
    state.ddp_discriminator = distributed.wrap(state.discriminator, ctx, device)
    from innreg.data import read_manifest

    batches = PairBatches(read_manifest(train_csv), cfg, device, (ctx.rank, ctx.world_size))
    moving = torch.cat([batches(step)[0] for step in range(4)])
    for step in range(2):
        train_step(state, *batches(step), cfg)
    weights = torch.cat([p.detach().flatten() for p in state.model.parameters()])
    disc = torch.cat([p.detach().flatten() for p in state.discriminator.parameters()])
    torch.save({"weights": weights, "disc": disc, "moving": moving}, Path(out) / f"rank{rank}.pt")
    state.ddp_model = state.ddp_discriminator = None  # before teardown, as training does
    distributed.teardown(ctx)


@pytest.mark.parametrize("guide", ["none", "unet"])  # a guide sits frozen (unused) in the joint steps
def test_ranks_see_different_batches_and_stay_in_sync(phantom, tiny_dict, tmp_path, guide):
    # With the paper's adversarial term (off by default), so the critic's DDP sync is checked too.
    config = Config.from_dict(tiny_dict).updated(model={"guide": guide}, loss={"w_adv": 0.1}).to_dict()  # tiny_dict is shared
    mp.spawn(_rank_worker, args=(_free_port(), str(phantom["train"]), config, str(tmp_path)), nprocs=2)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    assert not torch.equal(r0["moving"], r1["moving"])  # each rank its own batch
    # Different batches, yet identical weights after the updates: the gradients were all-reduced,
    # for the generator and the discriminator.
    torch.testing.assert_close(r0["weights"], r1["weights"], rtol=0, atol=1e-6)
    torch.testing.assert_close(r0["disc"], r1["disc"], rtol=0, atol=1e-6)
    initial = Config.from_dict(config)
    from innreg.training import build_state

    fresh = torch.cat([p.detach().flatten() for p in build_state(initial, torch.device("cpu")).model.parameters()])
    assert (r0["weights"] - fresh).abs().max() > 1e-4  # and they did train


def _stage_worker(rank: int, port: int, train_csv: str, config: dict, out: str) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    import torch.distributed as dist

    from innreg import training, translation_training

    init = dist.init_process_group  # collectives time out after 8 s instead of 30 min
    dist.init_process_group = lambda *args, **kwargs: init(*args, **kwargs, timeout=timedelta(seconds=8))
    align = translation_training.align_pairs
    aligned_here = []

    def recording_align(model, pairs, *args, **kwargs):
        if rank == 0:
            time.sleep(16)  # rank 0's share takes longer than the collectives' timeout
        aligned_here.append(torch.cat([moving.flatten() for moving, _ in pairs]))
        return align(model, pairs, *args, **kwargs)

    translation_training.align_pairs = recording_align
    distil = training.distil_registration
    flat = lambda module: torch.cat([p.detach().flatten() for p in module.parameters()])  # noqa: E731

    def saving_distil(model, *args, **kwargs):
        # The guide as the stages left it on this rank (the distillation's DDP would hand out rank 0's).
        before = {"registration": flat(model.registration), "guide": flat(model.guide)}
        logs = distil(model, *args, **kwargs)
        after = {"after": flat(model.registration), "translator": flat(model.translator)}
        torch.save({**before, **after, "aligned": aligned_here}, Path(out) / f"distil_rank{rank}.pt")
        return logs

    training.distil_registration = saving_distil
    path = training.train(train_csv, Path(out) / "run", Config.from_dict(config), progress=False)
    assert path.is_file()  # every rank returns once model.pt exists


def test_translator_stages_and_distillation_on_all_ranks(phantom, tiny_dict, tmp_path):
    # Each rank aligns its own share of the training pairs (unequally fast: rank 0's takes longer than
    # the collectives' timeout, 8 s here, 30 min on a real gloo run), then all train the guide together
    # and distil on their own batches, in sync.
    config = Config.from_dict(tiny_dict).updated(model={"guide": "unet"}, train={"steps": 2}).to_dict()
    mp.spawn(_stage_worker, args=(_free_port(), str(phantom["train"]), config, str(tmp_path)), nprocs=2)
    r0, r1 = (torch.load(tmp_path / f"distil_rank{r}.pt") for r in (0, 1))
    rounds = Config.from_dict(config).train.translator_rounds
    assert len(r0["aligned"]) == len(r1["aligned"]) == rounds
    # Two training pairs, one per rank: disjoint shares.
    assert r0["aligned"][0].numel() == r1["aligned"][0].numel() == 32 * 32
    assert not torch.equal(r0["aligned"][0], r1["aligned"][0])
    for key in ("guide", "after", "translator"):
        torch.testing.assert_close(r0[key], r1[key], rtol=0, atol=1e-6)
    from innreg.training import build_state

    fresh = build_state(Config.from_dict(config), torch.device("cpu")).model.guide  # the run's start
    assert (r0["guide"] - torch.cat([p.detach().flatten() for p in fresh.parameters()])).abs().max() > 1e-4
    assert (r0["after"] - r0["registration"]).abs().max() > 1e-4  # the distillation trained
    saved = torch.load(tmp_path / "run" / "model.pt", weights_only=False)
    assert saved["info"]["world_size"] == 2


def _mixed_size_worker(rank: int, port: int, records: list, config: dict, out: str) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    from innreg import translation_training
    from innreg.model import INNReg

    loaded = []
    load = translation_training.PairDataset.__getitem__
    translation_training.PairDataset.__getitem__ = lambda self, i: loaded.append(i) or load(self, i)
    ctx, device = distributed.setup("cpu")
    cfg = Config.from_dict(config)
    rounds = translation_training.train_translator_stages(INNReg(cfg.model), records, cfg, device, ctx=ctx)
    union = distributed.union_over_ranks({f"rank{rank}"}, ctx)
    torch.save({"loaded": loaded, "rounds": len(rounds), "union": union}, Path(out) / f"mixed_rank{rank}.pt")
    distributed.teardown(ctx)


def test_ranks_load_their_own_share_and_agree_to_skip_stages_for_mixed_sizes(mixed_size_records, tiny_dict, tmp_path):
    # One pair per rank, of different sizes: each rank sees one size, the gathered shapes two, so every
    # rank skips the stages (none may start the translator's collectives alone).
    mp.spawn(_mixed_size_worker, args=(_free_port(), mixed_size_records, tiny_dict, str(tmp_path)), nprocs=2)
    r0, r1 = (torch.load(tmp_path / f"mixed_rank{r}.pt", weights_only=False) for r in (0, 1))
    assert (r0["loaded"], r1["loaded"]) == ([0], [1])
    assert r0["rounds"] == r1["rounds"] == 0
    assert r0["union"] == r1["union"] == {"rank0", "rank1"}


def _stage_resume_worker(rank: int, port: int, train_csv: str, config: dict, out: str, interrupt: bool) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    from innreg import training, translation_training

    cfg, out = Config.from_dict(config), Path(out)
    if not interrupt:
        path = training.train(train_csv, out / "reference", cfg, progress=False)
    else:
        objective, calls = translation_training.TranslationObjective, []

        class Interrupted(objective):  # every rank stops at round 1's second step, as a killed job would
            def forward(self, *args):
                calls.append(1)
                if len(calls) == 4:
                    raise KeyboardInterrupt
                return super().forward(*args)

        translation_training.TranslationObjective = Interrupted
        with pytest.raises(KeyboardInterrupt):
            training.train(train_csv, out / "run", cfg, progress=False)
        # The same processes resume (their process group outlived the interrupt, as a new job's would start).
        path = training.train(train_csv, out / "run", cfg, resume=True, progress=False)
        assert len(calls) == 5  # the resumed run ran round 1's second step alone
    if rank == 0:
        state = torch.load(path, weights_only=False)["state_dict"]
        torch.save({k: v for k, v in state.items() if k.startswith("translator.")}, path.parent / "translator.pt")


@pytest.mark.slow
def test_data_parallel_stages_resume_to_the_translator_of_an_uninterrupted_run(phantom, tiny_dict, tmp_path):
    # Each rank draws its crops by (step, rank) and all restore rank 0's checkpoint: a run killed in a
    # translator round and resumed ends with the translator of a run that was never stopped. One spawn
    # per run: a process group is not set up twice in one process.
    config = Config.from_dict(tiny_dict).updated(
        train={"steps": 2, "translator_rounds": 2, "translator_steps": 2, "checkpoint_every": 1, "distil_steps": 0},
        refine={"factors": [2, 1], "steps": [2, 2]},
    ).to_dict()
    for interrupt in (False, True):
        args = (_free_port(), str(phantom["train"]), config, str(tmp_path), interrupt)
        mp.spawn(_stage_resume_worker, args=args, nprocs=2)
    reference, resumed = (torch.load(tmp_path / run / "translator.pt") for run in ("reference", "run"))
    assert reference.keys() == resumed.keys() and reference
    for name, value in reference.items():
        torch.testing.assert_close(resumed[name], value, rtol=0, atol=1e-6, msg=name)
    history = torch.load(tmp_path / "run" / "translator_round1_checkpoint.pt", weights_only=False)["history"]
    assert [int(row["step"]) for row in history] == [1, 2]


@pytest.mark.slow
def test_torchrun_train_resume_then_register(phantom, tiny_dict, tmp_path, capsys, torchrun):
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(tiny_dict))
    run_dir = tmp_path / "run"
    common = ["--pairs", str(phantom["train"]), "--out", str(run_dir), "--config", str(cfg), "--device", "cpu", "--quiet"]
    done = torchrun(*common, "--steps", "2")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-6000:]
    assert done.stdout.count("model:") == 1  # rank 0 alone reports and writes
    done = torchrun(*common, "--steps", "4", "--resume")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-6000:]
    rows = list(csv.DictReader((run_dir / "history.csv").open()))
    assert [int(float(r["step"])) for r in rows] == [1, 2, 3, 4]
    info = torch.load(run_dir / "model.pt", weights_only=False)["info"]
    assert info["world_size"] == 2 and info["steps"] == 4

    row = next(csv.DictReader(Path(phantom["test"]).open()))
    root = Path(phantom["test"]).parent
    out = tmp_path / "reg"
    code = main(["register", "--model", str(run_dir / "model.pt"), "--moving", str(root / row["moving"]),
                 "--fixed", str(root / row["fixed"]), "--out", str(out), "--device", "cpu"])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    assert (out / "warped.nii.gz").is_file()


def test_fp16_on_cpu_is_refused_in_one_line(phantom, tiny_dict, tmp_path, capsys):
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(tiny_dict))
    code = main(["train", "--pairs", str(phantom["train"]), "--out", str(tmp_path / "r"), "--config", str(cfg),
                 "--steps", "1", "--device", "cpu", "--precision", "fp16", "--quiet"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "fp16" in err


def test_bf16_autocast_trains_on_cpu(phantom, tiny_config):
    from innreg.batches import PairBatches
    from innreg.data import read_manifest
    from innreg.training import build_state, train_step

    cfg = tiny_config.updated(train={"precision": "bf16"})
    state = build_state(cfg, torch.device("cpu"))
    batches = PairBatches(read_manifest(phantom["train"]), cfg, torch.device("cpu"))
    before = [p.detach().clone() for p in state.model.parameters()]
    logs = [train_step(state, *batches(i), cfg) for i in range(2)]
    assert all(torch.isfinite(torch.tensor(row["total"])) for row in logs)
    assert any(not torch.equal(a, b) for a, b in zip(before, state.model.parameters()))


def test_check_precision():
    assert distributed.check_precision("bf16", torch.device("cpu")) is Precision.BF16
    with pytest.raises(InnregInputError):
        distributed.check_precision("fp16", torch.device("cpu"))


def _signal_worker(rank: int, port: int, out: str) -> None:
    import signal

    import torch.distributed as dist

    from innreg.errors import StopSignal
    from innreg.loop import read_checkpoint, run_loop

    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    ctx, device = distributed.setup("cpu")
    model = torch.nn.Linear(1, 1)

    def step_fn(step: int) -> dict[str, float]:
        if rank == 1 and step == 1:
            os.kill(os.getpid(), signal.SIGTERM)  # the signal reaches rank 1 first (rank 0 never gets it)
        total = torch.ones(1)
        dist.all_reduce(total)  # the steps' collectives keep the ranks in lockstep, as DDP's do
        return {"total": total.item()}

    path = Path(out) / "loop.pt"
    try:
        run_loop("demo", 5, step_fn, {"w": model}, path, checkpoint_every=100, progress=False,
                 writer=ctx.is_main, agree=distributed.loop_agreement(ctx, device))  # fmt: skip
        stopped = None
    except StopSignal as err:
        stopped = err.signum
    saved = read_checkpoint(path, "demo")["step"]  # every rank sees rank 0's checkpoint once it stops
    torch.save({"stopped": stopped, "saved": saved}, Path(out) / f"signal_rank{rank}.pt")
    distributed.teardown(ctx)


def test_a_signal_that_reaches_one_rank_stops_every_rank_after_the_same_step(tmp_path):
    # SIGTERM on rank 1 alone: both ranks stop after step 2 (the agreement is reached after each step), and
    # rank 0's checkpoint of step 2 exists before either rank leaves the loop.
    import signal

    mp.spawn(_signal_worker, args=(_free_port(), str(tmp_path)), nprocs=2)
    ranks = [torch.load(tmp_path / f"signal_rank{r}.pt") for r in (0, 1)]
    assert ranks[0] == ranks[1] == {"stopped": signal.SIGTERM, "saved": 2}
