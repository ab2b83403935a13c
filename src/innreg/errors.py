"""Exceptions that the command line turns into a one-line message instead of a traceback."""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from types import FrameType
from typing import Callable, Iterator


class InnregInputError(ValueError):
    """Bad user input: a missing, unreadable or inconsistent file, or an invalid option.

    The message names the file (or option) and the problem in one line.
    """


class TrainingDivergedError(RuntimeError):
    """A training loop's loss became NaN or infinite: the weights are no longer usable.

    Raised before anything is saved from the diverged step, so the loop's checkpoint (and no
    ``model.pt``) is what stays on disk; the message says which loop, which step and which terms.
    """


# Signals that stop a training loop after its step (innreg.loop): Ctrl-C, and the SIGTERM of a batch system's time
# limit or preemption (SLURM sends it, then SIGKILL after KillWait, 30 s by default; torchrun passes it on).
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM") if hasattr(signal, name))


def ignore_stop_signals(*_: object) -> None:
    """In a worker process: ignore SIGINT and SIGTERM, which a terminal or a batch system sends to every process of
    the group, so that the parent alone stops on them and then ends its workers. Takes and ignores any arguments (a
    ``DataLoader``'s ``worker_init_fn`` passes the worker's number)."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)


class StopSignal(KeyboardInterrupt):
    """A command stopped by SIGINT (Ctrl-C) or SIGTERM (a batch system's time limit or preemption): a training loop
    after the step in progress, with its checkpoint written, anything else where it was
    (:func:`stop_signals_interrupt`); ``signum`` is the signal, so the command line exits with the shell's status
    for it (128 + signum)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


@contextlib.contextmanager
def stop_signals_handled_by(handler: Callable[[int, FrameType | None], None]) -> Iterator[None]:
    """Inside, ``handler`` handles SIGINT and SIGTERM; their previous handling is back at the end. In the main
    thread only (where Python runs signal handlers; ``signal.signal`` refuses the others)."""
    previous = {signum: signal.signal(signum, handler) for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, handling in previous.items():
            signal.signal(signum, handling)


# The stop signal received inside :func:`stop_signals_interrupt` (0: none yet) and how many of those contexts are
# open. Its handler raises, but Python drops an exception raised inside a finalizer (a ``__del__``, such as nibabel's
# ``OrderedSet``'s, or a weakref callback the stop happened to land in: printed as "Exception ignored in"), so a run
# would go on to the end. The context keeps such a stop off the terminal, and the loops over pairs and methods ask
# :func:`raise_if_stopped` between items.
_stop = {"received": 0, "depth": 0}


@contextlib.contextmanager
def stop_signals_interrupt() -> Iterator[None]:
    """Inside, SIGTERM raises :class:`StopSignal` wherever the main thread is, as Ctrl-C (SIGINT) does: clean-ups
    run (staged outputs are removed, a benchmark lets its method's process finish) and the command line says so,
    where SIGTERM's default would end the process on the spot. The signal is also recorded for
    :func:`raise_if_stopped`. Training loops still stop only after their step (:mod:`innreg.loop` handles both
    signals itself while it runs). Outside the main thread, where no handler can be installed, nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame) -> None:
        _stop["received"] = signum
        raise StopSignal(signum)

    def unraisable(info) -> None:  # a stop dropped in a finalizer: recorded, not printed
        if not isinstance(info.exc_value, StopSignal):
            unraisable_before(info)

    unraisable_before, sys.unraisablehook = sys.unraisablehook, unraisable
    _stop["depth"] += 1
    try:
        with stop_signals_handled_by(handler):
            yield
    finally:
        sys.unraisablehook = unraisable_before
        _stop["depth"] -= 1
        if not _stop["depth"]:
            _stop["received"] = 0


def stop_received() -> int:
    """The stop signal that arrived inside :func:`stop_signals_interrupt`, 0 before one. Its exception may have
    been lost in a finalizer (see ``_stop``): a training loop that starts after it stops after its first step."""
    return _stop["received"]


def raise_if_stopped() -> None:
    """Raise :class:`StopSignal` if a stop signal arrived inside :func:`stop_signals_interrupt` (its exception
    lost in a finalizer, see ``_stop``); otherwise nothing. Called between the items of long loops."""
    if stop_received():
        raise StopSignal(stop_received())


class GeometryWarning(UserWarning):
    """A file's header geometry that innreg reads one way (nibabel's: the sform when set, else the qform) and ITK
    or ANTs may read another, so a transform exported for them (``ddf_itk.nii.gz``) may not line up there. The
    command line prints it as one line ``innreg: warning: <file>: <problem>``."""


@contextlib.contextmanager
def about_file(path: object) -> Iterator[None]:
    """Prefix the message of an :class:`InnregInputError` raised inside with ``path`` (the file the
    bad input came from), unless it already names it."""
    try:
        yield
    except InnregInputError as err:
        if str(path) in str(err):
            raise
        raise InnregInputError(f"{path}: {err}") from err
