"""Contact sheet of phantom pairs, drawn with the figure helpers of :mod:`innreg.reports.figures`.

Per pair (one row): the moving and fixed images with brain-label outlines, the moving anatomy in the
fixed contrast (the translation's ground truth), the head labels, and the misalignment: the fixed
grid mapped through the true field, ``x + ddf(x)``, drawn on the moving image.
3D pairs show their middle axial slice with anterior up.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from innreg.data.phantom.head import HeadLabel
from innreg.reports.arrays import display_range
from innreg.reports.figures import new_figure, save_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure

_OUTLINE = dict(levels=[0.5, 1.5, 2.5], colors=["#4fc3f7", "#ffd54f", "#ef5350"], linewidths=0.6)
# One colour per head label (0 transparent-black, then outer CSF ... air).
_HEAD_COLOURS = ["#000000", "#4fc3f7", "#f5f5f5", "#c49a6c", "#d84315", "#ffee58", "#f48fb1", "#26c6da", "#5e35b1"]


def _display(array: np.ndarray) -> np.ndarray:
    """2D view with anterior (or superior) up: 2D phantoms as stored, 3D: the mid axial slice."""
    if array.ndim == 2:
        return array
    return array[:, :, array.shape[2] // 2].T[::-1]


def _display_grid(ddf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Display (row, column) positions in the moving image of the fixed grid points, ``x + ddf(x)``."""
    if ddf.shape[0] == 2:
        rows, cols = np.meshgrid(*[np.arange(s, dtype=np.float64) for s in ddf.shape[1:]], indexing="ij")
        return rows + ddf[0], cols + ddf[1]
    x_size, y_size, z_size = ddf.shape[1:]
    x, y = np.meshgrid(np.arange(x_size, dtype=np.float64), np.arange(y_size, dtype=np.float64), indexing="ij")
    k = z_size // 2
    px, py = x + ddf[0, :, :, k], y + ddf[1, :, :, k]
    # same view as _display: rows = flipped y, columns = x
    return (y_size - 1 - py).T[::-1], px.T[::-1]


def contact_sheet_figure(pairs: Sequence, grid_step: int = 12) -> Figure:
    """The figure described in the module docstring, for :class:`~innreg.data.phantom.simulate.PhantomPair` s."""
    from matplotlib.colors import ListedColormap

    n = len(pairs)
    fig = new_figure((12.0, 2.6 * n + 0.4))
    axes = fig.subplots(n, 5, squeeze=False)
    for row, pair in zip(axes, pairs):
        panels = (
            (pair.moving, pair.moving_seg, f"moving ({pair.moving_modality})"),
            (pair.fixed, pair.fixed_seg, f"fixed ({pair.fixed_modality})"),
            (pair.moving_as_fixed, pair.moving_seg, f"moving as {pair.fixed_modality} (truth)"),
        )
        for ax, (image, seg, title) in zip(row, panels):
            shown = _display(image)
            low, high = display_range(shown)
            ax.imshow(shown, cmap="gray", vmin=low, vmax=high)
            ax.contour(_display(seg), **_OUTLINE)
            ax.set_title(title, fontsize=8)
        head = pair.moving_head_labels
        labels = _display(head if head is not None else np.zeros_like(pair.moving_seg))
        brain = _display(pair.moving_seg) > 0
        row[3].imshow(np.where(brain, np.nan, labels), cmap=ListedColormap(_HEAD_COLOURS), vmin=-0.5,
                      vmax=len(HeadLabel) - 0.5, interpolation="nearest")
        row[3].imshow(np.where(brain, _display(pair.moving_seg), np.nan), cmap="gray", vmin=0, vmax=3)
        row[3].set_title("head labels (brain grey)" if head is not None else "skull-stripped", fontsize=8)
        moving_view = _display(pair.moving)
        low, high = display_range(moving_view)
        row[4].imshow(moving_view, cmap="gray", vmin=low, vmax=high)
        grid_rows, grid_cols = _display_grid(pair.ddf)
        for k in range(0, grid_rows.shape[0], grid_step):
            row[4].plot(grid_cols[k], grid_rows[k], color="#ffeb3b", lw=0.4)
        for k in range(0, grid_rows.shape[1], grid_step):
            row[4].plot(grid_cols[:, k], grid_rows[:, k], color="#ffeb3b", lw=0.4)
        height, width = grid_rows.shape
        row[4].set_xlim(-0.5, width - 0.5)
        row[4].set_ylim(height - 0.5, -0.5)
        row[4].set_title("misalignment: fixed grid on moving", fontsize=8)
        for ax in row:
            ax.set_axis_off()
    fig.suptitle(
        "innreg phantom pairs; brain outlines: brain (blue), CSF/GM (yellow), GM/WM (red); head labels: "
        "CSF blue, bone white, marrow brown, muscle red, fat yellow, skin pink, eye cyan, air violet",
        fontsize=8,
    )
    return fig


def save_contact_sheet(pairs: Sequence, path: str | os.PathLike, grid_step: int = 12) -> Path:
    """Write :func:`contact_sheet_figure` as a PNG (atomically)."""
    return save_figure(contact_sheet_figure(pairs, grid_step), path, dpi=100)
