"""Atomic file output: write to a temporary file beside the target, then rename it over the target.

An interrupted or failing write never leaves a half-written file under the final name; a run that writes
a folder of outputs stages them in a temporary folder (:func:`staged_dir`), so one that fails half-way
(a broken image in the tenth pair) leaves nothing behind either.
"""

from __future__ import annotations

import os
import secrets
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from innreg.errors import InnregInputError


@contextmanager
def atomic_output(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` when the block succeeds.

    Args:
        path: the final file (its folder is created if needed).
        suffix: ending of the temporary name, for writers that pick the format from the extension
            (e.g. ``.nii.gz``, ``.png``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp{suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _nearest_existing(path: Path) -> Path:
    """``path`` itself if it exists, else its nearest existing ancestor."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


@contextmanager
def staged_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty temporary folder for the outputs of a run that ends in ``path``; when the block
    succeeds, move its entries into ``path`` (created with its parents; same-named entries replaced),
    otherwise delete it, so a failing run leaves ``path`` as it was and creates no folder.

    The temporary folder lies in the nearest existing ancestor of ``path`` (the same file system, so the
    moves are renames). Files that name their outputs should name them under ``path``.
    """
    path = Path(path)
    tmp = _nearest_existing(path.parent) / f".{path.name}.{secrets.token_hex(6)}.tmp"
    tmp.mkdir()
    try:
        yield tmp
        path.mkdir(parents=True, exist_ok=True)
        for entry in tmp.iterdir():
            target = path / entry.name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            os.replace(entry, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


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
