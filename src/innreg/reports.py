"""Figures, tables and self-contained HTML reports for registration runs and benchmarks.

Everything here renders with :class:`matplotlib.figure.Figure` on the Agg canvas (no pyplot global
state) and writes each file atomically (temporary file in the target folder, then ``os.replace``),
so a reader never sees a half-written PNG or HTML page.

Conventions:

* Images are 2D ``(H, W)`` or 3D ``(X, Y, Z)`` arrays (numpy, or torch tensors, which are detached
  and copied to the CPU). A 3D input is shown by its middle slice along ``axis`` (default the last
  axis, i.e. the axial plane of a RAS volume); see :func:`central_slice`.
* Array axis 0 is drawn as rows (top to bottom) and axis 1 as columns (left to right).
* Displacement fields are ``(dim, *spatial)`` in voxels, channel ``k`` along array axis ``k``, pull-back
  (``warped(x) = moving(x + ddf(x))``), as in :mod:`innreg.core.warp`. A 3D field is sliced like the
  images and its out-of-plane component dropped; see :func:`central_field_slice`.
"""

from __future__ import annotations

import base64
import html
import io
import math
import mimetypes
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection
from matplotlib.colors import ListedColormap, Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from innreg.atomic import write_bytes
from innreg.errors import InnregInputError
from innreg.metrics import jacobian_determinant

PathLike = str | os.PathLike

_PNG_DPI = 110
_PANEL_INCHES = 3.0
_FIXED_CONTOUR_COLOR = "#ff3b30"  # red: fixed labels (the target)
_WARPED_CONTOUR_COLOR = "#00d5ff"  # cyan: warped moving labels
_FOLDING_COLOR = "#ffd400"  # yellow: stands out on the blue (J < 1) end of the Jacobian map


# ----------------------------------------------------------------------------------------------
# Files
# ----------------------------------------------------------------------------------------------


def _save_figure(fig: Figure, path: PathLike) -> Path:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=_PNG_DPI)
    return write_bytes(path, buffer.getvalue())


# ----------------------------------------------------------------------------------------------
# Array helpers
# ----------------------------------------------------------------------------------------------


def _to_numpy(array: Any) -> np.ndarray:
    """A float numpy copy of an array-like or a torch tensor (detached, on the CPU)."""
    if isinstance(array, torch.Tensor):
        array = array.detach().cpu().numpy()
    return np.asarray(array, dtype=np.float64)


