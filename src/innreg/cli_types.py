"""Argument types shared by the command-line modules."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable


def _int_at_least(text: str, low: int, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"must be {what}, got {text}")
    return value


def _float_where(text: str, accept: Callable[[float], bool], what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not math.isfinite(value):  # NaN passes every comparison, infinity most
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
    if not accept(value):
        raise argparse.ArgumentTypeError(f"must be {what}, got {text}")
    return value


def positive_float(text: str) -> float:
    """``argparse`` type: a number > 0."""
    return _float_where(text, lambda v: v > 0, "positive")


def non_negative_float(text: str) -> float:
    """``argparse`` type: a number >= 0."""
    return _float_where(text, lambda v: v >= 0, "0 or more")


def unit_fraction(text: str) -> float:
    """``argparse`` type: a number in ``[0, 1)``."""
    return _float_where(text, lambda v: 0.0 <= v < 1.0, "at least 0 and below 1")


def open_fraction(text: str) -> float:
    """``argparse`` type: a number strictly between 0 and 1."""
    return _float_where(text, lambda v: 0.0 < v < 1.0, "between 0 and 1 (both excluded)")


def pair_count(text: str) -> int:
    """``argparse`` type: an integer >= 2 (one pair to train on, one to test)."""
    return _int_at_least(text, 2, "an integer of at least 2 (one pair to train on, one to test)")


def positive_int(text: str) -> int:
    """``argparse`` type: an integer >= 1 (a clear message for anything else)."""
    return _int_at_least(text, 1, "a positive integer")


def non_negative_int(text: str) -> int:
    """``argparse`` type: an integer >= 0 (a clear message for anything else)."""
    return _int_at_least(text, 0, "a non-negative integer")
