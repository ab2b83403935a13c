"""Keep freed memory in the process for reuse: glibc malloc settings for many short-lived tensors.

PyTorch has no caching allocator on the CPU: every tensor is a fresh ``malloc``. glibc serves each
block above its mmap threshold (128 KiB at start; one 224x192 float image is 168 KiB) with a fresh
``mmap`` and returns it to the system when freed, so every such tensor pays a page fault per 4 KiB
page on first touch. A registration allocates thousands of them (translator features, demons fields),
and the page faults, not the arithmetic, took about 40 % of the time: measured on 224x192 pairs, one
thread, the INN translator 41 -> 22-24 ms and the demons stage 102 -> 52-64 ms per pair, the speed
against ANTs SyN 9.75x -> 11.95x (median of 12 measurements; ``benchmarks/RESULTS.md``, section 4).
Training steps, dominated by convolutions, did not change; peak memory neither (518-527 MB either way).

:func:`keep_freed_memory` turns glibc's own mmap off (every block comes from the heap and is reused
after it is freed) and the heap's trimming too (freed memory stays in the process instead of going back
to the system). Raising the mmap threshold instead, as innreg did first, covers blocks up to 32 MiB only
(glibc's maximum), and with a 1 GiB trim threshold the heap still gave back and re-faulted its top: a 3D
pair of 176x208x176 voxels (1 mm) allocates fields and descriptors of 70-600 MB. Measured there (``innreg
register``, one thread, twice each, the other core busy): 3.8-4.3 million page faults and 59-73 s with
the thresholds, 1.1 million and 52-55 s without mmap or trimming, the same peak memory (4.7 GB). On 2D
pairs of 224x192 it changes little (0.107 -> 0.103 s a pair together with a faster demons step;
``benchmarks/RESULTS.md`` section 26). So the process keeps its peak memory for its later allocations
rather than returning it between registrations. It is a process-wide setting, applied by the ``innreg``
command and by :func:`innreg.load_model`; set the environment variable ``INNREG_KEEP_FREED_MEMORY=0`` to
leave malloc as it is. Elsewhere than glibc (macOS, Windows, musl) it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

# mallopt parameters (glibc's malloc.h): no block from its own mmap, never give the heap's top back.
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4
_NO_MMAP, _NEVER_TRIM = 0, -1

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
    return mallopt(_M_MMAP_MAX, _NO_MMAP) == 1 and mallopt(_M_TRIM_THRESHOLD, _NEVER_TRIM) == 1
