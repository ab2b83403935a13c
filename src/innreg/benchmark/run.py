"""Fit and evaluate each method of a benchmark, each in its own process unless asked otherwise.

A method that cannot run on the user's input (:class:`InnregInputError`: a missing optional package,
a 2D-only or 3D-only method, ...) leaves its message in ``DIR/<method>/error.txt`` (the failed method's
log, quoted in ``results.md``). Its process exits with :data:`METHOD_NOT_RUN` without printing, and this
process reports each failure once: a line ``benchmark: <method>: not run: <why>`` on stderr, or, when no
method finishes, the one ``innreg: error:`` line naming every failure.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from innreg.atomic import check_output_dir, write_text
from innreg.benchmark.inputs import Inputs, method_inputs, renew, stale_reason
from innreg.benchmark.settings import ERROR_FILE, EVAL_DIR, FIT_DIR, RESULT_FILE, BenchmarkSettings, MethodResult
from innreg.benchmark.tables import write_tables
from innreg.errors import STOP_SIGNALS, InnregInputError, StopSignal, raise_if_stopped, stop_signals_interrupt

METHOD_NOT_RUN = 3
"""Exit status of a method's process whose input error is in its ``error.txt``."""


def _inputs(name: str, settings: BenchmarkSettings) -> Inputs:
    return method_inputs(name, settings.train, settings.test, settings.steps, settings.dim, settings.config)


def run_method(name: str, settings: BenchmarkSettings) -> MethodResult:
    """Fit and evaluate one method in this process and write ``out/<name>/result.json``.

    What ``out/<name>`` keeps from other inputs is removed first and today's are recorded
    (:mod:`innreg.benchmark.inputs`). A method that cannot run because of the user's setup
    (:class:`InnregInputError`, e.g. a missing optional package) leaves its message in
    ``out/<name>/error.txt`` and re-raises.
    """
    import torch

    from innreg.baselines import make_method, peak_memory
    from innreg.evaluation import evaluate
    from innreg.model import resolve_device
    from innreg.threads import set_cpu_threads

    set_cpu_threads(settings.threads)  # before the method: ITK-based peers read it on their first run
    method_dir = settings.out / name
    try:
        renew(method_dir, _inputs(name, settings))
        method = make_method(name, dim=settings.dim, config=settings.base_config())
        fit = method.fit(settings.train, method_dir / FIT_DIR, settings.steps, settings.device, settings.progress)
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
        "--dim", str(settings.dim), "--threads", str(settings.threads), "--one-method",
    ]  # fmt: skip
    if settings.config is not None:
        command += ["--config", str(settings.config)]
    if not settings.progress:
        command.append("--quiet")
    return command


# How long a method's process may take, once this one is interrupted, to finish its training step and write its
# checkpoint (innreg.loop) before it is sent SIGTERM and, as long again after that, killed.
CHILD_GRACE_SECONDS = 30.0


def _let_finish(child: subprocess.Popen) -> None:
    """After Ctrl-C (which reaches the method's process too) or SIGTERM: give the method's process time to stop
    after its step with its checkpoint; then SIGTERM (a signal sent to this process alone did not reach it),
    then SIGKILL. ``subprocess.run`` would kill it after a quarter of a second, before the checkpoint."""
    for escalate in (child.terminate, child.kill):
        try:
            child.wait(timeout=CHILD_GRACE_SECONDS)
            return
        except subprocess.TimeoutExpired:
            escalate()
    child.wait()


def _run_isolated(name: str, settings: BenchmarkSettings) -> str | None:
    """Run one method in its own process; ``None`` when it finished, else why not (also in ``error.txt``).

    Raises:
        KeyboardInterrupt: this process or the method's was interrupted (Ctrl-C, SIGTERM); the method's
            process has ended (see :func:`_let_finish`).
    """
    error = settings.out / name / ERROR_FILE
    child = subprocess.Popen(_child_command(name, settings))
    try:
        status = child.wait()
    except KeyboardInterrupt:
        _let_finish(child)
        raise
    # The method's process stopped by a signal: its own exit status for it (innreg.cli), or killed by it.
    stopped = {status: signum for signum in STOP_SIGNALS for status in (128 + signum, -signum)}
    if status in stopped:
        raise StopSignal(stopped[status])
    if status == 0:
        return None
    if status != METHOD_NOT_RUN or not error.exists():  # a crash: its own output is above
        write_text(error, f"the method's process ended with status {status}\n")
    return error.read_text().strip()


def _run_here(name: str, settings: BenchmarkSettings) -> str | None:
    """Run one method in this process; ``None`` when it finished, else why not (also in ``error.txt``)."""
    try:
        run_method(name, settings)
    except InnregInputError as err:
        return str(err)
    return None


def _without_name(name: str, message: str) -> str:
    """``message`` without a leading ``<name>: `` (methods' messages often start with their name)."""
    return message.removeprefix(f"{name}: ")


def _check_dim(dim: int, test_image: Path) -> None:
    """Refuse a ``--dim`` the test images do not have, once, before any method runs."""
    from innreg.data import load_image

    found = load_image(test_image).dim
    if found != dim:
        raise InnregInputError(f"--dim {dim}: the test images are {found}D ({test_image})")


def run_benchmark(settings: BenchmarkSettings) -> Path:
    """Fit and evaluate every method not finished yet from the same inputs, then write the tables;
    returns ``results.md``.

    Raises:
        InnregInputError: bad options, manifests, config or ``--out`` (before any method runs), or no
            method finished (the message names each method's failure).
    """
    from innreg.baselines import METHODS
    from innreg.data import read_manifest
    from innreg.evaluation import labelled_records

    unknown = [m for m in settings.methods if m not in METHODS]
    if unknown:
        raise InnregInputError(f"--methods: unknown method(s) {', '.join(unknown)}; known: {', '.join(METHODS)}")
    # Bad manifests, config, --dim or --out fail here, once, not in every method's process.
    read_manifest(settings.train)
    _check_dim(settings.dim, labelled_records(settings.test)[0].fixed)
    settings.base_config()
    check_output_dir(settings.out)
    settings.out.mkdir(parents=True, exist_ok=True)
    finished = False
    failures: dict[str, str] = {}  # method -> why it did not run
    unreported: list[str] = []
    for name in settings.methods:
        raise_if_stopped()
        method_dir, current = settings.out / name, _inputs(name, settings)
        reason = stale_reason(method_dir, current)
        if (method_dir / RESULT_FILE).exists() and reason is None:
            print(f"benchmark: {name}: finished earlier from the same inputs, kept ({method_dir / RESULT_FILE})")
            finished = True
        else:
            if reason is not None:
                print(f"benchmark: {name}: {reason}", file=sys.stderr)
            print(f"benchmark: {name}: fitting and evaluating", flush=True)
            renew(method_dir, current)  # before the process starts, so nothing stale outlives a crash
            with stop_signals_interrupt():  # a method's process is let finish, not left running
                failure = _run_isolated(name, settings) if settings.isolate else _run_here(name, settings)
            if failure is None:
                finished = True
            else:
                failures[name] = failure
                unreported.append(name)
        # Failures are told once: as they come once a method has finished, else in the final error.
        while finished and unreported:
            failed = unreported.pop(0)
            print(f"benchmark: {failed}: not run: {_without_name(failed, failures[failed])}", file=sys.stderr)
    if not finished:
        named = [f"{n}: {_without_name(n, m)}" for n, m in failures.items()]
        many = f"--out {settings.out}: no method finished; " + "; ".join(named)
        raise InnregInputError(named[0] if len(named) == 1 else many)
    return write_tables(settings)
