"""The command line is light to start and its options keep the library's defaults."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import innreg
from innreg.cli import COMMANDS, build_parser

SRC = str(Path(innreg.__file__).parent.parent)
ENV = {**os.environ, "PYTHONPATH": SRC}

HELP_WITHOUT_TORCH = """
import sys
from innreg.cli import build_parser
try:
    build_parser().parse_args({argv!r})
except SystemExit as end:
    assert end.code == 0, end.code
heavy = sorted(m for m in ("torch", "matplotlib", "nibabel", "scipy") if m in sys.modules)
assert not heavy, heavy
"""


@pytest.mark.parametrize("argv", [["--help"], ["--version"], *[[name, "--help"] for name in COMMANDS]], ids=" ".join)
def test_help_does_not_import_torch_and_is_fast(argv):
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", HELP_WITHOUT_TORCH.format(argv=argv)], check=True, env=ENV, capture_output=True)
    seconds = time.perf_counter() - start
    # Measured 0.2-0.35 s on a loaded 2-core machine (importing torch alone takes ~2 s there).
    assert seconds < 5.0, f"{' '.join(argv)}: {seconds:.2f} s"


@pytest.mark.parametrize("module", ["innreg", "innreg.cli"])
def test_both_module_entry_points_run_the_cli(module):
    out = subprocess.run([sys.executable, "-m", module, "--help"], check=True, env=ENV, capture_output=True, text=True)
    assert out.stdout.startswith("usage: innreg") and all(name in out.stdout for name in COMMANDS)


def test_version_is_the_installed_packages():
    import importlib.metadata

    command = [sys.executable, "-m", "innreg", "--version"]
    out = subprocess.run(command, check=True, env=ENV, capture_output=True, text=True)
    assert out.stdout == f"innreg {innreg.__version__}\n"
    assert importlib.metadata.version("innreg") == innreg.__version__  # pyproject reads it from innreg.__version__


def _defaults(command: str) -> dict:
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    parser = sub.choices[command]
    return {a.dest: a.default for a in parser._actions if a.dest != "help"}


def test_phantom_defaults_are_the_generators():
    from innreg.data import generate_phantom_dataset

    signature = inspect.signature(generate_phantom_dataset).parameters
    for dest, default in _defaults("phantom").items():
        if dest in signature and dest not in ("out_dir", "size", "spacing", "workers"):
            assert default == signature[dest].default, dest


def test_phantom_misalignment_defaults_are_the_generators():
    from innreg.data.deformations import DeformationParams
    from innreg.data.phantom import MotionParams

    cli, library, motion = _defaults("phantom"), DeformationParams(), MotionParams()
    assert (cli["rotation"], cli["shear"], cli["translation"], cli["elastic"]) == (
        library.rotation_deg, library.shear, library.translation, library.elastic_magnitude_vox
    )
    assert (1 - cli["scale"], 1 + cli["scale"]) == pytest.approx(library.scale)
    assert (cli["head_rotation"], cli["head_shift"]) == (motion.rotation_deg, motion.translation_mm)


def test_demo_and_train_options_leave_the_library_defaults_alone():
    from innreg.demo import run_demo

    signature = inspect.signature(run_demo).parameters
    demo = _defaults("demo")
    assert (demo["steps"], demo["device"]) == (signature["steps"].default, signature["device"].default)
    # Unset train options must not override the config: they all default to None (or False flags).
    train = _defaults("train")
    assert all(train[k] is None for k in ("steps", "dim", "batch_size", "seed", "checkpoint_every", "device", "precision", "data_workers"))


def test_threads_default_to_every_core_but_in_the_benchmark_where_each_method_gets_one():
    from innreg.benchmark import BenchmarkSettings

    for command in ("train", "register", "evaluate", "demo"):
        assert _defaults(command)["threads"] is None, command
    assert _defaults("benchmark")["threads"] == BenchmarkSettings.threads == 1
    with pytest.raises(SystemExit):
        build_parser().parse_args(["benchmark", "--train", "a", "--test", "b", "--out", "c", "--threads", "0"])


def test_public_api_is_exported_lazily_with_its_types():
    code = "import sys, innreg; assert 'torch' not in sys.modules; innreg.RegistrationModel; assert 'torch' in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, env=ENV)
    from innreg.inference import RegistrationModel, RegistrationResult

    assert innreg.RegistrationModel is RegistrationModel and innreg.RegistrationResult is RegistrationResult
    assert set(innreg.__all__) <= set(dir(innreg))


@pytest.mark.parametrize("text, value", [("0", 0), ("3", 3), ("-1", None), ("x", None)])
def test_count_options_take_integers_at_or_above_their_floor(text, value):
    import argparse

    from innreg.cli_types import non_negative_int, positive_int

    if value is None:
        with pytest.raises(argparse.ArgumentTypeError, match="non-negative integer"):
            non_negative_int(text)
    else:
        assert non_negative_int(text) == value
    if value is None or value < 1:
        with pytest.raises(argparse.ArgumentTypeError, match="positive integer"):
            positive_int(text)
    else:
        assert positive_int(text) == value
