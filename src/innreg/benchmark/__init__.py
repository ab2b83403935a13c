"""One harness that fits, evaluates and tabulates several registration methods on the same data.

``innreg benchmark --train TRAIN.csv --test TEST.csv --methods innreg,ants-syn --out DIR`` fits every
method (the learned ones with the same step budget), scores it with
:func:`innreg.evaluation.evaluate` (one metrics code path for all) and writes

* ``DIR/<method>/fit/`` (training run), ``DIR/<method>/eval/`` (per-pair CSV, summary, overview),
  ``DIR/<method>/result.json`` (summary + cost) and ``DIR/<method>/inputs.json`` (what they were
  computed from), or ``DIR/<method>/error.txt`` (the failed method's log) when a method could not run
  (e.g. ANTs not installed); each failure is reported once, as one line on stderr;
* ``DIR/results.csv``, ``DIR/results.md`` and ``DIR/dice_bars.png`` over all finished methods.

Each method runs in its own Python process (``python -m innreg.cli benchmark ... --one-method NAME``)
so its peak resident memory (``getrusage`` max RSS: interpreter, libraries, data, training and
evaluation together) is its own. On a rerun a finished method is kept only when ``inputs.json``
records today's manifests (and the files they list), steps, dim and config
(:mod:`innreg.benchmark.inputs`); otherwise it runs again, saying so on stderr. An interrupted
training from the same inputs resumes from its checkpoint.

``--convergence`` instead trains the given methods (default: ``innreg`` and ``innreg-no-barrier``)
while measuring the test Dice on a fixed subset of pairs every ``--eval-every`` steps, and writes
``DIR/convergence.csv``, ``DIR/convergence.png`` and ``DIR/convergence.md`` (steps to reach 95% of
the final Dice).
"""

from innreg.lazy import lazy_exports

# Submodule -> the public names it defines; imported on first use, so importing the package stays light.
_EXPORTS = {
    "args": ("add_benchmark_arguments", "run_benchmark_from_args"),
    "convergence": ("convergence_study", "steps_to_fraction"),
    "run": ("run_benchmark", "run_method"),
    "settings": ("BenchmarkSettings", "CONVERGENCE_METHODS", "DEFAULT_METHODS", "MethodResult", "load_result"),
    "tables": ("result_row", "results_markdown", "write_tables"),
}
__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
