"""Atomic file output: write to a temporary file beside the target, then rename it over the target.

An interrupted or failing write never leaves a half-written file under the final name; a run that writes
a folder of outputs stages them in a temporary folder (:func:`staged_dir`), so one that fails half-way
(a broken image in the tenth pair, Ctrl-C) leaves the folder as it was. An error about the temporary
file or folder names the user's path instead. The temporaries are hidden and named after the target, the
host and the writing process, so the next write of a target clears those a killed writer of this host left
behind. :func:`check_not_input` and :func:`check_folder_spares_inputs` refuse, before any work, outputs that
would replace one of the run's own inputs.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
from contextlib import contextmanager
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Iterable, Iterator, Sequence

from innreg.errors import InnregInputError

Inputs = Iterable[tuple[str, "str | os.PathLike | None"]]
"""``(what, path)`` pairs of a run's input files (``what`` says which input, e.g. ``--moving``); ``None`` skipped."""


_HOST = socket.gethostname()


def _temporary_name(name: str, suffix: str = "") -> str:
    """A new hidden name for a temporary sibling of ``name``: ``.NAME.HOST-PID-TOKEN.tmp`` + ``suffix``. The host
    and the process let a later write of ``name`` clear what a killed writer left (:func:`_clear_leftovers`)."""
    return f".{name}.{_HOST}-{os.getpid()}-{secrets.token_hex(6)}.tmp{suffix}"


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, as another user's
        return True
    return True


def _clear_leftovers(folder: Path, name: str) -> None:
    """Remove the temporary files and folders of ``name`` in ``folder`` whose writer, a process of this host,
    no longer runs (SIGKILL mid-write skips the clean-up). Other hosts' are kept, their writers may still run; so
    is everything on systems without POSIX signals, where ``os.kill(pid, 0)`` would not just ask."""
    if os.name != "posix":
        return
    prefix = f".{name}.{_HOST}-"
    try:
        candidates = [entry for entry in folder.iterdir() if entry.name.startswith(prefix)]
    except OSError:
        return
    for entry in candidates:
        pid, _, rest = entry.name[len(prefix) :].partition("-")
        if pid.isdigit() and ".tmp" in rest and int(pid) != os.getpid() and not _running(int(pid)):
            try:
                _remove(entry)
            except OSError:
                pass  # another writer cleared it first, or it cannot be removed: not this write's business


def _about(err: OSError, path: Path) -> OSError:
    """``err`` naming ``path`` (the user's output) instead of a temporary file or folder."""
    if err.errno is None:
        return err
    return OSError(err.errno, err.strerror, str(path))  # OSError picks the subclass (IsADirectoryError, ...)


