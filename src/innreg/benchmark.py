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

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import signal
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from innreg.atomic import write_text
from innreg.errors import InnregInputError

DEFAULT_METHODS = (
    "identity",
    "ants-syn",
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
ERROR_FILE = "error.txt"


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
        config: optional YAML base config for the learned methods (their switches override it).
        progress: show progress bars.
        isolate: run each method in its own process (per-method peak memory).
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

    def base_config(self):
        from innreg.config import Config

        return Config.from_yaml(self.config) if self.config else None


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
    summary: dict[str, Any] = field(default_factory=dict)


def run_method(name: str, settings: BenchmarkSettings) -> MethodResult:
    """Fit and evaluate one method in this process and write ``out/<name>/result.json``.

    A method that cannot run because of the user's setup (:class:`InnregInputError`, e.g. a missing
    optional package) leaves its message in ``out/<name>/error.txt`` and re-raises.
    """
    import torch

    from innreg.baselines import make_method, peak_memory
    from innreg.evaluation import evaluate_pairs
    from innreg.model import resolve_device

    method_dir = settings.out / name
    method_dir.mkdir(parents=True, exist_ok=True)
    (method_dir / ERROR_FILE).unlink(missing_ok=True)
    try:
        method = make_method(name, dim=settings.dim, config=settings.base_config())
        fit = method.fit(settings.train, method_dir / "fit", settings.steps, settings.device, settings.progress)
        summary = evaluate_pairs(
            method, settings.test, method_dir / "eval", overview_pairs=1, progress=settings.progress, method=name
        )
    except InnregInputError as err:
        write_text(method_dir / ERROR_FILE, f"{err}\n")
        raise
    rss_mb, gpu_mb = peak_memory()
    result = MethodResult(
        method=name,
        trains=method.trains,
        steps=settings.steps if method.trains else 0,
        train_seconds=fit.train_seconds,
        peak_memory_mb=rss_mb,
        peak_gpu_memory_mb=gpu_mb,
        isolated=settings.isolate,
        device=str(resolve_device(settings.device)) if method.trains else "cpu",
        cpu_threads=torch.get_num_threads(),
        summary=summary,
    )
    write_text(method_dir / RESULT_FILE, json.dumps(asdict(result), indent=2))
    return result


def _child_command(name: str, settings: BenchmarkSettings) -> list[str]:
    command = [
        sys.executable, "-m", "innreg.cli", "benchmark",
        "--train", str(settings.train), "--test", str(settings.test), "--out", str(settings.out),
        "--methods", name, "--steps", str(settings.steps), "--device", settings.device,
        "--dim", str(settings.dim), "--one-method",
    ]  # fmt: skip
    if settings.config is not None:
        command += ["--config", str(settings.config)]
    if not settings.progress:
        command.append("--quiet")
    return command


def load_result(path: Path) -> MethodResult:
    """Read a ``result.json`` written by :func:`run_method`."""
    try:
        return MethodResult(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError) as err:
        raise InnregInputError(f"{path}: unreadable benchmark result ({err}); delete it to rerun the method") from err


def run_benchmark(settings: BenchmarkSettings) -> Path:
    """Fit and evaluate every method not finished yet, then write the tables; returns ``results.md``."""
    from innreg.baselines import METHODS

    unknown = [m for m in settings.methods if m not in METHODS]
    if unknown:
        raise InnregInputError(f"--methods: unknown method(s) {', '.join(unknown)}; known: {', '.join(METHODS)}")
    for path, what in ((settings.train, "--train"), (settings.test, "--test")):
        if not Path(path).is_file():
            raise InnregInputError(f"{what} {path}: manifest not found")
    settings.base_config()  # a bad --config fails here, once, not in every method's process
    settings.out.mkdir(parents=True, exist_ok=True)
    for name in settings.methods:
        if (settings.out / name / RESULT_FILE).exists():
            print(f"benchmark: {name}: finished earlier, kept ({settings.out / name / RESULT_FILE})")
            continue
        print(f"benchmark: {name}: fitting and evaluating", flush=True)
        if settings.isolate:
            status = subprocess.run(_child_command(name, settings)).returncode
            if status in (130, -signal.SIGINT):
                raise KeyboardInterrupt
            if status != 0 and not (settings.out / name / ERROR_FILE).exists():
                write_text(settings.out / name / ERROR_FILE, f"the method's process ended with status {status}\n")
        else:
            try:
                run_method(name, settings)
            except InnregInputError as err:
                print(f"benchmark: {name}: not run: {err}", file=sys.stderr)
    return write_tables(settings)


# ----------------------------------------------------------------------------------------------
# Tables
# ----------------------------------------------------------------------------------------------


def _label_ids(results: Sequence[MethodResult], prefix: str) -> list[str]:
    ids = {k[len(prefix):] for r in results for k in r.summary.get("per_label", {}) if k.startswith(prefix)}
    return sorted(ids, key=int)


def result_row(result: MethodResult) -> dict[str, Any]:
    """One flat ``results.csv`` row: summary metrics, per-label means and costs."""
    s = result.summary
    row: dict[str, Any] = {
        "method": result.method,
        "n_pairs": s.get("n_pairs"),
        "dice_mean": s.get("dice_mean"),
        "dice_std": s.get("dice_std"),
        "hd95_mean": s.get("hd95_mean"),
        "neg_jacobian_percent": 100.0 * s["neg_jacobian_fraction"] if "neg_jacobian_fraction" in s else None,
        "epe_mm": s.get("epe_mm"),
        "nmi_after": s.get("nmi_after"),
        "steps": result.steps,
        "train_minutes": result.train_seconds / 60.0,
        "seconds_per_pair": s.get("seconds_per_pair"),
        "peak_memory_mb": result.peak_memory_mb,
        "peak_gpu_memory_mb": result.peak_gpu_memory_mb,
    }
    row |= {k: v for k, v in sorted(s.get("per_label", {}).items())}
    return row


def _fmt(value: float | None, spec: str) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)


