"""A benchmark reuses a method's kept outputs only for the same inputs, and tells each failure once."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest

from innreg.benchmark import BenchmarkSettings, run_benchmark
from innreg.benchmark.inputs import INPUTS_FILE, method_inputs, renew, stale_reason
from innreg.cli import main
from innreg.data import generate_phantom_dataset, read_manifest


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    """4 phantom pairs of 32x32 (2 train, 2 test)."""
    root = tmp_path_factory.mktemp("bench_inputs")
    return generate_phantom_dataset(root / "data", n=4, dim=2, size=(32, 32), seed=0, test_fraction=0.5, progress=False)


def _n_pairs(out: Path) -> list[str]:
    with (out / "results.csv").open(newline="") as fh:
        return [row["n_pairs"] for row in csv.DictReader(fh)]


def test_a_kept_result_is_reused_only_for_the_same_inputs(data, tmp_path, capsys):
    def bench(test: Path, steps: int = 2) -> str:
        run_benchmark(BenchmarkSettings(
            train=data["train"], test=test, out=tmp_path / "out", methods=("identity",), steps=steps,
            device="cpu", progress=False, isolate=False,
        ))  # fmt: skip
        return capsys.readouterr().err

    assert bench(data["test"]) == "" and _n_pairs(tmp_path / "out") == ["2"]
    result = tmp_path / "out" / "identity" / "result.json"
    stamp = result.stat().st_mtime_ns
    assert bench(data["test"], steps=5) == ""  # identity does not train: the step budget is not its input
    assert result.stat().st_mtime_ns == stamp

    one_pair = tmp_path / "one_pair.csv"
    lines = data["test"].read_text().splitlines()
    one_pair.write_text("\n".join(lines[:2]).replace("images/", f"{data['test'].parent}/images/") + "\n")
    err = bench(one_pair)
    assert err == "benchmark: identity: inputs changed since the kept result (test); running again\n"
    assert _n_pairs(tmp_path / "out") == ["1"]
    assert f"test: `{one_pair}` (1 pairs)" in (tmp_path / "out" / "results.md").read_text()  # header and numbers agree

    listed = read_manifest(one_pair)[0].fixed_seg  # the manifest's text is the same, a file it lists is not
    os.utime(listed, ns=(listed.stat().st_atime_ns, listed.stat().st_mtime_ns + 10**9))
    assert "inputs changed since the kept result (test)" in bench(one_pair)

    (tmp_path / "out" / "identity" / INPUTS_FILE).unlink()  # a result from before inputs were recorded
    assert bench(one_pair) == "benchmark: identity: the kept result does not record its inputs; running again\n"


def test_renew_keeps_the_training_run_only_for_the_inputs_it_was_trained_from(data, tmp_path):
    method_dir = tmp_path / "innreg"

    def inputs(test: Path = data["test"], steps: int = 2) -> dict:
        return method_inputs("innreg", data["train"], test, steps, 2, None)

    def fill() -> None:
        for folder in ("fit", "eval"):
            (method_dir / folder).mkdir(parents=True, exist_ok=True)
            (method_dir / folder / "x").write_text("")
        (method_dir / "result.json").write_text("{}")

    fill()
    assert stale_reason(method_dir, inputs()) == "the kept result does not record its inputs; running again"
    renew(method_dir, inputs())
    assert sorted(p.name for p in method_dir.iterdir()) == [INPUTS_FILE]  # nothing recorded: nothing kept
    assert json.loads((method_dir / INPUTS_FILE).read_text()) == inputs()

    fill()
    assert stale_reason(method_dir, inputs()) is None
    other_test = tmp_path / "test.csv"
    other_test.write_text(data["test"].read_text().replace("images/", f"{data['test'].parent}/images/"))
    assert "(test)" in stale_reason(method_dir, inputs(other_test))
    renew(method_dir, inputs(other_test))  # the training run does not depend on the test pairs
    assert (method_dir / "fit" / "x").exists() and not (method_dir / "eval").exists()
    assert not (method_dir / "result.json").exists()

    (method_dir / "fit" / "x").write_text("")
    assert stale_reason(method_dir, inputs(other_test, steps=3)) == (
        "inputs changed since the kept training run (steps); running again"
    )
    renew(method_dir, inputs(other_test, steps=3))
    assert not (method_dir / "fit").exists()


def _bench_cli(data, out: Path, *options: str) -> list[str]:
    return [
        "benchmark", "--train", str(data["train"]), "--test", str(data["test"]), "--out", str(out),
        "--steps", "2", "--device", "cpu", "--quiet", *options,
    ]  # fmt: skip


def test_a_method_failing_on_the_input_is_told_once(data, tmp_path, capfd):
    # The method's own process prints nothing; the benchmark's says it once.
    assert main(_bench_cli(data, tmp_path / "alone", "--methods", "convexadam")) == 2
    err = capfd.readouterr().err
    assert err.startswith("innreg: error: convexadam: registers 3D volumes only") and err.count("\n") == 1
    assert (tmp_path / "alone" / "convexadam" / "error.txt").is_file()  # the failed method's log

    assert main(_bench_cli(data, tmp_path / "mixed", "--methods", "convexadam,identity")) == 0
    err = capfd.readouterr().err
    assert err.startswith("benchmark: convexadam: not run: registers 3D volumes only") and err.count("\n") == 1
    assert "`convexadam` not run: convexadam: registers 3D" in (tmp_path / "mixed" / "results.md").read_text()


def test_a_dim_the_test_images_lack_is_refused_before_any_method_runs(data, tmp_path, capfd):
    assert main(_bench_cli(data, tmp_path / "out", "--methods", "identity,innreg", "--dim", "3")) == 2
    captured = capfd.readouterr()
    assert captured.err == f"innreg: error: --dim 3: the test images are 2D ({read_manifest(data['test'])[0].fixed})\n"
    assert "fitting" not in captured.out and not (tmp_path / "out").exists()
