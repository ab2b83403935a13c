"""The training loop: a non-finite loss stops it before anything from the diverged step is saved."""

from __future__ import annotations

import pytest
import torch

from innreg.errors import TrainingDivergedError
from innreg.loop import read_checkpoint, run_loop


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


def test_finite_logs_run_every_step(tmp_path):
    state = run_loop("x", 3, lambda step: {"total": float(step)}, {}, None, progress=False)
    assert state.step == 3 and [row["total"] for row in state.history] == [0.0, 1.0, 2.0]