def results_markdown(settings: BenchmarkSettings, results: Sequence[MethodResult], errors: dict[str, str]) -> str:
    """The ``results.md`` text: main table, per-label Dice and HD95, notes."""
    from innreg.data import read_manifest
    from innreg.reports import markdown_table

    has_epe = any("epe_mm" in r.summary for r in results)
    main_rows = []
    for r in results:
        s = r.summary
        main_rows.append({
            "method": r.method,
            "Dice": f"{_fmt(s.get('dice_mean'), '.3f')} ± {_fmt(s.get('dice_std'), '.3f')}",
            "HD95 (mm)": _fmt(s.get("hd95_mean"), ".2f"),
            "Jac <= 0 (%)": _fmt(100.0 * s.get("neg_jacobian_fraction", float("nan")), ".3f"),
            "EPE (mm)": _fmt(s.get("epe_mm"), ".2f"),
            "train (min)": _fmt(r.train_seconds / 60.0, ".1f") if r.trains else "",
            "s/pair": _fmt(s.get("seconds_per_pair"), ".3f"),
            "peak RSS (MiB)": _fmt(r.peak_memory_mb, ".0f"),
        })  # fmt: skip
    columns = ["method", "Dice", "HD95 (mm)", "Jac <= 0 (%)"] + (["EPE (mm)"] if has_epe else [])
    columns += ["train (min)", "s/pair", "peak RSS (MiB)"]
    if any(r.peak_gpu_memory_mb is not None for r in results):
        for row, r in zip(main_rows, results):
            row["peak GPU (MiB)"] = _fmt(r.peak_gpu_memory_mb, ".0f")
        columns.append("peak GPU (MiB)")

    n_train, n_test = len(read_manifest(settings.train)), len(read_manifest(settings.test))
    lines = [
        "# Benchmark results",
        "",
        f"Train: `{settings.train}` ({n_train} pairs); test: `{settings.test}` ({n_test} pairs); "
        f"{settings.dim}D; {settings.steps} training steps for every learned method; learned methods ran on "
        f"{', '.join(sorted({f'`{r.device}`' for r in results if r.trains})) or '-'}; "
        f"{'/'.join(str(t) for t in sorted({r.cpu_threads for r in results}))} CPU threads.",
        "",
        markdown_table(main_rows, columns),
    ]
    for prefix, title, spec in (("dice_", "Dice per label", ".3f"), ("hd95_", "HD95 per label (mm)", ".2f")):
        ids = _label_ids(results, prefix)
        if ids:
            rows = [
                {"method": r.method} | {f"label {i}": _fmt(r.summary["per_label"].get(f"{prefix}{i}"), spec) for i in ids}
                for r in results
            ]
            lines += [f"## {title}", "", markdown_table(rows, ["method"] + [f"label {i}" for i in ids])]
    isolated = all(r.isolated for r in results)
    lines += [
        "## Notes",
        "",
        "- Dice: mean over the non-zero labels of the fixed label map per pair, then mean ± standard deviation "
        "over pairs. HD95 in mm from the fixed image's voxel spacing. Jac <= 0: share of voxels whose Jacobian "
        "determinant is not positive (folding). EPE: mean endpoint error against the true field inside the "
        "labelled region, where the manifest has one.",
        "- s/pair: wall seconds of the registration call alone (networks, or ANTs optimisation, plus warping), "
        "averaged over the test pairs. train (min): wall minutes spent in training steps.",
        "- peak RSS: maximum resident memory (`getrusage` max RSS) of "
        + ("the method's own process (interpreter, libraries, data, training and evaluation together)."
           if isolated else "the benchmark process, cumulative over the methods run before (not per method)."),
        "- All methods are scored by the same code (`innreg.evaluation.evaluate_pairs`).",
    ]  # fmt: skip
    for name, message in errors.items():
        lines.append(f"- `{name}` not run: {message}")
    lines += ["", "![Dice and HD95 per method](dice_bars.png)", ""]
    return "\n".join(lines)


