"""The import graph runs one way: core at the bottom, then nn/losses/data/metrics, then everything else.

Imports are read with ``ast`` (module level and inside functions), so a lazy import that breaks the
layering fails here as well.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

import innreg

PACKAGE = Path(innreg.__file__).parent

# What each lower package may import from innreg besides itself.
ALLOWED = {
    "core": set(),
    "nn": {"core"},
    "losses": {"core"},
    "metrics": {"core"},
    "paired": set(),
    "data": {"core", "atomic", "errors", "lazy", "reports"},
    # reports is a presentation library under everything that draws: it knows arrays, not registration.
    "reports": {"core", "atomic", "errors", "lazy"},
}


def _layer(module: Path) -> str:
    return module.relative_to(PACKAGE).parts[0].removesuffix(".py")


def _innreg_imports(module: Path) -> set[str]:
    """Top-level innreg subpackages/modules imported anywhere in ``module``."""
    found = set()
    for node in ast.walk(ast.parse(module.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        found.update(n.split(".")[1] for n in names if n.startswith("innreg."))
    return found


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_lower_layers_import_nothing_above(layer: str) -> None:
    modules = [m for m in PACKAGE.rglob("*.py") if _layer(m) == layer]
    assert modules, f"no modules found for layer {layer}"
    offending = {
        f"{m.relative_to(PACKAGE)} imports innreg.{name}"
        for m in modules
        for name in _innreg_imports(m) - ALLOWED[layer] - {layer}
    }
    assert not offending, sorted(offending)


def test_importing_innreg_and_reports_does_not_load_matplotlib() -> None:
    # Markdown summaries and the CLI must stay light: matplotlib loads only when a figure is drawn.
    code = "import sys, innreg, innreg.reports, innreg.evaluation; assert 'matplotlib' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "PYTHONPATH": str(PACKAGE.parent)})


def test_core_enums_are_the_config_enums() -> None:
    from innreg import config, core

    for name in ("RefineInit", "RegInput", "RegLossKind", "SubnetKind", "TranslatorKind"):
        assert getattr(config, name) is getattr(core, name)
