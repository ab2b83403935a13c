"""Keep freed memory in the process for reuse: glibc malloc settings for many short-lived tensors.

PyTorch has no caching allocator on the CPU: every tensor is a fresh ``malloc``. glibc serves each
block above its mmap threshold (128 KiB at start; one 224x192 float image is 168 KiB) with a fresh
``mmap`` and returns it to the system when freed, so every such tensor pays a page fault per 4 KiB
page on first touch. A registration allocates thousands of them (translator features, demons fields),
and the page faults, not the arithmetic, took about 40 % of the time: measured on 224x192 pairs, one
thread, the INN translator 41 -> 22-24 ms and the demons stage 102 -> 52-64 ms per pair, the speed
against ANTs SyN 9.75x -> 11.95x (median of 12 measurements; ``benchmarks/RESULTS.md``, section 4).
Training steps, dominated by convolutions, did not change; peak memory neither (518-527 MB either way).

:func:`keep_freed_memory` raises glibc's mmap threshold (blocks up to that size come from the heap and
are reused) and its trim threshold (the heap keeps up to that much free memory instead of giving it
back). The process keeps its peak memory rather than returning it between registrations. It is a
process-wide setting, applied by the ``innreg`` command and by :func:`innreg.load_model`; set the
environment variable ``INNREG_KEEP_FREED_MEMORY=0`` to leave malloc as it is. Elsewhere than glibc
(macOS, Windows, musl) it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

# mallopt parameters (glibc's malloc.h) and the values set.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP_THRESHOLDS = (1 << 30, 32 << 20)  # 1 GiB; glibc versions that refuse it accept 32 MiB (its documented maximum)
_TRIM_THRESHOLD = 1 << 30

_applied: bool | None = None


def keep_freed_memory() -> bool:
    """Apply the malloc settings of this module's docstring once per process.

    Returns:
        Whether they are in effect (``False`` without glibc or with ``INNREG_KEEP_FREED_MEMORY=0``).
    """
    global _applied
    if _applied is None:
        _applied = _apply()
    return _applied


def _apply() -> bool:
    if os.environ.get("INNREG_KEEP_FREED_MEMORY", "1").strip() == "0" or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    if not any(mallopt(_M_MMAP_THRESHOLD, value) == 1 for value in _MMAP_THRESHOLDS):
        return False
    return mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD) == 1
