"""Exceptions that the command line turns into a one-line message instead of a traceback."""

from __future__ import annotations

import contextlib
from typing import Iterator


class InnregInputError(ValueError):
    """Bad user input: a missing, unreadable or inconsistent file, or an invalid option.

    The message names the file (or option) and the problem in one line.
    """


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
