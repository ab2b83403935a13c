"""The training loop: a non-finite loss stops it before anything from the diverged step is saved; SIGINT and
SIGTERM stop it after the step in progress, with its checkpoint."""

from __future__ import annotations

import os
import signal

import pytest
import torch

from innreg.errors import StopSignal, TrainingDivergedError, stop_signals_interrupt
from innreg.loop import optimiser_step, read_checkpoint, run_loop, scheduled_lr, set_lr


def test_non_finite_logs_stop_the_loop_and_keep_the_last_checkpoint(tmp_path):
    losses = [1.0, 0.5, 0.25, float("inf"), 0.1]

    def step_fn(step: int) -> dict[str, float]:
        return {"total": losses[step], "other": 0.0}

    path = tmp_path / "loop.pt"
    with pytest.raises(TrainingDivergedError, match=r"demo: total not finite at step 4.*holds step 2"):
        run_loop("demo", 5, step_fn, {"w": torch.nn.Linear(1, 1)}, path, checkpoint_every=2, progress=False)
    assert read_checkpoint(path, "demo")["step"] == 2


def test_non_finite_logs_without_checkpoint_say_nothing_was_saved():
    with pytest.raises(TrainingDivergedError, match="x: distil, total not finite at step 1: .*nothing was saved"):
        run_loop("x", 3, lambda step: {"total": float("nan"), "distil": float("-inf"), "ok": 1.0}, {}, None, progress=False)


def test_the_progress_bar_shows_small_losses_in_significant_digits(capsys):
    # With three fixed decimals a loss under 5e-4 read "0.000".
    run_loop("x", 2, lambda step: {"distil_affine": 3.2e-5, "total": 1.5}, {}, None, postfix=("distil_affine", "total"))
    err = capsys.readouterr().err
    assert "distil_affine=3.2e-05" in err and "total=1.5" in err


def test_a_step_that_stops_before_its_update_gets_the_same_message(tmp_path):
    def step_fn(step: int) -> dict[str, float]:
        if step == 2:
            raise TrainingDivergedError("sim, total not finite")
        return {"total": 1.0}

    path = tmp_path / "loop.pt"
    with pytest.raises(TrainingDivergedError, match=r"^train: sim, total not finite at step 3: .*holds step 2\. A lower"):
        run_loop("train", 5, step_fn, {"w": torch.nn.Linear(1, 1)}, path, checkpoint_every=1, progress=False)
    assert read_checkpoint(path, "train")["step"] == 2


def test_finite_logs_run_every_step(tmp_path):
    state = run_loop("x", 3, lambda step: {"total": float(step)}, {}, None, progress=False)
    assert state.step == 3 and [row["total"] for row in state.history] == [0.0, 1.0, 2.0]


def test_scheduled_lr_by_hand():
    assert [scheduled_lr(0.1, k, 4, "constant") for k in range(4)] == [0.1] * 4
    # (1 + cos(pi k / 4)) / 2 for k = 0..3: 1, 0.854, 0.5, 0.146
    expected = [0.1, 0.1 * (2 + 2**0.5) / 4, 0.05, 0.1 * (2 - 2**0.5) / 4]
    assert [scheduled_lr(0.1, k, 4, "cosine") for k in range(4)] == pytest.approx(expected)


def test_set_lr_sets_every_group_and_skips_none():
    a, b = torch.nn.Linear(1, 1), torch.nn.Linear(1, 1)
    opt = torch.optim.Adam([{"params": a.parameters()}, {"params": b.parameters(), "lr": 0.5}], lr=1.0)
    set_lr((opt, None), 0.25)
    assert [g["lr"] for g in opt.param_groups] == [0.25, 0.25]


@pytest.mark.parametrize("scaler", [None, torch.amp.GradScaler("cpu", enabled=False)], ids=["plain", "inactive-scaler"])
def test_non_finite_gradients_of_a_finite_loss_stop_before_the_update(scaler):
    weight = torch.nn.Parameter(torch.zeros(3))
    optimiser = torch.optim.SGD([weight], lr=0.1)
    loss = torch.sqrt(weight).sum()  # 0, with an infinite gradient at 0
    with pytest.raises(TrainingDivergedError, match="gradients not finite"):
        optimiser_step(optimiser, loss, [weight], grad_clip=1.0, scaler=scaler)
    assert torch.equal(weight.detach(), torch.zeros(3))  # the clip's NaN never reached the weights


@pytest.mark.skipif(not hasattr(signal, "SIGTERM"), reason="needs POSIX signals")
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_stop_signal_ends_the_loop_after_the_step_with_its_checkpoint(tmp_path, signum):
    # Ctrl-C or a batch system's SIGTERM arriving mid-step: the step finishes, the checkpoint (not due
    # before step 100) holds it, and the loop resumes from there.
    model = torch.nn.Linear(1, 1)
    finished = []

    def step_fn(step: int) -> dict[str, float]:
        if step == 2:
            os.kill(os.getpid(), signum)
        with torch.no_grad():
            model.bias += 1.0
        finished.append(step)
        return {"total": float(step)}

    path = tmp_path / "loop.pt"
    handling = signal.getsignal(signum)
    with pytest.raises(StopSignal) as stopped:
        run_loop("demo", 6, step_fn, {"w": model}, path, checkpoint_every=100, progress=False)
    assert stopped.value.signum == signum and finished == [0, 1, 2]
    saved = read_checkpoint(path, "demo")
    assert saved["step"] == 3 and saved["parts"]["w"]["bias"].item() == pytest.approx(model.bias.item())
    assert signal.getsignal(signum) == handling  # the loop's handler is gone again
    state = run_loop("demo", 6, step_fn, {"w": model}, path, checkpoint_every=100, progress=False)
    assert state.step == 6 and finished == [0, 1, 2, 3, 4, 5]


@pytest.mark.skipif(not hasattr(signal, "SIGTERM"), reason="needs POSIX signals")
def test_a_second_signal_stops_at_once(tmp_path):
    def step_fn(step: int) -> dict[str, float]:
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGTERM)
        raise AssertionError("the second signal ends the step")

    with pytest.raises(StopSignal):
        run_loop("demo", 3, step_fn, {"w": torch.nn.Linear(1, 1)}, tmp_path / "loop.pt", progress=False)
    assert not (tmp_path / "loop.pt").exists()  # nothing half-done was saved


@pytest.mark.skipif(not hasattr(signal, "SIGTERM"), reason="needs POSIX signals")
def test_a_stop_lost_before_the_loop_stops_it_after_its_first_step(tmp_path, lose_a_stop):
    # A SIGTERM whose exception a finalizer dropped between two phases of a training (innreg.errors) is not
    # forgotten by the next loop: it stops after one step and saves it.
    finished = []

    def step_fn(step: int) -> dict[str, float]:
        finished.append(step)
        return {"total": float(step)}

    with stop_signals_interrupt():
        lose_a_stop()
        with pytest.raises(StopSignal) as stopped:
            run_loop("demo", 6, step_fn, {"w": torch.nn.Linear(1, 1)}, tmp_path / "loop.pt", progress=False)
    assert stopped.value.signum == signal.SIGTERM and finished == [0]
    assert read_checkpoint(tmp_path / "loop.pt", "demo")["step"] == 1
