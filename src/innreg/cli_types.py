"""Argument types shared by the command-line modules."""

from __future__ import annotations

import argparse
import math


def _int_at_least(text: str, low: int, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"must be {what}, got {text}")
    return value


def _float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not math.isfinite(value):  # NaN passes every comparison below, infinity most
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
    return value


def positive_float(text: str) -> float:
    """``argparse`` type: a number > 0."""
    value = _float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def non_negative_float(text: str) -> float:
    """``argparse`` type: a number >= 0."""
    value = _float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def unit_fraction(text: str) -> float:
    """``argparse`` type: a number in ``[0, 1)``."""
    value = _float(text)
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be at least 0 and below 1, got {text}")
    return value


def open_fraction(text: str) -> float:
    """``argparse`` type: a number strictly between 0 and 1."""
    value = _float(text)
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1 (both excluded), got {text}")
    return value


def pair_count(text: str) -> int:
    """``argparse`` type: an integer >= 2 (one pair to train on, one to test)."""
    return _int_at_least(text, 2, "an integer of at least 2 (one pair to train on, one to test)")


def positive_int(text: str) -> int:
    """``argparse`` type: an integer >= 1 (a clear message for anything else)."""
    return _int_at_least(text, 1, "a positive integer")


def non_negative_int(text: str) -> int:
    """``argparse`` type: an integer >= 0 (a clear message for anything else)."""
    return _int_at_least(text, 0, "a non-negative integer")
