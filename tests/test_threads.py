"""One thread setting for torch and for the ITK-based peers."""

from __future__ import annotations

import pytest
import torch

from innreg.threads import ITK_THREADS_VARIABLE, itk_threads, set_cpu_threads


@pytest.fixture
def restore_threads(monkeypatch):
    monkeypatch.delenv(ITK_THREADS_VARIABLE, raising=False)  # monkeypatch restores the suite's value after
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_set_cpu_threads_sets_torchs_and_itks(restore_threads):
    set_cpu_threads(2)
    assert torch.get_num_threads() == 2 and itk_threads() == 2
    set_cpu_threads(1)
    assert torch.get_num_threads() == 1 and itk_threads() == 1
    with pytest.raises(ValueError, match="at least 1"):
        set_cpu_threads(0)


@pytest.mark.parametrize("value, threads", [(None, 1), ("4", 4), ("", 1), ("0", 1), ("many", 1)])
def test_itk_threads_reads_the_variable_and_falls_back_where_unset_or_unusable(restore_threads, monkeypatch, value, threads):
    if value is not None:
        monkeypatch.setenv(ITK_THREADS_VARIABLE, value)
    assert itk_threads() == threads
    assert itk_threads(unset=3) == (threads if value == "4" else 3)


def test_the_cli_sets_the_threads_of_the_commands_that_have_the_option(monkeypatch, tmp_path, capsys):
    import innreg.threads
    from innreg.cli import main

    calls = []
    monkeypatch.setattr(innreg.threads, "set_cpu_threads", calls.append)
    missing = str(tmp_path / "missing.pt")
    register = ["register", "--model", missing, "--moving", missing, "--fixed", missing, "--out", str(tmp_path / "o")]
    assert main([*register, "--threads", "3"]) == 2  # set before the command runs: the input error follows it
    assert main(register) == 2
    assert calls == [3]  # unset: torch's and ITK's defaults stay
    assert capsys.readouterr().err.count("innreg: error:") == 2
