"""Argument types shared by the command-line modules."""

from __future__ import annotations

import argparse


def positive_int(text: str) -> int:
    """``argparse`` type: an integer >= 1 (a clear message for anything else)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value
