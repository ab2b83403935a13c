from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from innreg.benchmark import BenchmarkSettings, convergence_study, run_benchmark, steps_to_fraction
from innreg.cli import main
from innreg.data import generate_phantom_dataset, read_manifest
from innreg.errors import InnregInputError

TINY = {
    "model": {
        "inn_blocks": 2, "inn_hidden": 8, "resnet_channels": 8, "resnet_blocks": 1,
        "unet_encoder": [8, 8], "unet_decoder": [8, 8, 8], "disc_channels": 8, "disc_layers": 2,
    },
    "train": {"batch_size": 1},
}  # fmt: skip


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    """4 phantom pairs of 32x32 (2 train, 2 test) and a small-network YAML config."""
    root = tmp_path_factory.mktemp("bench")
    paths = generate_phantom_dataset(
        root / "data", n=4, dim=2, size=(32, 32), seed=0, test_fraction=0.5, progress=False
    )
    paths["config"] = root / "tiny.yaml"
    paths["config"].write_text(yaml.safe_dump(TINY))
    return paths


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def test_benchmark_in_process_writes_tables_and_resumes(data, tmp_path, monkeypatch, capsys):
    import innreg.baselines.ants

    def no_ants():
        raise InnregInputError("ants-syn: needs the antspyx package")

    monkeypatch.setattr(innreg.baselines.ants, "import_ants", no_ants)
    settings = BenchmarkSettings(
        train=data["train"], test=data["test"], out=tmp_path, methods=("identity", "innreg", "ants-syn"),
        steps=3, device="cpu", config=data["config"], progress=False, isolate=False,
    )  # fmt: skip
    md = run_benchmark(settings)
    assert capsys.readouterr().err == "benchmark: ants-syn: not run: needs the antspyx package\n"  # told once

    rows = _rows(tmp_path / "results.csv")
    assert [r["method"] for r in rows] == ["identity", "innreg"]
    identity, innreg = rows
    assert identity["steps"] == "0" and float(identity["train_minutes"]) == 0.0
    assert float(identity["neg_jacobian_percent"]) == 0.0
    assert innreg["steps"] == "3" and float(innreg["train_minutes"]) > 0
    for row in rows:
        assert int(row["n_pairs"]) == 2
        assert 0.0 <= float(row["dice_mean"]) <= 1.0 and float(row["peak_memory_mb"]) > 0
        assert {"dice_1", "dice_2", "dice_3", "hd95_1", "epe_mm"} <= set(row)
    # The identity method and evaluation's built-in identity reference agree.
    summary = json.loads((tmp_path / "innreg" / "result.json").read_text())["summary"]
    assert float(identity["dice_mean"]) == pytest.approx(summary["identity"]["dice_mean"])

    text = md.read_text()
    assert "| identity |" in text and "| innreg |" in text and "± " in text and "EPE (mm)" in text
    assert "`ants-syn` not run: ants-syn: needs the antspyx package" in text
    assert "cumulative" in text  # in-process peak memory is labelled as such
    assert (tmp_path / "dice_bars.png").stat().st_size > 0
    assert (tmp_path / "innreg" / "eval" / "per_pair.csv").is_file()
    assert "## Paired against `innreg`" in text and "| identity | " in text.split("## Paired against")[1]

    # A rerun keeps finished methods and does not train again.
    stamp = (tmp_path / "innreg" / "result.json").stat().st_mtime_ns
    run_benchmark(settings)
    assert (tmp_path / "innreg" / "result.json").stat().st_mtime_ns == stamp


