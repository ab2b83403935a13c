"""Argument types shared by the command-line modules."""

from __future__ import annotations

import argparse


def _int_at_least(text: str, low: int, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a {what} integer, got {text!r}") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"must be a {what} integer, got {text}")
    return value


def positive_int(text: str) -> int:
    """``argparse`` type: an integer >= 1 (a clear message for anything else)."""
    return _int_at_least(text, 1, "positive")


def non_negative_int(text: str) -> int:
    """``argparse`` type: an integer >= 0 (a clear message for anything else)."""
    return _int_at_least(text, 0, "non-negative")
