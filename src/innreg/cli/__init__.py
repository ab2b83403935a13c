"""The ``innreg`` command line: phantom, train, register, apply, evaluate, compare, info, demo, benchmark.

One module per command (``innreg.cli.<command>``), each with ``HELP``, ``add_arguments(parser)`` and
``run(args)``; a command imports torch and the rest of innreg only inside ``run``, so building the
parser (``innreg --help``, ``innreg <command> --help``) stays light. Bad input ends with one line
``innreg: error: <file or option>: <problem>`` and exit status 2, never a traceback; a training run
whose loss goes NaN or infinite ends with one line and status 1, its last good checkpoint kept; Ctrl-C
or SIGTERM ends with one line and status 130 or 143, a training loop's after its step and checkpoint, any other
work at once with its staged outputs removed.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import warnings
from importlib import import_module
from typing import Sequence

from innreg import __version__
from innreg.cli.options import is_main_rank
from innreg.errors import GeometryWarning, InnregInputError, TrainingDivergedError, stop_signals_interrupt
from innreg.memory import keep_freed_memory

COMMANDS = ("phantom", "train", "register", "apply", "evaluate", "compare", "info", "demo", "benchmark")
"""Command names, in ``--help`` order; ``innreg.cli.<name>`` implements each."""


def _command(name: str):
    return import_module(f"innreg.cli.{name}")


def build_parser() -> argparse.ArgumentParser:
    """The ``innreg`` parser with every command's options."""
    parser = argparse.ArgumentParser(
        prog="innreg",
        description="Unsupervised multi-modal image registration via invertible translation (INNReg). "
        "Fields are written in voxels of the fixed image, channel k along voxel axis k, as pull-back "
        "maps: warped(x) = moving(x + u(x)); ddf_itk.nii.gz holds the same map for ITK/ANTs (mm, LPS).",
    )
    parser.add_argument("--version", action="version", version=f"innreg {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        command = _command(name)
        command.add_arguments(sub.add_parser(name, help=command.HELP))
    return parser


def _one_line(message: object) -> str:
    """A message on one line (library errors quoted in ours may span several)."""
    return " ".join(line.strip() for line in str(message).splitlines() if line.strip())


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Ours (a file's geometry) as one line; anything else (a library's) as Python shows it."""
    if issubclass(category, GeometryWarning):
        print(f"innreg: warning: {_one_line(message)}", file=sys.stderr)
    else:
        _PYTHON_SHOW_WARNING(message, category, filename, lineno, file, line)


_PYTHON_SHOW_WARNING = warnings.showwarning


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``innreg`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    keep_freed_memory()
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        with stop_signals_interrupt():
            return _run(args)


# What an interrupted command keeps, where it keeps something.
_INTERRUPTED = {
    "train": "; progress so far is saved (--resume continues the run)",
    "benchmark": "; finished methods and training checkpoints are kept (the same command continues)",
}


def _run(args: argparse.Namespace) -> int:
    try:
        if getattr(args, "threads", None) is not None:  # the commands with --threads
            from innreg.threads import set_cpu_threads

            set_cpu_threads(args.threads)
        _command(args.command).run(args)
    except InnregInputError as err:
        print(f"innreg: error: {_one_line(err)}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader went away (`innreg compare A B | head -1`): stop quietly, as Unix tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except OSError as err:
        if err.filename is None:  # not about a file the user named: a real failure, keep the traceback
            raise
        print(f"innreg: error: {err.filename}: {_one_line(err.strerror or err)}", file=sys.stderr)
        return 2
    except TrainingDivergedError as err:
        print(f"innreg: error: {_one_line(err)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as err:
        signum = getattr(err, "signum", signal.SIGINT)
        what = "interrupted" if signum == signal.SIGINT else f"stopped by {signal.Signals(signum).name}"
        # Every rank of a torchrun launch stops, and a benchmark's method process with the benchmark: one says so.
        if is_main_rank() and not getattr(args, "one_method", False):
            print(f"innreg: {what}{_INTERRUPTED.get(args.command, '')}", file=sys.stderr)
        return 128 + signum
    return 0
