"""Exceptions that the command line turns into a one-line message instead of a traceback."""


class InnregInputError(ValueError):
    """Bad user input: a missing, unreadable or inconsistent file, or an invalid option.

    The message names the file (or option) and the problem in one line.
    """
