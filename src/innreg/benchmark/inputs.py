"""What a method's outputs in ``DIR/<method>/`` were computed from, so a rerun reuses them only for the same inputs.

``DIR/<method>/inputs.json`` records the method's name, the resolved ``--train`` and ``--test`` manifests
(each with the SHA-256 of its text and a hash of the path, size and modification time of every file it
lists), ``--steps``, ``--dim`` and the ``--config`` file (path and SHA-256 of its text). Methods that do not
train record no training manifest, steps or config, so changing those leaves them alone. The device is not
recorded (``result.json`` names it).

A kept ``result.json`` is reused only when the record equals today's inputs. Otherwise the method runs
again: its result and evaluation are removed, and so is its training run (``fit/``) when what it was
trained from changed (or was not recorded); a changed ``--test`` alone keeps the training run.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

from innreg.atomic import write_text
from innreg.benchmark.settings import ERROR_FILE, EVAL_DIR, FIT_DIR, RESULT_FILE

INPUTS_FILE = "inputs.json"
FIT_KEYS = ("method", "train", "steps", "dim", "config")
"""The recorded inputs a training run depends on (``test`` only matters to the evaluation)."""

Inputs = dict[str, Any]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _manifest(path: Path) -> dict[str, str]:
    """A manifest's resolved path, the hash of its text and a hash of the listed files' size and mtime."""
    from innreg.data import read_manifest

    listed = hashlib.sha256()
    for record in read_manifest(path):
        for column, file in record.files():
            stat = file.stat()
            listed.update(f"{column}\0{file.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return {"path": str(path.resolve()), "sha256": _sha256(path), "files": listed.hexdigest()}


def method_inputs(name: str, train: Path, test: Path, steps: int, dim: int, config: Path | None) -> Inputs:
    """The record of what method ``name`` computes its result from (the layout of ``inputs.json``)."""
    from innreg.baselines import TRAINED_METHODS

    trains = name in TRAINED_METHODS
    return {
        "method": name,
        "train": _manifest(Path(train)) if trains else None,
        "test": _manifest(Path(test)),
        "steps": steps if trains else None,
        "dim": dim,
        "config": {"path": str(Path(config).resolve()), "sha256": _sha256(Path(config))} if trains and config else None,
    }


def read_inputs(method_dir: Path) -> Inputs | None:
    """The record in ``method_dir``, or ``None`` when there is none (or it is unreadable)."""
    try:
        record = json.loads((method_dir / INPUTS_FILE).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def changed(recorded: Inputs | None, current: Inputs) -> list[str]:
    """The keys whose recorded value differs from ``current`` (all of them when nothing is recorded)."""
    return [k for k in current if recorded is None or recorded.get(k) != current[k]]


def stale_reason(method_dir: Path, current: Inputs) -> str | None:
    """Why what ``method_dir`` keeps cannot be reused for ``current``; ``None`` when it can (or holds nothing)."""
    recorded = read_inputs(method_dir)
    keys = changed(recorded, current)
    if not keys:
        return None
    if (method_dir / RESULT_FILE).exists():
        kept = "result"
    elif (method_dir / FIT_DIR).exists() and set(keys) & set(FIT_KEYS):
        kept = "training run"
    else:
        return None
    if recorded is None:
        return f"the kept {kept} does not record its inputs; running again"
    return f"inputs changed since the kept {kept} ({', '.join(keys)}); running again"


def renew(method_dir: Path, current: Inputs) -> None:
    """Remove from ``method_dir`` what was computed from other inputs than ``current``, then record ``current``."""
    recorded = read_inputs(method_dir)
    keys = changed(recorded, current)
    (method_dir / ERROR_FILE).unlink(missing_ok=True)
    if keys:
        (method_dir / RESULT_FILE).unlink(missing_ok=True)
        shutil.rmtree(method_dir / EVAL_DIR, ignore_errors=True)
        if set(keys) & set(FIT_KEYS):
            shutil.rmtree(method_dir / FIT_DIR, ignore_errors=True)
    write_text(method_dir / INPUTS_FILE, json.dumps(current, indent=2))