def test_benchmark_cli_runs_each_method_in_its_own_process_with_its_threads(data, tmp_path, capsys, monkeypatch):
    import torch

    from innreg.threads import ITK_THREADS_VARIABLE

    monkeypatch.setenv(ITK_THREADS_VARIABLE, "1")  # restored after the test: --threads sets it in this process too
    try:
        status = main([
            "benchmark", "--train", str(data["train"]), "--test", str(data["test"]), "--methods", "identity",
            "--out", str(tmp_path), "--steps", "2", "--device", "cpu", "--quiet", "--threads", "2",
        ])  # fmt: skip
    finally:
        torch.set_num_threads(1)
    assert status == 0
    assert "results:" in capsys.readouterr().out
    result = json.loads((tmp_path / "identity" / "result.json").read_text())
    assert result["isolated"] is True and result["peak_memory_mb"] > 0
    assert result["cpu_threads"] == 2  # the method's own process was given them
    text = (tmp_path / "results.md").read_text()
    assert "the method's own process" in text and "; 2 CPU threads." in text


def test_benchmark_rejects_unknown_methods_and_missing_manifests(data, tmp_path, capsys):
    args = ["benchmark", "--train", str(data["train"]), "--test", str(data["test"]), "--out", str(tmp_path)]
    assert main([*args, "--methods", "identity,nosuch"]) == 2
    assert "unknown method(s) nosuch" in capsys.readouterr().err
    missing = ["--train", str(tmp_path / "none.csv"), "--test", str(data["test"]), "--out", str(tmp_path)]
    assert main(["benchmark", *missing]) == 2
    assert "none.csv" in capsys.readouterr().err


