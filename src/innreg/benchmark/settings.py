"""What a benchmark compares (:class:`BenchmarkSettings`) and what it keeps per method (:class:`MethodResult`)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from innreg.errors import InnregInputError
from innreg.results import EvaluationSummary

DEFAULT_METHODS = (
    "identity",
    "ants-syn",
    "ants-syn-cc",
    "voxelmorph-nmi",
    "cyclegan-voxelmorph",
    "reggan",
    "innreg",
    "innreg-no-refine",
    "innreg-no-inn",
    "innreg-no-ddc",
    "innreg-no-barrier",
    "innreg-no-translation",
)
CONVERGENCE_METHODS = ("innreg", "innreg-no-barrier")
RESULT_FILE = "result.json"
EVAL_DIR = "eval"  # DIR/<method>/eval: the method's evaluation (per_pair.csv, summary.json, ...)
FIT_DIR = "fit"  # DIR/<method>/fit: its training run (model.pt, checkpoint.pt, ...)
ERROR_FILE = "error.txt"  # DIR/<method>/error.txt: why the method did not run (its failure's log)


@dataclass
class BenchmarkSettings:
    """What one benchmark run compares, on what, and how long the learned methods train.

    Attributes:
        train: manifest CSV of the training pairs (labels unused).
        test: manifest CSV of the test pairs, with ``moving_seg`` and ``fixed_seg``.
        out: output folder.
        methods: method names (:data:`innreg.baselines.METHODS`), in table order.
        steps: training steps of every learned method.
        device: ``auto``, ``cpu`` or ``cuda[:k]``.
        dim: 2 or 3; must match the test images.
        config: optional YAML base config for the learned methods, over the defaults sized to ``dim``
            and the device (their switches override it).
        progress: show progress bars.
        isolate: run each method in its own process (per-method peak memory).
        threads: CPU threads of every method (:func:`innreg.threads.set_cpu_threads`): torch's and ITK's, so
            the seconds a pair compare like with like; 1 also keeps Greedy repeatable.
    """

    train: Path
    test: Path
    out: Path
    methods: tuple[str, ...] = DEFAULT_METHODS
    steps: int = 1200
    device: str = "auto"
    dim: int = 2
    config: Path | None = None
    progress: bool = True
    isolate: bool = True
    threads: int = 1

    def base_config(self):
        """The learned methods' base config: the defaults sized to ``dim`` and the device, as ``innreg
        train`` sizes them (3D on a CPU: networks at half resolution), then the ``config`` file."""
        from innreg.config import Config
        from innreg.model import resolve_device

        sized = Config.sized_for(self.dim, resolve_device(self.device).type)
        return Config.from_yaml(self.config, base=sized) if self.config else sized


@dataclass
class MethodResult:
    """What ``DIR/<method>/result.json`` holds."""

    method: str
    trains: bool
    steps: int
    train_seconds: float
    peak_memory_mb: float
    peak_gpu_memory_mb: float | None
    isolated: bool
    device: str
    cpu_threads: int
    summary: EvaluationSummary

    def to_dict(self) -> dict[str, Any]:
        """The ``result.json`` layout: these fields with the summary as in ``summary.json``."""
        return asdict(self) | {"summary": self.summary.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MethodResult:
        return cls(**(data | {"summary": EvaluationSummary.from_dict(data["summary"])}))


def load_result(path: Path) -> MethodResult:
    """Read a ``result.json`` written by :func:`run_method`."""
    try:
        return MethodResult.from_dict(json.loads(path.read_text()))
    except (OSError, ValueError, TypeError, KeyError) as err:
        raise InnregInputError(f"{path}: unreadable benchmark result ({err}); delete it to rerun the method") from err
