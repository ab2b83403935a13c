"""One harness that fits, evaluates and tabulates several registration methods on the same data.

``innreg benchmark --train TRAIN.csv --test TEST.csv --methods innreg,ants-syn --out DIR`` fits every
method (the learned ones with the same step budget), scores it with
:func:`innreg.evaluation.evaluate_pairs` (one metrics code path for all) and writes

* ``DIR/<method>/fit/`` (training run), ``DIR/<method>/eval/`` (per-pair CSV, summary, overview) and
  ``DIR/<method>/result.json`` (summary + cost), or ``DIR/<method>/error.txt`` when a method could
  not run (e.g. ANTs not installed);
* ``DIR/results.csv``, ``DIR/results.md`` and ``DIR/dice_bars.png`` over all finished methods.

Each method runs in its own Python process (``python -m innreg.cli benchmark ... --one-method NAME``)
so its peak resident memory (``getrusage`` max RSS: interpreter, libraries, data, training and
evaluation together) is its own. A finished method (``result.json`` present) is skipped on a rerun,
and an interrupted training resumes from its checkpoint.

``--convergence`` instead trains the given methods (default: ``innreg`` and ``innreg-no-barrier``)
while measuring the test Dice on a fixed subset of pairs every ``--eval-every`` steps, and writes
``DIR/convergence.csv``, ``DIR/convergence.png`` and ``DIR/convergence.md`` (steps to reach 95% of
the final Dice).
"""

from innreg.benchmark.args import add_benchmark_arguments, run_benchmark_from_args
from innreg.benchmark.convergence import convergence_study, steps_to_fraction
from innreg.benchmark.run import run_benchmark, run_method
from innreg.benchmark.settings import CONVERGENCE_METHODS, DEFAULT_METHODS, BenchmarkSettings, MethodResult, load_result
from innreg.benchmark.tables import result_row, results_markdown, write_tables

__all__ = [
    "CONVERGENCE_METHODS",
    "DEFAULT_METHODS",
    "BenchmarkSettings",
    "MethodResult",
    "add_benchmark_arguments",
    "convergence_study",
    "load_result",
    "result_row",
    "results_markdown",
    "run_benchmark",
    "run_benchmark_from_args",
    "run_method",
    "steps_to_fraction",
    "write_tables",
]