def test_benchmark_checks_manifests_and_out_before_any_method_runs(data, tmp_path, capsys):
    unlabelled = tmp_path / "unlabelled.csv"
    unlabelled.write_text("moving,fixed\n" + "".join(f"{r.moving},{r.fixed}\n" for r in read_manifest(data["test"])))
    out = tmp_path / "out"
    args = ["benchmark", "--train", str(data["train"]), "--methods", "identity", "--quiet"]
    assert main([*args, "--test", str(unlabelled), "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert len(captured.err.strip().splitlines()) == 1 and "moving_seg and fixed_seg" in captured.err
    assert "fitting" not in captured.out and not out.exists()
    out.write_text("")
    assert main([*args, "--test", str(data["test"]), "--out", str(out)]) == 2
    assert "not a folder" in capsys.readouterr().err


def test_steps_to_fraction():
    steps, dice = [10, 20, 30, 40], [0.50, 0.70, 0.78, 0.80]
    assert steps_to_fraction(steps, dice) == 30  # 0.95 * 0.80 = 0.76
    assert steps_to_fraction(steps, dice, start=0.40) == 30  # 0.40 + 0.95 * 0.40 = 0.78
    assert steps_to_fraction(steps, dice, start=0.60) == 40  # 0.60 + 0.95 * 0.20 = 0.79
    assert steps_to_fraction([40, 10], [0.8, 0.9]) == 10  # unsorted input; already above target
    assert steps_to_fraction([], []) is None


def test_convergence_study_records_dice_every_k_steps(data, tmp_path):
    md = convergence_study(
        data["train"], data["test"], tmp_path, steps=2, eval_every=1, methods=("innreg", "innreg-no-barrier"),
        n_pairs=1, device="cpu", config=data["config"], progress=False,
    )  # fmt: skip
    rows = _rows(tmp_path / "convergence.csv")
    assert [(r["method"], r["step"]) for r in rows] == [
        ("innreg", "1"), ("innreg", "2"), ("innreg-no-barrier", "1"), ("innreg-no-barrier", "2"),
    ]  # fmt: skip
    assert all(0.0 <= float(r["dice_mean"]) <= 1.0 for r in rows)
    assert "steps to 95% of final Dice" in md.read_text()
    assert (tmp_path / "convergence.png").stat().st_size > 0
    # The training run is the benchmark's fit folder, so a benchmark in the same folder reuses it.
    assert (tmp_path / "innreg" / "fit" / "model.pt").is_file()
    assert json.loads((tmp_path / "innreg" / "inputs.json").read_text())["steps"] == 2  # what it was trained from


def test_learned_methods_start_from_defaults_sized_like_innreg_train(tmp_path):
    from innreg.benchmark.settings import BenchmarkSettings
    from innreg.config import Config

    def base(**kwargs):
        return BenchmarkSettings(tmp_path / "a.csv", tmp_path / "b.csv", tmp_path, device="cpu", **kwargs).base_config()

    assert base(dim=3).model.input_factor == Config.sized_for(3, "cpu").model.input_factor == 2
    assert base(dim=2).model.input_factor == 1
    override = tmp_path / "base.yaml"
    override.write_text("model:\n  input_factor: 1\n")
    assert base(dim=3, config=override).model.input_factor == 1  # the file wins over the sizing


class _InterruptedOnce(subprocess.Popen):
    """A method's process whose first wait is cut by Ctrl-C in this process (the child gets no signal here)."""

    interrupted = False

    def wait(self, timeout=None):
        if timeout is None and not _InterruptedOnce.interrupted:
            _InterruptedOnce.interrupted = True
            raise KeyboardInterrupt
        return super().wait(timeout)


def _child(monkeypatch, tmp_path, script: str) -> SimpleNamespace:
    from innreg.benchmark import run as benchmark_run

    monkeypatch.setattr(benchmark_run, "_child_command", lambda name, settings: [sys.executable, "-c", script])
    monkeypatch.setattr(benchmark_run.subprocess, "Popen", _InterruptedOnce)
    monkeypatch.setattr(_InterruptedOnce, "interrupted", False)
    return SimpleNamespace(out=tmp_path)


@pytest.mark.parametrize("one_method", [False, True])
def test_an_interrupted_benchmark_says_so_once(data, tmp_path, monkeypatch, capsys, one_method):
    # Ctrl-C reaches the benchmark's process and its method's process alike: only the benchmark's says so.
    from innreg.benchmark import args as benchmark_args

    def interrupted(*_, **__):
        raise KeyboardInterrupt

    monkeypatch.setattr(benchmark_args, "run_method" if one_method else "run_benchmark", interrupted)
    argv = ["benchmark", "--train", str(data["train"]), "--test", str(data["test"]), "--methods", "identity",
            "--out", str(tmp_path), "--quiet"] + (["--one-method"] if one_method else [])  # fmt: skip
    assert main(argv) == 130
    err = capsys.readouterr().err
    assert err == ("" if one_method else "innreg: interrupted; finished methods and training checkpoints are kept "
                   "(the same command continues)\n")


def test_an_interrupted_benchmark_lets_the_methods_process_finish_its_step(monkeypatch, tmp_path):
    # The method's process got the same Ctrl-C: it ends its training step and writes its checkpoint (here a
    # second later) before this process goes on; subprocess.run would have killed it after 0.25 s.
    from innreg.benchmark.run import _run_isolated

    flag = tmp_path / "checkpoint"
    script = f"import time; time.sleep(1); open({str(flag)!r}, 'w').write('x'); exit(130)"
    settings = _child(monkeypatch, tmp_path, script)
    with pytest.raises(KeyboardInterrupt):
        _run_isolated("innreg", settings)
    assert flag.read_text() == "x"


def test_a_methods_process_that_does_not_stop_is_sent_sigterm_then_killed(monkeypatch, tmp_path):
    from innreg.benchmark import run as benchmark_run

    monkeypatch.setattr(benchmark_run, "CHILD_GRACE_SECONDS", 0.5)
    settings = _child(monkeypatch, tmp_path, "import time; time.sleep(60)")  # got no signal of its own
    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        benchmark_run._run_isolated("innreg", settings)
    assert time.monotonic() - start < 10


@pytest.mark.parametrize("status, signum", [(130, signal.SIGINT), (143, signal.SIGTERM)])
def test_a_method_stopped_by_a_signal_stops_the_benchmark(monkeypatch, tmp_path, status, signum):
    from innreg.benchmark import run as benchmark_run
    from innreg.errors import StopSignal

    command = [sys.executable, "-c", f"exit({status})"]
    monkeypatch.setattr(benchmark_run, "_child_command", lambda name, settings: command)
    with pytest.raises(StopSignal) as stopped:
        benchmark_run._run_isolated("innreg", SimpleNamespace(out=tmp_path))
    assert stopped.value.signum == signum