def write_tables(settings: BenchmarkSettings) -> Path:
    """Write ``results.csv``, ``results.md`` and ``dice_bars.png`` over the methods finished so far."""
    from innreg.reports import metric_bars

    results, errors = [], {}
    for name in settings.methods:
        folder = settings.out / name
        if (folder / RESULT_FILE).exists():
            results.append(load_result(folder / RESULT_FILE))
        elif (folder / ERROR_FILE).exists():
            errors[name] = (folder / ERROR_FILE).read_text().strip()
    if not results:
        raise InnregInputError(f"--out {settings.out}: no method finished; " + "; ".join(f"{k}: {v}" for k, v in errors.items()))
    rows = [result_row(r) for r in results]
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, restval="")
    writer.writeheader()
    writer.writerows({k: ("" if v is None else v) for k, v in row.items()} for row in rows)
    write_text(settings.out / "results.csv", buf.getvalue())
    metric_bars(
        settings.out / "dice_bars.png",
        {r.method: {"dice_mean": r.summary["dice_mean"], "hd95_mean": r.summary["hd95_mean"]} for r in results},
        metrics=("dice_mean", "hd95_mean"),
        errors={r.method: {"dice_mean": r.summary.get("dice_std", float("nan"))} for r in results},
    )
    md_path = settings.out / "results.md"
    write_text(md_path, results_markdown(settings, results, errors))
    return md_path


# ----------------------------------------------------------------------------------------------
# Convergence
# ----------------------------------------------------------------------------------------------


def steps_to_fraction(steps: Sequence[int], dice: Sequence[float], fraction: float = 0.95, start: float = 0.0) -> int | None:
    """First evaluated step whose Dice reaches ``start + fraction * (final - start)``.

    With ``start = 0`` this is "steps to reach 95% of the final Dice"; with ``start`` the identity
    Dice it is "steps to reach 95% of the final gain". ``None`` for an empty curve.
    """
    if not steps:
        return None
    order = np.argsort(steps)
    xs, ys = np.asarray(steps)[order], np.asarray(dice, dtype=np.float64)[order]
    target = start + fraction * (ys[-1] - start)
    return int(xs[np.argmax(ys >= target)])


def _read_curve(path: Path) -> dict[int, float]:
    if not path.exists():
        return {}
    with path.open(newline="") as fh:
        return {int(row["step"]): float(row["dice_mean"]) for row in csv.DictReader(fh)}


def _write_curve(path: Path, curve: dict[int, float]) -> None:
    write_text(path, "step,dice_mean\n" + "".join(f"{s},{d:.6f}\n" for s, d in sorted(curve.items())))