@contextmanager
def atomic_output(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` when the block succeeds.

    An :class:`OSError` about the temporary file (the writer's, or the rename's: ``path`` is a folder)
    is raised naming ``path``.

    Args:
        path: the final file (its folder is created if needed).
        suffix: ending of the temporary name, for writers that pick the format from the extension
            (e.g. ``.nii.gz``, ``.png``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _clear_leftovers(path.parent, path.name)
    tmp = path.with_name(_temporary_name(path.name, suffix))
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as err:
        if err.filename is None or os.fspath(err.filename) != os.fspath(tmp):
            raise
        raise _about(err, path) from err
    finally:
        tmp.unlink(missing_ok=True)


def _nearest_existing(path: Path) -> Path:
    """``path`` itself if it exists, else its nearest existing ancestor."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _staging_folder(path: Path) -> Path:
    """A new hidden folder beside (the real folder behind) ``path``, or inside ``path`` when that is an
    existing folder whose parent is not writable; on the same file system either way."""
    real = path.resolve()  # beside the folder a symlink points to: the moves must not cross file systems
    name = _temporary_name(real.name or "out")
    beside = _nearest_existing(real.parent)
    _clear_leftovers(beside, real.name or "out")
    if path.is_dir():
        _clear_leftovers(path, real.name or "out")
    try:
        tmp = beside / name
        tmp.mkdir()
    except OSError as err:
        if not path.is_dir():
            raise _about(err, path) from err
        tmp = path / name
        try:
            tmp.mkdir()
        except OSError as inner:
            raise _about(inner, path) from inner
    return tmp


def _remove(entry: Path) -> None:
    if entry.is_dir() and not entry.is_symlink():
        shutil.rmtree(entry)
    else:
        entry.unlink(missing_ok=True)


def _move_in(staging: Path, path: Path, owned: Sequence[str], last: Sequence[str]) -> None:
    """Move the staged entries into ``path`` (see :func:`staged_dir`)."""
    if not path.exists() and not path.is_symlink():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(staging, path)  # one step: the whole folder appears at once
        except OSError as err:
            raise _about(err, path) from err
        return
    staged = sorted(staging.iterdir(), key=lambda e: e.name in last)  # the ``last`` entries at the end
    names = {e.name for e in staged}
    mine = [e for e in path.iterdir() if e != staging and any(fnmatchcase(e.name, p) for p in owned)]
    # The entries that mark a complete folder go first, so a move cut short leaves a folder without them.
    for entry in sorted(mine, key=lambda e: e.name not in last):
        if entry.name in last or entry.name not in names:
            _remove(entry)
    for entry in staged:
        target = path / entry.name
        try:
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            os.replace(entry, target)
        except OSError as err:
            raise _about(err, target) from err


@contextmanager
def staged_dir(path: str | os.PathLike, owned: Sequence[str] = (), last: Sequence[str] = ()) -> Iterator[Path]:
    """Yield an empty temporary folder for the outputs of a run that ends in ``path``; when the block
    succeeds, move its entries into ``path``, otherwise delete it, so a failing or interrupted run leaves
    ``path`` as it was and creates no folder.

    A new ``path`` appears in one rename, complete. Into an existing ``path`` the staged entries are moved
    one by one, replacing same-named entries; entries of ``path`` that the run did not write are kept,
    except those whose names match one of the glob patterns ``owned`` (the names this kind of run writes:
    stale outputs of an earlier run, such as its label map, would not match the new ones). Entries named
    in ``last`` (owned ones that mark the folder complete, e.g. the grids ``innreg apply`` reads first) are
    removed from ``path`` first and moved in last, so a move cut short leaves a folder without them.

    The temporary folder lies beside ``path`` (the same file system, so the moves are renames), or inside
    it when only ``path`` is writable. Files that name their outputs should name them under ``path``.
    """
    path = Path(path)
    tmp = _staging_folder(path)
    try:
        yield tmp
        _move_in(tmp, path, owned, last)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _same_file(a: Path, b: Path) -> bool:
    try:
        if os.path.samefile(a, b):
            return True
    except OSError:  # one of them does not exist (yet)
        pass
    return a.resolve() == b.resolve()


def check_not_input(output: str | os.PathLike, inputs: Inputs) -> None:
    """Refuse an output file that is one of the run's inputs (the same resolved path, or the same file).

    Raises:
        InnregInputError: naming ``output`` and the input it would overwrite.
    """
    output = Path(output)
    for what, source in inputs:
        if source is not None and _same_file(output, Path(source)):
            raise InnregInputError(f"{output}: the output would overwrite the input {source} ({what})")


def check_folder_spares_inputs(folder: str | os.PathLike, owned: Sequence[str], inputs: Inputs) -> None:
    """Refuse a run that writes (or, as stale, removes) the entries of ``folder`` whose names match the glob
    patterns ``owned`` (see :func:`staged_dir`) when one of its inputs is such an entry or lies inside one.

    Raises:
        InnregInputError: naming ``folder`` and the input it would overwrite.
    """
    folder = Path(folder)
    root = folder.resolve()
    for what, source in inputs:
        if source is None:
            continue
        try:
            parts = Path(source).resolve().relative_to(root).parts
        except ValueError:  # not inside the folder
            continue
        if parts and any(fnmatchcase(parts[0], p) for p in owned):
            raise InnregInputError(f"{folder}: the output would overwrite the input {source} ({what})")


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Atomically write ``data`` to ``path``."""
    with atomic_output(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Atomically write ``text`` to ``path``."""
    with atomic_output(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def check_output_dir(path: str | os.PathLike, what: str = "output folder") -> Path:
    """Check, before any work is done, that ``path`` is a writable folder or can be created as one
    (nothing is created, so a run that fails later leaves no empty folder behind).

    Raises:
        InnregInputError: ``path`` or one of its parents is a file, or the folder that would hold
            it is not writable.
    """
    path = Path(path)
    existing = _nearest_existing(path)
    if existing == path and not path.is_dir():
        raise InnregInputError(f"{path}: exists and is not a folder; needed as the {what}")
    if not existing.is_dir():
        raise InnregInputError(f"{path}: the {what} cannot be created: {existing} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InnregInputError(f"{path}: the {what} cannot be written ({existing} is not writable)")
    return path
