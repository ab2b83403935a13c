"""Lazy package exports: names resolve to their submodule's objects, unknown names fail as usual."""

import subprocess
import sys
from pathlib import Path

import pytest

import innreg


def test_lazy_names_are_the_submodules_objects_and_unknown_names_raise():
    from innreg import data
    from innreg.data.pairs import read_manifest

    assert data.read_manifest is read_manifest and "read_manifest" in dir(data) and "read_manifest" in data.__all__
    with pytest.raises(AttributeError, match="has no attribute 'nonexistent'"):
        data.nonexistent  # noqa: B018


def test_listing_packages_imports_none_of_their_heavy_modules():
    code = (
        "import sys, innreg, innreg.data, innreg.reports, innreg.benchmark, innreg.baselines\n"
        "from innreg.baselines import METHODS\n"
        "assert 'innreg' in METHODS and 'torch' not in sys.modules and 'matplotlib' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env={"PYTHONPATH": str(Path(innreg.__file__).parent.parent)})
