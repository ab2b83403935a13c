"""Fit and evaluate each method of a benchmark, each in its own process unless asked otherwise."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

from innreg.atomic import check_output_dir, write_text
from innreg.benchmark.settings import ERROR_FILE, EVAL_DIR, RESULT_FILE, BenchmarkSettings, MethodResult
from innreg.benchmark.tables import write_tables
from innreg.errors import InnregInputError


def run_method(name: str, settings: BenchmarkSettings) -> MethodResult:
    """Fit and evaluate one method in this process and write ``out/<name>/result.json``.

    A method that cannot run because of the user's setup (:class:`InnregInputError`, e.g. a missing
    optional package) leaves its message in ``out/<name>/error.txt`` and re-raises.
    """
    import torch

    from innreg.baselines import make_method, peak_memory
    from innreg.evaluation import evaluate
    from innreg.model import resolve_device

    method_dir = settings.out / name
    method_dir.mkdir(parents=True, exist_ok=True)
    (method_dir / ERROR_FILE).unlink(missing_ok=True)
    try:
        method = make_method(name, dim=settings.dim, config=settings.base_config())
        fit = method.fit(settings.train, method_dir / "fit", settings.steps, settings.device, settings.progress)
        summary = evaluate(
            method, settings.test, method_dir / EVAL_DIR, overview_pairs=1, progress=settings.progress, method=name
        )
    except InnregInputError as err:
        write_text(method_dir / ERROR_FILE, f"{err}\n")
        raise
    rss_mb, gpu_mb = peak_memory()
    result = MethodResult(
        method=name,
        trains=method.trains,
        steps=settings.steps if method.trains else 0,
        train_seconds=fit.train_seconds,
        peak_memory_mb=rss_mb,
        peak_gpu_memory_mb=gpu_mb,
        isolated=settings.isolate,
        device=str(resolve_device(settings.device)) if method.trains else "cpu",
        cpu_threads=torch.get_num_threads(),
        summary=summary,
    )
    write_text(method_dir / RESULT_FILE, json.dumps(result.to_dict(), indent=2))
    return result


def _child_command(name: str, settings: BenchmarkSettings) -> list[str]:
    command = [
        sys.executable, "-m", "innreg.cli", "benchmark",
        "--train", str(settings.train), "--test", str(settings.test), "--out", str(settings.out),
        "--methods", name, "--steps", str(settings.steps), "--device", settings.device,
        "--dim", str(settings.dim), "--one-method",
    ]  # fmt: skip
    if settings.config is not None:
        command += ["--config", str(settings.config)]
    if not settings.progress:
        command.append("--quiet")
    return command


def run_benchmark(settings: BenchmarkSettings) -> Path:
    """Fit and evaluate every method not finished yet, then write the tables; returns ``results.md``."""
    from innreg.baselines import METHODS
    from innreg.data import read_manifest
    from innreg.evaluation import labelled_records

    unknown = [m for m in settings.methods if m not in METHODS]
    if unknown:
        raise InnregInputError(f"--methods: unknown method(s) {', '.join(unknown)}; known: {', '.join(METHODS)}")
    # Bad manifests, config or --out fail here, once, not in every method's process.
    read_manifest(settings.train)
    labelled_records(settings.test)
    settings.base_config()
    check_output_dir(settings.out)
    settings.out.mkdir(parents=True, exist_ok=True)
    for name in settings.methods:
        if (settings.out / name / RESULT_FILE).exists():
            print(f"benchmark: {name}: finished earlier, kept ({settings.out / name / RESULT_FILE})")
            continue
        print(f"benchmark: {name}: fitting and evaluating", flush=True)
        if settings.isolate:
            status = subprocess.run(_child_command(name, settings)).returncode
            if status in (130, -signal.SIGINT):
                raise KeyboardInterrupt
            if status != 0 and not (settings.out / name / ERROR_FILE).exists():
                write_text(settings.out / name / ERROR_FILE, f"the method's process ended with status {status}\n")
        else:
            try:
                run_method(name, settings)
            except InnregInputError as err:
                print(f"benchmark: {name}: not run: {err}", file=sys.stderr)
    return write_tables(settings)