def convergence_study(
    train: str | Path,
    test: str | Path,
    out: str | Path,
    steps: int,
    eval_every: int,
    methods: Sequence[str] = CONVERGENCE_METHODS,
    n_pairs: int = 10,
    device: str = "auto",
    dim: int = 2,
    config: str | Path | None = None,
    progress: bool = True,
) -> Path:
    """Test Dice against training step for learned methods (default: NMI barrier vs plain NMI).

    Every ``eval_every`` steps (and at the last) the model in training registers the first
    ``n_pairs`` test pairs; Dice is computed by the evaluation code. The training run of method ``m``
    is ``out/m/fit`` (so a later benchmark in the same ``out`` reuses it); when that already holds a
    model trained without a curve, the study trains again in ``out/m/convergence_run``. Curves are
    kept in ``out/m/convergence.csv`` and a rerun continues where it stopped.

    Returns:
        ``out/convergence.md`` (also written: ``convergence.csv`` with all curves, ``convergence.png``).
    """
    from innreg.baselines import make_method
    from innreg.baselines.configured import ConfiguredMethod
    from innreg.config import Config
    from innreg.data import load_pair, read_manifest, voxel_spacing
    from innreg.evaluation import overlap_metrics
    from innreg.inference import RegistrationModel
    from innreg.reports import line_plot, markdown_table

    if eval_every < 1:
        raise InnregInputError(f"--eval-every: must be a positive integer, got {eval_every}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    base = Config.from_yaml(config) if config else None
    records = read_manifest(test)[:n_pairs]
    pairs = [load_pair(r) for r in records]
    if any(p[2] is None or p[3] is None for p in pairs):
        raise InnregInputError(f"--test {test}: the convergence study needs moving_seg and fixed_seg columns")

    def mean_dice(segs: Sequence[np.ndarray]) -> float:
        return float(np.mean([
            overlap_metrics(seg, fixed_seg.array, voxel_spacing(fixed))["dice_mean"]
            for seg, (_, fixed, _, fixed_seg) in zip(segs, pairs)
        ]))  # fmt: skip

    identity_dice = mean_dice([moving_seg.array for _, _, moving_seg, _ in pairs])
    curves: dict[str, dict[int, float]] = {}
    for name in methods:
        method = make_method(name, dim=dim, config=base)
        if not isinstance(method, ConfiguredMethod):
            raise InnregInputError(f"--methods {name}: the convergence study needs a method trained by innreg train")
        curve_path = out / name / "convergence.csv"
        curve = _read_curve(curve_path)
        shared_dir, own_dir = out / name / "fit", out / name / "convergence_run"
        # The benchmark's training run carries the curve, unless it finished before any curve existed.
        finished_without_curve = (shared_dir / "model.pt").exists() and not curve_path.exists()
        run_dir = own_dir if own_dir.exists() or finished_without_curve else shared_dir
        # The curves follow the network's training, so they register without per-pair refinement.
        run_config = method.run_config(steps, device).updated(refine={"enabled": False})

        def on_step(state, logs, curve=curve, curve_path=curve_path, run_config=run_config) -> None:
            if state.step % eval_every and state.step != steps:
                return
            registrar = RegistrationModel(state.model, run_config, next(state.model.parameters()).device)
            curve[state.step] = mean_dice(
                [registrar.register(m.array, f.array, ms.array).warped_seg for m, f, ms, _ in pairs]
            )
            _write_curve(curve_path, curve)

        print(f"convergence: {name}: training {steps} steps, Dice on {len(pairs)} test pairs every {eval_every}", flush=True)
        method.fit(train, run_dir, steps, device, progress, on_step=on_step)
        curves[name] = {s: d for s, d in curve.items() if s <= steps}

    rows, summary = [], []
    for name, curve in curves.items():
        xs, ys = sorted(curve), [curve[s] for s in sorted(curve)]
        rows += [{"method": name, "step": s, "dice_mean": d} for s, d in zip(xs, ys)]
        summary.append({
            "method": name,
            "final Dice": ys[-1] if ys else None,
            "best Dice": max(ys) if ys else None,
            "steps to 95% of final Dice": steps_to_fraction(xs, ys),
            "steps to 95% of final gain over identity": steps_to_fraction(xs, ys, start=identity_dice),
        })  # fmt: skip
    write_text(out / "convergence.csv", "method,step,dice_mean\n" + "".join(
        f"{r['method']},{r['step']},{r['dice_mean']:.6f}\n" for r in rows))  # fmt: skip
    series = {name: (sorted(c), [c[s] for s in sorted(c)]) for name, c in curves.items()}
    series["identity"] = ([0, steps], [identity_dice, identity_dice])
    line_plot(out / "convergence.png", series, "training step", f"mean Dice ({len(pairs)} test pairs)", "Convergence")
    text = "\n".join([
        "# Convergence",
        "",
        f"Mean Dice on the first {len(pairs)} pairs of `{test}` during training on `{train}` "
        f"(evaluated every {eval_every} steps; identity Dice {identity_dice:.3f}).",
        "",
        markdown_table(summary, list(summary[0]) if summary else ["method"]),
        "![Dice against training step](convergence.png)",
        "",
    ])  # fmt: skip
    md_path = out / "convergence.md"
    write_text(md_path, text)
    return md_path


# ----------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def add_benchmark_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``innreg benchmark``."""
    from innreg.baselines import METHODS

    parser.add_argument("--train", required=True, type=Path, help="manifest CSV of the training pairs")
    parser.add_argument("--test", required=True, type=Path, help="manifest CSV of the test pairs (with moving_seg, fixed_seg)")
    parser.add_argument("--out", required=True, type=Path, help="output folder (results.csv, results.md, dice_bars.png, one folder per method)")
    parser.add_argument(
        "--methods",
        default=None,
        help=f"comma-separated methods (default: all; with --convergence: {','.join(CONVERGENCE_METHODS)}); "
        f"known: {', '.join(METHODS)}",
    )
    parser.add_argument("--steps", type=_positive, default=1200, help="training steps of every learned method (default: 1200)")
    parser.add_argument("--device", default="auto", help="compute device: auto, cpu or cuda[:k] (default: auto)")
    parser.add_argument("--dim", type=int, choices=(2, 3), default=2, help="2D or 3D images (default: 2)")
    parser.add_argument("--config", type=Path, help="YAML base config for the learned methods (their own switches override it)")
    parser.add_argument("--in-process", action="store_true", help="run all methods in this process (peak memory is then cumulative)")
    parser.add_argument("--convergence", action="store_true", help="Dice against training step instead of the comparison table")
    parser.add_argument("--eval-every", type=_positive, default=None, help="with --convergence: steps between evaluations (default: steps/20)")
    parser.add_argument("--convergence-pairs", type=_positive, default=10, help="with --convergence: test pairs evaluated (default: 10)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--one-method", action="store_true", help=argparse.SUPPRESS)  # internal: one method, this process


def run_benchmark_from_args(args: argparse.Namespace) -> Path:
    """Run what ``innreg benchmark`` was asked for; returns the written Markdown file."""
    default = CONVERGENCE_METHODS if args.convergence else DEFAULT_METHODS
    methods = tuple(m.strip() for m in args.methods.split(",") if m.strip()) if args.methods else default
    if not methods:
        raise InnregInputError("--methods: no method named")
    if args.convergence:
        md = convergence_study(
            args.train, args.test, args.out, args.steps, args.eval_every or max(1, args.steps // 20),
            methods=methods, n_pairs=args.convergence_pairs, device=args.device, dim=args.dim,
            config=args.config, progress=not args.quiet,
        )  # fmt: skip
        print(f"convergence: {md}")
        return md
    settings = BenchmarkSettings(
        train=args.train, test=args.test, out=args.out, methods=methods, steps=args.steps, device=args.device,
        dim=args.dim, config=args.config, progress=not args.quiet, isolate=not args.in_process,
    )  # fmt: skip
    if args.one_method:
        if len(methods) != 1:
            raise InnregInputError("--one-method: give exactly one method in --methods")
        run_method(methods[0], settings)
        return settings.out / methods[0] / RESULT_FILE
    md = run_benchmark(settings)
    print(f"results: {md}")
    return md
