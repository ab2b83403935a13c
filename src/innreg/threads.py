"""The CPU threads a run computes with: torch's and ITK's (ANTsPy, itk-elastix, Greedy) from one setting."""

from __future__ import annotations

import os

# ITK reads it when a filter first asks for its thread count, so setting it before a peer's first
# registration is enough (ANTsPy has no other switch; itk-elastix takes it as its default); child
# processes inherit it.
ITK_THREADS_VARIABLE = "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"


def set_cpu_threads(threads: int) -> None:
    """Compute with ``threads`` CPU threads from now on: torch's intra-op threads (innreg, ConvexAdam) and
    ITK's default (ANTsPy, itk-elastix; Greedy through :func:`itk_threads`)."""
    import torch

    if threads < 1:
        raise ValueError(f"threads must be at least 1, got {threads}")
    torch.set_num_threads(threads)
    os.environ[ITK_THREADS_VARIABLE] = str(threads)


def itk_threads(unset: int = 1) -> int:
    """ITK's thread count as :func:`set_cpu_threads` or the environment set it; ``unset`` where neither did."""
    value = os.environ.get(ITK_THREADS_VARIABLE, "")
    return int(value) if value.isdigit() and int(value) > 0 else unset
