"""Options the command line refuses before doing any work, and what it says when interrupted."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest
import yaml

from innreg import cli
from innreg.cli import main
from innreg.errors import StopSignal


def _error(capsys) -> str:
    return capsys.readouterr().err.strip()


def test_train_refuses_a_negative_seed(phantom, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--pairs", str(phantom["train"]), "--out", str(tmp_path / "run"), "--seed", "-1"])
    assert exit_info.value.code == 2 and "argument --seed: must be a non-negative integer, got -1" in _error(capsys)


def test_train_without_resume_keeps_an_existing_run(phantom, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint.pt").write_bytes(b"an earlier run")
    assert main(["train", "--pairs", str(phantom["train"]), "--out", str(run), "--steps", "1", "--quiet"]) == 2
    assert _error(capsys) == (
        f"innreg: error: {run}: holds a training run (checkpoint.pt); continue it with --resume or choose another --out"
    )
    assert (run / "checkpoint.pt").read_bytes() == b"an earlier run"


def test_a_device_from_the_config_file_is_named_as_its_key(phantom, tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"train": {"device": "tpu"}}))
    args = ["train", "--pairs", str(phantom["train"]), "--out", str(tmp_path / "run"), "--config", str(config)]
    assert main(args) == 2
    assert _error(capsys) == f"innreg: error: {config}: train.device tpu: expected auto, cpu or cuda[:k]"
    assert main([*args, "--device", "tpu"]) == 2  # the option, where given, is what is named
    assert _error(capsys) == "innreg: error: --device tpu: expected auto, cpu or cuda[:k]"


def test_demo_refuses_a_device_before_generating_data(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path / "demo"), "--device", "tpu"]) == 2
    assert "--device tpu" in _error(capsys)
    assert not (tmp_path / "demo").exists()


@pytest.mark.parametrize(
    ("command", "said"),
    [("train", "innreg: interrupted; progress so far is saved (--resume continues the run)"), ("evaluate", "innreg: interrupted")],
)
def test_an_interrupt_says_what_the_command_keeps(command, said, monkeypatch, capsys):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_command", lambda name: SimpleNamespace(run=interrupted))
    assert cli._run(argparse.Namespace(command=command)) == 130
    assert _error(capsys) == said


def test_a_stop_is_said_once_under_torchrun(monkeypatch, capsys):
    # Every rank of a torchrun launch stops after the same step; only rank 0 prints the line.
    def stopped(args):
        raise StopSignal(signal.SIGTERM)

    monkeypatch.setattr(cli, "_command", lambda name: SimpleNamespace(run=stopped))
    said = {}
    for rank in ("0", "1"):
        monkeypatch.setenv("RANK", rank)
        assert cli._run(argparse.Namespace(command="train")) == 128 + signal.SIGTERM
        said[rank] = capsys.readouterr().err
    assert said == {"0": "innreg: stopped by SIGTERM; progress so far is saved (--resume continues the run)\n", "1": ""}


@pytest.mark.skipif(not hasattr(signal, "SIGTERM"), reason="needs SIGTERM (POSIX)")
@pytest.mark.parametrize("workers, whole_group", [(1, False), (2, True)], ids=["one-process", "workers-and-group"])
def test_sigterm_outside_a_training_loop_cleans_up_and_says_so(tmp_path, workers, whole_group, group_ends):
    # SIGTERM's default ends a process on the spot, leaving its staging folder; the command line turns it into
    # the stop that Ctrl-C makes: the staged outputs are removed, one line, the shell's status for the signal.
    # A batch system (SLURM) signals the whole process group, the pool's workers too: the same outcome.
    out = tmp_path / "data"
    command = [sys.executable, "-m", "innreg", "phantom", "--out", str(out), "--n", "400", "--size", "48x48",
               "--workers", str(workers)]  # fmt: skip
    proc = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=os.environ | {"OMP_NUM_THREADS": "1"},
                            start_new_session=whole_group)  # fmt: skip
    deadline = time.monotonic() + 120
    while not any(tmp_path.glob(".data.*/images/*")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)  # until the first pair is written into the staging folder
    if whole_group:
        os.killpg(proc.pid, signal.SIGTERM)
    else:
        proc.send_signal(signal.SIGTERM)
    err = proc.communicate(timeout=60)[1]
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert err.strip().splitlines()[-1] == "innreg: stopped by SIGTERM" and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []
    if whole_group:
        assert group_ends(proc.pid), "pool workers outlived the stopped command"