def central_slice(array: Any, axis: int = -1) -> np.ndarray:
    """The 2D middle slice of a 3D array along ``axis``; a 2D array passes through unchanged.

    Args:
        array: ``(H, W)`` or ``(X, Y, Z)`` array or tensor.
        axis: spatial axis sliced when ``array`` is 3D (index ``size // 2``).

    Returns:
        ``(H, W)`` float array; for 3D input the remaining axes keep their order.
    """
    array = _to_numpy(array)
    if array.ndim == 2:
        return array
    if array.ndim != 3:
        raise ValueError(f"expected a 2D or 3D image, got shape {array.shape}")
    return np.take(array, array.shape[axis] // 2, axis=axis)


def central_field_slice(ddf: Any, axis: int = -1) -> np.ndarray:
    """The in-plane part of the middle slice of a displacement field.

    Args:
        ddf: ``(2, H, W)`` or ``(3, X, Y, Z)`` displacement, channel k along spatial axis k.
        axis: spatial axis sliced when the field is 3D.

    Returns:
        ``(2, H, W)`` field: the slice at ``size // 2`` along ``axis`` with the component along
        ``axis`` (out of plane) dropped, so channel k again displaces axis k of the 2D slice.
    """
    ddf = _to_numpy(ddf)
    dim = ddf.shape[0] if ddf.ndim else 0
    if dim not in (2, 3) or ddf.ndim != dim + 1:
        raise ValueError(f"ddf must have shape (dim, *spatial) with dim 2 or 3, got {ddf.shape}")
    if dim == 2:
        return ddf
    spatial_axis = axis % 3
    in_plane = [k for k in range(3) if k != spatial_axis]
    sliced = np.take(ddf, ddf.shape[spatial_axis + 1] // 2, axis=spatial_axis + 1)
    return sliced[in_plane]


def checkerboard(first: Any, second: Any, tiles: int = 8) -> np.ndarray:
    """Interleave two same-shaped images in a checkerboard.

    Each axis of size ``n`` is cut into tiles of ``ceil(n / tiles)`` pixels (so about ``tiles``
    tiles per axis); tile ``(i, j, ...)`` comes from ``first`` when ``i + j + ...`` is even and from
    ``second`` otherwise.

    Args:
        first: image of any dimension.
        second: image of the same shape.
        tiles: number of tiles per axis, at least 1.

    Returns:
        Float array of the common shape.
    """
    first, second = _to_numpy(first), _to_numpy(second)
    if first.shape != second.shape:
        raise ValueError(f"checkerboard needs equal shapes, got {first.shape} and {second.shape}")
    if tiles < 1:
        raise ValueError(f"tiles must be >= 1, got {tiles}")
    parity = np.zeros(first.shape, dtype=np.int64)
    for axis, size in enumerate(first.shape):
        tile_size = math.ceil(size / tiles)
        index = np.arange(size) // tile_size
        parity = parity + index.reshape([-1 if a == axis else 1 for a in range(first.ndim)])
    return np.where(parity % 2 == 0, first, second)


def deformed_grid_lines(ddf: Any, step: int = 8) -> list[np.ndarray]:
    """Polylines of a regular grid moved by a 2D pull-back field, in plotting coordinates.

    Grid lines run along every ``step``-th row and column (plus the last row and column); each point
    ``x`` of a line is drawn at ``x + ddf(x)``, i.e. where the warp samples the moving image.

    Args:
        ddf: ``(2, H, W)`` displacement in voxels, channel 0 along rows, channel 1 along columns.
        step: spacing of the grid lines in pixels.

    Returns:
        List of ``(n, 2)`` arrays of ``(column, row)`` points (matplotlib ``(x, y)`` order): first
        the lines of constant row, then those of constant column.
    """
    ddf = _to_numpy(ddf)
    if ddf.ndim != 3 or ddf.shape[0] != 2:
        raise ValueError(f"deformed_grid_lines needs a (2, H, W) field, got {ddf.shape}")
    if step < 1:
        raise ValueError(f"step must be >= 1, got {step}")
    height, width = ddf.shape[1:]
    rows_pos = np.arange(height)[:, None] + ddf[0]
    cols_pos = np.arange(width)[None, :] + ddf[1]
    row_ids = np.unique(np.r_[np.arange(0, height, step), height - 1])
    col_ids = np.unique(np.r_[np.arange(0, width, step), width - 1])
    lines = [np.stack([cols_pos[r], rows_pos[r]], axis=1) for r in row_ids]
    lines += [np.stack([cols_pos[:, c], rows_pos[:, c]], axis=1) for c in col_ids]
    return lines


def moving_average(values: Sequence[float], window: int) -> np.ndarray:
    """Trailing moving average: output ``i`` is the mean of the finite values among the last ``window``.

    Args:
        values: 1D sequence; NaN and inf entries are ignored (an all-non-finite window gives NaN).
        window: number of samples averaged, at least 1.

    Returns:
        Float array of the same length.
    """
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    values = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(values)
    sums = np.concatenate([[0.0], np.cumsum(np.where(finite, values, 0.0))])
    counts = np.concatenate([[0], np.cumsum(finite)])
    end = np.arange(1, len(values) + 1)
    start = np.maximum(end - window, 0)
    count = counts[end] - counts[start]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, (sums[end] - sums[start]) / count, np.nan)


def _display_range(image: np.ndarray) -> tuple[float, float]:
    """Robust intensity window (1st-99th percentile) so a few bright voxels do not wash out the image."""
    finite = image[np.isfinite(image)]
    if finite.size == 0:
        return 0.0, 1.0
    low, high = np.percentile(finite, [1, 99])
    if high <= low:
        low, high = float(finite.min()), float(finite.max())
    if high <= low:
        high = low + 1.0
    return float(low), float(high)


def _normalise(image: np.ndarray) -> np.ndarray:
    low, high = _display_range(image)
    return np.clip((image - low) / (high - low), 0.0, 1.0)


def _default_grid_step(shape: tuple[int, ...]) -> int:
    """About 8 px, fewer for tiny images (>= 4 lines) and more for large ones (<= ~48 lines)."""
    if min(shape) < 32:
        return max(1, min(shape) // 4)
    return max(8, round(max(shape) / 48))


# ----------------------------------------------------------------------------------------------
# Registration overview
# ----------------------------------------------------------------------------------------------


def _show_image(ax: Axes, image: np.ndarray, title: str) -> None:
    low, high = _display_range(image)
    ax.imshow(image, cmap="gray", vmin=low, vmax=high, interpolation="nearest")
    ax.set_title(title, fontsize=10)
    ax.set_axis_off()


def _draw_label_contours(ax: Axes, labels: np.ndarray, color: str, linestyle: str = "solid") -> None:
    for value in np.unique(labels):
        if value == 0:
            continue
        mask = (labels == value).astype(np.float64)
        ax.contour(mask, levels=[0.5], colors=[color], linewidths=1.0, linestyles=linestyle)


def _draw_grid(ax: Axes, ddf: np.ndarray, shape: tuple[int, int], step: int) -> None:
    lines = deformed_grid_lines(ddf, step)
    ax.add_collection(LineCollection(lines, colors="#1f4e99", linewidths=0.8))
    ax.set_xlim(-0.5, shape[1] - 0.5)
    ax.set_ylim(shape[0] - 0.5, -0.5)  # rows top to bottom, as in imshow
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    magnitude = float(np.sqrt((ddf**2).sum(axis=0)).max())
    ax.set_title(f"sampling grid x+u(x), step {step}\nmax |u| = {magnitude:.2f} px", fontsize=10)


def _draw_jacobian(fig: Figure, ax: Axes, jac: np.ndarray, folded_fraction: float) -> None:
    deviation = np.abs(jac[np.isfinite(jac)] - 1.0)
    half_range = max(float(np.percentile(deviation, 99.5)) if deviation.size else 0.0, 1e-3)
    norm = Normalize(vmin=1.0 - half_range, vmax=1.0 + half_range)
    shown = ax.imshow(jac, cmap="RdBu_r", norm=norm, interpolation="nearest")
    folded = jac <= 0
    if folded.any():
        ax.imshow(
            np.ma.masked_where(~folded, np.ones_like(jac)),
            cmap=ListedColormap([_FOLDING_COLOR]),
            vmin=0,
            vmax=1,
            interpolation="nearest",
        )
    fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.03, extend="both")
    ax.set_title(
        f"Jacobian det (centre 1)\nfolding J<=0 (yellow): {int(folded.sum())} px here, "
        f"{100 * folded_fraction:.2f}% total",
        fontsize=10,
    )
    ax.set_axis_off()


def _check_same_shape(named: Mapping[str, np.ndarray | None], shape: tuple[int, ...]) -> None:
    for name, array in named.items():
        if array is not None and array.shape != shape:
            raise ValueError(f"{name} has shape {array.shape}, expected {shape} (the fixed image's)")


def registration_overview(
    path: PathLike,
    moving: Any,
    fixed: Any,
    translated: Any,
    warped: Any,
    ddf: Any,
    jacobian: Any | None = None,
    moving_seg: Any | None = None,
    fixed_seg: Any | None = None,
    warped_seg: Any | None = None,
    title: str | None = None,
    axis: int = -1,
    grid_step: int | None = None,
) -> Path:
    """Write a PNG summarising one registration.

    Panels: moving, fixed, translated moving, warped moving, checkerboard of warped vs fixed (about
    8 tiles per axis, each image contrast-normalised), the deformed sampling grid ``x + ddf(x)``, the
    Jacobian determinant (diverging map centred at 1, folding ``J <= 0`` in yellow) and, when any
    segmentation is given, label contours: fixed labels (red, solid) and warped labels (cyan, dashed)
    on the warped image. Segmentations are also outlined on the moving and fixed panels.

    Args:
        path: output ``.png`` file.
        moving: ``(H, W)`` or ``(X, Y, Z)`` moving image.
        fixed: fixed image, same shape.
        translated: moving image translated into the fixed modality, same shape.
        warped: moving image warped onto the fixed grid, same shape.
        ddf: ``(dim, *spatial)`` pull-back displacement in voxels on the fixed grid.
        jacobian: ``(*spatial)`` Jacobian determinant; computed from ``ddf`` (on the whole field, so
            3D derivatives across slices are included) when omitted.
        moving_seg: integer label map of the moving image (0 = background), same shape.
        fixed_seg: label map of the fixed image.
        warped_seg: moving labels warped onto the fixed grid.
        title: figure title.
        axis: spatial axis sliced for 3D inputs (middle slice), see :func:`central_slice`.
        grid_step: spacing of the drawn grid in pixels; about 8 by default.

    Returns:
        The written path.
    """
    images = {name: _to_numpy(a) for name, a in
              {"moving": moving, "fixed": fixed, "translated": translated, "warped": warped}.items()}
    shape = images["fixed"].shape
    if len(shape) not in (2, 3):
        raise ValueError(f"fixed must be a 2D or 3D image, got shape {shape}")
    segs = {name: None if a is None else _to_numpy(a) for name, a in
            {"moving_seg": moving_seg, "fixed_seg": fixed_seg, "warped_seg": warped_seg}.items()}
    ddf = _to_numpy(ddf)
    if ddf.shape != (len(shape), *shape):
        raise ValueError(f"ddf has shape {ddf.shape}, expected {(len(shape), *shape)} for images {shape}")
    jac_full = None if jacobian is None else _to_numpy(jacobian)
    _check_same_shape({**images, **segs, "jacobian": jac_full}, shape)

    if jac_full is None:
        jac_full = jacobian_determinant(torch.from_numpy(ddf)[None])[0].numpy()
    folded_fraction = float(np.mean(jac_full <= 0))
    view = {name: central_slice(a, axis) for name, a in images.items()}
    seg_view = {name: None if a is None else central_slice(a, axis) for name, a in segs.items()}
    jac = central_slice(jac_full, axis)
    ddf2 = central_field_slice(ddf, axis)
    plane = view["fixed"].shape
    step = grid_step if grid_step is not None else _default_grid_step(plane)
    has_seg = any(s is not None for s in seg_view.values())

    n_panels = 8 if has_seg else 7
    ncols = 4
    nrows = math.ceil(n_panels / ncols)
    panel_height = _PANEL_INCHES * max(plane[0] / plane[1], 0.5)
    title_height = 0.4 if title or len(shape) == 3 else 0.0
    fig = Figure(figsize=(ncols * _PANEL_INCHES, nrows * panel_height + title_height), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()

    _show_image(axes[0], view["moving"], "moving")
    if seg_view["moving_seg"] is not None:
        _draw_label_contours(axes[0], seg_view["moving_seg"], _WARPED_CONTOUR_COLOR)
    _show_image(axes[1], view["fixed"], "fixed")
    if seg_view["fixed_seg"] is not None:
        _draw_label_contours(axes[1], seg_view["fixed_seg"], _FIXED_CONTOUR_COLOR)
    _show_image(axes[2], view["translated"], "translated moving")
    _show_image(axes[3], view["warped"], "warped moving")
    board = checkerboard(_normalise(view["warped"]), _normalise(view["fixed"]))
    _show_image(axes[4], board, "checkerboard warped / fixed")
    _draw_grid(axes[5], ddf2, plane, step)
    _draw_jacobian(fig, axes[6], jac, folded_fraction)
    if has_seg:
        _show_image(axes[7], view["warped"], "labels on warped moving")
        handles = []
        if seg_view["fixed_seg"] is not None:
            _draw_label_contours(axes[7], seg_view["fixed_seg"], _FIXED_CONTOUR_COLOR)
            handles.append(Line2D([], [], color=_FIXED_CONTOUR_COLOR, label="fixed labels"))
        if seg_view["warped_seg"] is not None:
            _draw_label_contours(axes[7], seg_view["warped_seg"], _WARPED_CONTOUR_COLOR, "dashed")
            handles.append(Line2D([], [], color=_WARPED_CONTOUR_COLOR, ls="--", label="warped labels"))
        if handles:
            axes[7].legend(handles=handles, loc="lower right", fontsize=7, framealpha=0.7)
    for ax in axes[n_panels:]:
        ax.set_axis_off()
    if len(shape) == 3:
        where = f"slice {shape[axis] // 2} along axis {axis % 3} of a {'x'.join(map(str, shape))} volume"
        title = f"{title} ({where})" if title else where
    if title:
        fig.suptitle(title, fontsize=12)
    return _save_figure(fig, path)


# ----------------------------------------------------------------------------------------------
# Curves and bars
# ----------------------------------------------------------------------------------------------


def _history_columns(
    history: Mapping[str, Sequence[float]] | Sequence[Mapping[str, float]],
) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    """Per-term value arrays, plus the ``step`` column when the records carry one."""
    if isinstance(history, Mapping):
        columns = {name: np.asarray(values, dtype=np.float64) for name, values in history.items()}
    else:
        names: list[str] = []
        for record in history:
            names += [k for k in record if k not in names]
        columns = {n: np.array([r.get(n, np.nan) for r in history], dtype=np.float64) for n in names}
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
    fig = Figure(figsize=(4.2 * ncols, 3.0 * nrows), layout="constrained")
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
    return _save_figure(fig, path)


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
    colors = colormaps["tab10"].colors
    fig = Figure(figsize=(max(3.5, 0.8 * len(methods) + 1.5) * len(metrics), 3.6), layout="constrained")
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
            ax.annotate("n/a" if not np.isfinite(value) else f"{value:.3g}",
                        (position, top if np.isfinite(top) else 0.0), xytext=(0, 2),
                        textcoords="offset points", ha="center", va="bottom", fontsize=8)
        crowded = len(methods) > 3  # slant long method names so they do not overlap
        ax.set_xticks(positions, methods, rotation=30 if crowded else 0, ha="right" if crowded else "center")
        ax.set_title(metric, fontsize=10)
        ax.grid(True, axis="y", alpha=0.3)
        ax.margins(y=0.15)
    return _save_figure(fig, path)


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
    fig = Figure(figsize=(5.5, 3.8), layout="constrained")
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
    return _save_figure(fig, path)


# ----------------------------------------------------------------------------------------------
# Tables and HTML
# ----------------------------------------------------------------------------------------------


def _format_cell(value: Any, float_format: str) -> str:
    """Floats through ``float_format``; missing (``None``) as an empty cell; anything else via ``str``."""
    if value is None:
        return ""
    if isinstance(value, (float, np.floating)):
        return float_format.format(float(value))
    return str(value)


def markdown_table(
    rows: Sequence[Mapping[str, Any]], columns: Sequence[str], float_format: str = "{:.3f}"
) -> str:
    """Render rows as a GitHub-flavoured Markdown table.

    Args:
        rows: records; a column missing from a record gives an empty cell.
        columns: column keys, in order, also used as the header.
        float_format: format for float values (ints, strings and bools are printed as they are).

    Returns:
        The table, one line per row, ending with a newline; ``|`` in cells is escaped.
    """
    if not columns:
        raise ValueError("markdown_table needs at least one column")

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    lines = [line(list(columns)), "|" + "|".join(" --- " for _ in columns) + "|"]
    lines += [line([_format_cell(row.get(c), float_format) for c in columns]) for row in rows]
    return "\n".join(lines) + "\n"


@dataclass
class ReportSection:
    """One section of an HTML report.

    Attributes:
        heading: section heading.
        text: plain text; blank lines separate paragraphs; HTML special characters are escaped.
        rows: optional table records.
        columns: table columns in order; defaults to the keys of the records in first-seen order.
        images: PNG (or JPEG/SVG) files embedded inline as base64 data URIs, captioned by file name.
    """

    heading: str
    text: str = ""
    rows: Sequence[Mapping[str, Any]] | None = None
    columns: Sequence[str] | None = None
    images: Sequence[PathLike] = field(default_factory=list)


_CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; color: #222;
       max-width: 1100px; margin: 2em auto; padding: 0 1em; line-height: 1.5; }
h1 { border-bottom: 2px solid #ddd; padding-bottom: .3em; }
h2 { margin-top: 2em; border-bottom: 1px solid #eee; padding-bottom: .2em; }
table { border-collapse: collapse; margin: 1em 0; font-size: .92em; }
th, td { border: 1px solid #ddd; padding: .35em .7em; text-align: right; }
th { background: #f4f6f8; }
td:first-child, th:first-child { text-align: left; }
tr:nth-child(even) td { background: #fafbfc; }
figure { margin: 1em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #666; font-size: .85em; }
""".strip()


def _html_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None) -> str:
    if columns is None:
        columns = []
        for row in rows:
            columns += [k for k in row if k not in columns]
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_format_cell(row.get(c), '{:.3f}'))}</td>" for c in columns) + "</tr>"
        for row in rows
    )
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>{body}</tbody>\n</table>"


def _image_data_uri(image: PathLike) -> str:
    image = Path(image)
    mime = mimetypes.guess_type(image.name)[0]
    if mime not in ("image/png", "image/jpeg", "image/svg+xml"):
        raise InnregInputError(f"{image}: report images must be .png, .jpg or .svg")
    try:
        data = image.read_bytes()
    except OSError as error:
        raise InnregInputError(f"{image}: cannot read report image ({error.strerror})") from error
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def html_report(path: PathLike, title: str, sections: Sequence[ReportSection]) -> Path:
    """Write a single self-contained HTML file (inline CSS, images as base64 data URIs).

    Args:
        path: output ``.html`` file.
        title: page title and top heading (escaped).
        sections: the sections, in order.

    Returns:
        The written path.
    """
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        f'<head><meta charset="utf-8"><title>{html.escape(title)}</title><style>\n{_CSS}\n</style></head>',
        "<body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    for section in sections:
        parts.append(f"<section>\n<h2>{html.escape(section.heading)}</h2>")
        for paragraph in section.text.split("\n\n"):
            if paragraph.strip():
                parts.append(f"<p>{html.escape(paragraph.strip())}</p>")
        if section.rows is not None:
            parts.append(_html_table(section.rows, section.columns))
        for image in section.images:
            caption = html.escape(Path(image).name)
            parts.append(
                f'<figure><img src="{_image_data_uri(image)}" alt="{caption}">'
                f"<figcaption>{caption}</figcaption></figure>"
            )
        parts.append("</section>")
    parts += ["</body>", "</html>", ""]
    return write_bytes(path, "\n".join(parts).encode("utf-8"))
