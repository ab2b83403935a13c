"""The benchmark's tables: ``results.csv``, ``results.md`` and ``dice_bars.png`` over the finished methods."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

from innreg.atomic import write_text
from innreg.benchmark.settings import ERROR_FILE, EVAL_DIR, RESULT_FILE, BenchmarkSettings, MethodResult, load_result
from innreg.errors import InnregInputError
from innreg.reports.tables import csv_text, record_keys


def _per_label(result: MethodResult, metric: str) -> dict[int, float]:
    return result.summary.per_label_dice if metric == "dice" else result.summary.per_label_hd95


def result_row(result: MethodResult) -> dict[str, Any]:
    """One flat ``results.csv`` row: summary metrics, per-label means and costs."""
    s = result.summary
    row: dict[str, Any] = {
        "method": result.method,
        "n_pairs": s.n_pairs,
        "dice_mean": s.dice_mean,
        "dice_std": s.dice_std,
        "hd95_mean": s.hd95_mean,
        "neg_jacobian_percent": 100.0 * s.neg_jacobian_fraction,
        "epe_mm": s.epe_mm,
        "nmi_after": s.nmi_after,
        "steps": result.steps,
        "train_minutes": result.train_seconds / 60.0,
        "seconds_per_pair": s.seconds_per_pair,
        "peak_memory_mb": result.peak_memory_mb,
        "peak_gpu_memory_mb": result.peak_gpu_memory_mb,
    }
    return row | s.per_label()


def _fmt(value: float | None, spec: str) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)


PAIRED_REFERENCE = "innreg"


def paired_rows(settings: BenchmarkSettings, results: Sequence[MethodResult], reference: str = PAIRED_REFERENCE) -> list[dict[str, str]]:
    """Each method's Dice against ``reference`` on the same test pairs (:func:`innreg.paired.paired_by_key`);
    none when ``reference`` did not finish."""
    from innreg.paired import paired_by_key
    from innreg.results import read_per_pair

    if reference not in {r.method for r in results}:
        return []
    ref = read_per_pair(settings.out / reference / EVAL_DIR)
    rows = []
    for r in results:
        if r.method == reference:
            continue
        try:
            d = paired_by_key(ref, read_per_pair(settings.out / r.method / EVAL_DIR))
        except ValueError:  # under two shared pairs: nothing to pair
            continue
        rows.append({
            "method": r.method,
            f"Dice {reference} - method": f"{d.mean:+.3f}",
            f"{d.confidence:.0%} CI": f"{d.low:+.3f} to {d.high:+.3f}",
            "Wilcoxon p": f"{d.p_value:.2g}",
            f"{reference} higher / lower": f"{d.higher} / {d.lower} of {d.n}",
        })  # fmt: skip
    return rows


def results_markdown(settings: BenchmarkSettings, results: Sequence[MethodResult], errors: dict[str, str]) -> str:
    """The ``results.md`` text: main table, per-label Dice and HD95, notes."""
    from innreg.data import read_manifest
    from innreg.reports import markdown_table

    has_epe = any(r.summary.epe_mm is not None for r in results)
    main_rows = []
    for r in results:
        s = r.summary
        main_rows.append({
            "method": r.method,
            "Dice": f"{_fmt(s.dice_mean, '.3f')} ± {_fmt(s.dice_std, '.3f')}",
            "HD95 (mm)": _fmt(s.hd95_mean, ".2f"),
            "Jac <= 0 (%)": _fmt(100.0 * s.neg_jacobian_fraction, ".3f"),
            "EPE (mm)": _fmt(s.epe_mm, ".2f"),
            "train (min)": _fmt(r.train_seconds / 60.0, ".1f") if r.trains else "",
            "s/pair": _fmt(s.seconds_per_pair, ".3f"),
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
    for metric, title, spec in (("dice", "Dice per label", ".3f"), ("hd95", "HD95 per label (mm)", ".2f")):
        ids = sorted({i for r in results for i in _per_label(r, metric)})
        if ids:
            rows = [
                {"method": r.method} | {f"label {i}": _fmt(_per_label(r, metric).get(i), spec) for i in ids}
                for r in results
            ]
            lines += [f"## {title}", "", markdown_table(rows, ["method"] + [f"label {i}" for i in ids])]
    paired = paired_rows(settings, results)
    if paired:
        lines += [f"## Paired against `{PAIRED_REFERENCE}`", "", markdown_table(paired, list(paired[0]))]
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
        "- All methods are scored by the same code (`innreg.evaluation.evaluate`).",
        f"- Paired: mean over the test pairs of `{PAIRED_REFERENCE}`'s Dice minus the method's, its bootstrap percentile "
        "interval and the two-sided Wilcoxon signed-rank test (`innreg compare A B` for any two evaluations).",
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
    write_text(settings.out / "results.csv", csv_text(rows, record_keys(rows)))
    dice, hd95 = "Dice, mean over labels (SD over pairs)", "HD95 (mm), mean over labels"  # the panels' titles
    metric_bars(
        settings.out / "dice_bars.png",
        {r.method: {dice: r.summary.dice_mean, hd95: r.summary.hd95_mean} for r in results},
        metrics=(dice, hd95),
        errors={r.method: {dice: r.summary.dice_std} for r in results},
    )
    md_path = settings.out / "results.md"
    write_text(md_path, results_markdown(settings, results, errors))
    return md_path
