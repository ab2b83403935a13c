"""Network tests start from a fixed seed (the suite-wide conftest already runs torch on one thread)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
