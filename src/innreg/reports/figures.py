"""Figures of innreg: the one place that creates and saves matplotlib figures, plus curves and bars.

Every figure is a :class:`matplotlib.figure.Figure` on the Agg canvas (no pyplot global state), made
by :func:`new_figure` and written atomically by :func:`save_figure` (temporary file in the target
folder, then ``os.replace``), so a reader never sees a half-written PNG. matplotlib is imported only
when a figure is drawn: writing tables and Markdown summaries does not load it.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from innreg.atomic import write_bytes
from innreg.reports.arrays import moving_average
from innreg.reports.tables import record_keys

if TYPE_CHECKING:
    from matplotlib.figure import Figure

PathLike = str | os.PathLike

_PNG_DPI = 110


def new_figure(size: tuple[float, float]) -> Figure:
    """A constrained-layout :class:`~matplotlib.figure.Figure` of ``size`` inches, not registered with pyplot."""
    from matplotlib.figure import Figure

    return Figure(figsize=size, layout="constrained")


def save_figure(fig: Figure, path: PathLike, dpi: int = _PNG_DPI) -> Path:
    """Write ``fig`` as a PNG at ``dpi``, atomically; returns the path."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return write_bytes(path, buffer.getvalue())


def _history_columns(
    history: Mapping[str, Sequence[float]] | Sequence[Mapping[str, float]],
) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    """Per-term value arrays, plus the ``step`` column when the records carry one."""
    if isinstance(history, Mapping):
        columns = {name: np.asarray(values, dtype=np.float64) for name, values in history.items()}
    else:
        columns = {n: np.array([r.get(n, np.nan) for r in history], dtype=np.float64) for n in record_keys(history)}
    steps = columns.pop("step", None)
    return columns, steps


def loss_curve(
    path: PathLike,
    history: Mapping[str, Sequence[float]] | Sequence[Mapping[str, float]],
    steps: Sequence[float] | None = None,
) -> Path:
    """Write a PNG with one panel per loss term: raw values (faint) and a trailing moving average.

    The y axis is logarithmic for a term whose finite values are all positive.

    Args:
        path: output ``.png`` file.
        history: ``{term: [value per record]}`` or a list of records ``{term: value}`` (a term missing
            from a record counts as NaN, not drawn). A ``step`` entry is used as the x axis.
        steps: x values, one per record; defaults to the ``step`` entry, else ``0, 1, 2, ...``.

    Returns:
        The written path.
    """
    columns, logged_steps = _history_columns(history)
    if not columns:
        raise ValueError("loss_curve needs at least one loss term")
    lengths = {len(v) for v in columns.values()}
    if len(lengths) != 1:
        raise ValueError(f"all loss terms need the same number of records, got lengths {sorted(lengths)}")
    length = lengths.pop()
    x = np.asarray(steps if steps is not None else
                   logged_steps if logged_steps is not None else np.arange(length), dtype=np.float64)
    if x.shape != (length,):
        raise ValueError(f"steps has {x.size} entries for {length} records")

    ncols = min(3, len(columns))
    nrows = math.ceil(len(columns) / ncols)
    fig = new_figure((4.2 * ncols, 3.0 * nrows))
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    window = max(1, length // 20)
    for ax, (name, values) in zip(axes, columns.items()):
        finite = np.isfinite(values)
        ax.plot(x[finite], values[finite], color="#1f77b4", alpha=0.3, linewidth=0.8, label="raw")
        smoothed = moving_average(values, window)
        ax.plot(x, smoothed, color="#1f77b4", linewidth=1.6, label=f"mean of {window}")
        if finite.any() and np.all(values[finite] > 0):
            ax.set_yscale("log")
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("step")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    for ax in axes[len(columns):]:
        ax.set_axis_off()
    return save_figure(fig, path)


def metric_bars(
    path: PathLike,
    table: Mapping[str, Mapping[str, float]],
    metrics: Sequence[str] = ("dice_mean", "hd95_mean"),
    errors: Mapping[str, Mapping[str, float]] | None = None,
) -> Path:
    """Write a PNG comparing methods: one bar panel per metric, one bar per method.

    Args:
        path: output ``.png`` file.
        table: ``{method: {metric: value}}``; a method without a metric gets no bar ("n/a").
        metrics: the metrics to plot, one panel each; each must appear for at least one method.
        errors: optional ``{method: {metric: std}}`` drawn as error bars.

    Returns:
        The written path.
    """
    if not table:
        raise ValueError("metric_bars needs at least one method")
    errors = errors or {}
    for metric in metrics:
        if not any(metric in row for row in table.values()):
            available = sorted({key for row in table.values() for key in row})
            raise ValueError(f"metric {metric!r} appears for no method (have {available})")
    methods = list(table)
    positions = np.arange(len(methods))
    from matplotlib import colormaps

    colors = colormaps["tab10"].colors
    fig = new_figure((max(3.5, 0.8 * len(methods) + 1.5) * len(metrics), 3.6))
    axes = fig.subplots(1, len(metrics), squeeze=False).ravel()
    for ax, metric in zip(axes, metrics):
        values = np.array([table[m].get(metric, np.nan) for m in methods], dtype=np.float64)
        stds = np.array([errors.get(m, {}).get(metric, np.nan) for m in methods], dtype=np.float64)
        has_value, has_std = np.isfinite(values), np.isfinite(stds)
        bar_colors = [colors[i % len(colors)] for i in positions]
        ax.bar(positions, np.where(has_value, values, 0.0), color=bar_colors)
        with_error = has_value & has_std
        if with_error.any():
            ax.errorbar(positions[with_error], values[with_error], yerr=stds[with_error], fmt="none",
                        ecolor="black", capsize=3)
        for position, value, std in zip(positions, values, stds):
            top = value + std if np.isfinite(std) else value
            ax.annotate("n/a" if not np.isfinite(value) else f"{value:.3f}" if abs(value) < 1 else f"{value:.2f}",
                        (position, top if np.isfinite(top) else 0.0), xytext=(0, 2),
                        textcoords="offset points", ha="center", va="bottom", fontsize=8)
        crowded = len(methods) > 3  # slant long method names so they do not overlap
        ax.set_xticks(positions, methods, rotation=30 if crowded else 0, ha="right" if crowded else "center")
        ax.set_title(metric, fontsize=10)
        ax.grid(True, axis="y", alpha=0.3)
        ax.margins(y=0.15)
    return save_figure(fig, path)


def line_plot(
    path: PathLike,
    series: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    xlabel: str,
    ylabel: str,
    title: str,
) -> Path:
    """Write a PNG with one line per series, e.g. Dice against training step.

    Args:
        path: output ``.png`` file.
        series: ``{name: (x values, y values)}``, both sequences of equal length.
        xlabel: x axis label.
        ylabel: y axis label.
        title: plot title.

    Returns:
        The written path.
    """
    if not series:
        raise ValueError("line_plot needs at least one series")
    fig = new_figure((5.5, 3.8))
    ax = fig.add_subplot()
    for name, (x, y) in series.items():
        x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
        if x.shape != y.shape or x.ndim != 1:
            raise ValueError(f"series {name!r}: x and y must be 1D of equal length, got {x.shape}, {y.shape}")
        ax.plot(x, y, marker="o" if x.size <= 30 else None, markersize=3, label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, path)
