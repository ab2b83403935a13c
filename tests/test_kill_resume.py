"""``innreg train`` killed with SIGKILL at random points, or stopped by SIGTERM, and resumed ends with the weights
of an uninterrupted run (same data order, one thread, so the same floating-point sums)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from innreg.cli import main

STEPS = 12


def _command(pairs: Path, out: Path, config: Path, resume: bool) -> list[str]:
    command = [
        sys.executable, "-m", "innreg.cli", "train", "--pairs", str(pairs), "--out", str(out), "--config", str(config),
        "--steps", str(STEPS), "--checkpoint-every", "1", "--quiet",
    ]  # fmt: skip
    return command + (["--resume"] if resume else [])


def _checkpoint_step(path: Path) -> int:
    try:
        return int(torch.load(path, weights_only=False)["step"])
    except (OSError, EOFError, RuntimeError, KeyError):
        return 0


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL (POSIX)")
def test_train_killed_at_random_points_resumes_to_the_same_weights(phantom, tmp_path, tiny_dict, capsys):
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny_dict | {"train": {**tiny_dict["train"], "augment": True}}))
    env = os.environ | {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    rng = random.Random(15)

    run = tmp_path / "killed"
    kills = 0
    for attempt in range(3):
        proc = subprocess.Popen(_command(phantom["train"], run, config, resume=attempt > 0), env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        # Wait for a checkpoint beyond the last one, then kill after a random delay (mid-step or mid-write).
        start_step = _checkpoint_step(run / "checkpoint.pt")
        deadline = time.monotonic() + 60
        while proc.poll() is None and _checkpoint_step(run / "checkpoint.pt") <= start_step and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.3))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
        if (run / "model.pt").exists():
            break
    assert kills >= 1, "the run finished before any kill; make it longer"
    _resume_to_the_uninterrupted_weights(phantom["train"], run, config, tmp_path / "uninterrupted", capsys)


def _resume_to_the_uninterrupted_weights(pairs: Path, run: Path, config: Path, reference: Path, capsys) -> None:
    """Resume ``run`` to its end and check its weights against a run of the same config never stopped."""
    assert main(_command(pairs, run, config, resume=True)[3:]) == 0
    assert main(_command(pairs, reference, config, resume=False)[3:]) == 0
    capsys.readouterr()
    resumed = torch.load(run / "model.pt", weights_only=False)
    uninterrupted = torch.load(reference / "model.pt", weights_only=False)
    assert resumed["info"]["steps"] == uninterrupted["info"]["steps"] == STEPS
    for name, value in uninterrupted["state_dict"].items():
        torch.testing.assert_close(resumed["state_dict"][name], value, rtol=1e-5, atol=1e-6, msg=name)


def _sigterm_after_step_two(pairs: Path, run: Path, config: Path, whole_group: bool) -> tuple[subprocess.Popen, str]:
    """Start ``innreg train`` (no checkpoint due before its end), send SIGTERM once its progress bar shows step 2
    (to the training process, or to every process of the run as a batch system does), and return the
    finished process and its stderr."""
    command = _command(pairs, run, config, resume=False)
    command[command.index("--checkpoint-every") + 1] = "1000"
    command.remove("--quiet")  # the progress bar shows when the loop runs
    env = os.environ | {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=whole_group)  # fmt: skip
    seen = ""
    while "2/" + str(STEPS) not in seen and proc.poll() is None:
        seen += proc.stderr.read(1)
    if whole_group:
        os.killpg(proc.pid, signal.SIGTERM)
    else:
        proc.send_signal(signal.SIGTERM)
    err = seen + proc.stderr.read()
    proc.wait(timeout=60)
    return proc, err


@pytest.mark.skipif(not hasattr(signal, "SIGTERM"), reason="needs SIGTERM (POSIX)")
def test_train_stopped_by_sigterm_saves_its_step_and_resumes_to_the_same_weights(phantom, tmp_path, tiny_dict, capsys):
    # A batch system's time limit: SIGTERM, then SIGKILL some seconds later. The run finishes its step, writes
    # the checkpoint (none is due before the end here), says so and exits with 143; --resume then ends
    # with the weights of an uninterrupted run.
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny_dict | {"train": {**tiny_dict["train"], "augment": True}}))
    run = tmp_path / "stopped"
    proc, err = _sigterm_after_step_two(phantom["train"], run, config, whole_group=False)
    assert proc.returncode == 143, err
    assert "innreg: stopped by SIGTERM; progress so far is saved (--resume continues the run)" in err
    assert 2 <= _checkpoint_step(run / "checkpoint.pt") < STEPS and not (run / "model.pt").exists()
    _resume_to_the_uninterrupted_weights(phantom["train"], run, config, tmp_path / "uninterrupted", capsys)


@pytest.mark.skipif(not hasattr(signal, "SIGTERM"), reason="needs SIGTERM (POSIX)")
def test_sigterm_to_every_process_of_a_run_with_data_workers_stops_it_after_the_step(
    phantom, tmp_path, tiny_dict, group_ends
):
    # A batch system signals every process of the job, the data workers too: they leave the stopping to the
    # training process, which finishes its step, writes the checkpoint and exits with 143.
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny_dict | {"train": {**tiny_dict["train"], "data_workers": 2}}))
    run = tmp_path / "stopped"
    proc, err = _sigterm_after_step_two(phantom["train"], run, config, whole_group=True)
    assert proc.returncode == 143, err
    assert "stopped by SIGTERM" in err and "Traceback" not in err
    assert 2 <= _checkpoint_step(run / "checkpoint.pt") < STEPS
    assert group_ends(proc.pid), "data workers outlived the stopped run"
