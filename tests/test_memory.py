"""innreg.memory: the malloc settings are applied once, can be switched off, and do no harm."""

import platform
import sys

import pytest
import torch

from innreg import memory

glibc = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"


@pytest.fixture
def fresh(monkeypatch):
    monkeypatch.setattr(memory, "_applied", None)


@pytest.mark.skipif(not glibc, reason="mallopt is glibc's")
def test_applied_on_glibc(fresh, monkeypatch):
    monkeypatch.delenv("INNREG_KEEP_FREED_MEMORY", raising=False)
    assert memory.keep_freed_memory() is True
    # Tensors above glibc's mmap thresholds (128 KiB at start, 32 MiB at most) come from the heap now:
    # they still allocate, free and hold their values.
    for shape in [(1, 8, 224, 192)] * 3 + [(3, 2048, 2048)] * 2:
        x = torch.full(shape, 2.0)
        assert float((x * 0.5).sum()) == x.numel()


def test_switched_off_by_the_environment(fresh, monkeypatch):
    monkeypatch.setenv("INNREG_KEEP_FREED_MEMORY", "0")
    assert memory.keep_freed_memory() is False


def test_applied_once_per_process(fresh, monkeypatch):
    calls = []
    monkeypatch.setattr(memory, "_apply", lambda: calls.append(1) or True)
    assert memory.keep_freed_memory() and memory.keep_freed_memory()
    assert len(calls) == 1
