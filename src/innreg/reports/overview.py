"""The registration overview figure: images, checkerboard, sampling grid, Jacobian and label contours."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from innreg.core.jacobian import jacobian_determinant
from innreg.reports.arrays import (
    central_field_slice,
    central_slice,
    check_same_shape,
    checkerboard,
    default_grid_step,
    deformed_grid_lines,
    display_range,
    normalise,
    to_numpy,
)
from innreg.reports.figures import PathLike, new_figure, save_figure

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

_PANEL_INCHES = 3.0
_FIXED_CONTOUR_COLOR = "#ff3b30"  # red: fixed labels (the target)
_WARPED_CONTOUR_COLOR = "#00d5ff"  # cyan: warped moving labels
_FOLDING_COLOR = "#ffd400"  # yellow: stands out on the blue (J < 1) end of the Jacobian map


def _show_image(ax: Axes, image: np.ndarray, title: str) -> None:
    low, high = display_range(image)
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
    from matplotlib.collections import LineCollection

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
    from matplotlib.colors import ListedColormap, Normalize

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
    from matplotlib.lines import Line2D

    images = {name: to_numpy(a) for name, a in
              {"moving": moving, "fixed": fixed, "translated": translated, "warped": warped}.items()}
    shape = images["fixed"].shape
    if len(shape) not in (2, 3):
        raise ValueError(f"fixed must be a 2D or 3D image, got shape {shape}")
    segs = {name: None if a is None else to_numpy(a) for name, a in
            {"moving_seg": moving_seg, "fixed_seg": fixed_seg, "warped_seg": warped_seg}.items()}
    ddf = to_numpy(ddf)
    if ddf.shape != (len(shape), *shape):
        raise ValueError(f"ddf has shape {ddf.shape}, expected {(len(shape), *shape)} for images {shape}")
    jac_full = None if jacobian is None else to_numpy(jacobian)
    check_same_shape({**images, **segs, "jacobian": jac_full}, shape)

    if jac_full is None:
        jac_full = jacobian_determinant(torch.from_numpy(ddf)[None])[0].numpy()
    folded_fraction = float(np.mean(jac_full <= 0))
    view = {name: central_slice(a, axis) for name, a in images.items()}
    seg_view = {name: None if a is None else central_slice(a, axis) for name, a in segs.items()}
    jac = central_slice(jac_full, axis)
    ddf2 = central_field_slice(ddf, axis)
    plane = view["fixed"].shape
    step = grid_step if grid_step is not None else default_grid_step(plane)
    has_seg = any(s is not None for s in seg_view.values())

    n_panels = 8 if has_seg else 7
    ncols = 4
    nrows = math.ceil(n_panels / ncols)
    panel_height = _PANEL_INCHES * max(plane[0] / plane[1], 0.5)
    title_height = 0.4 if title or len(shape) == 3 else 0.0
    fig = new_figure((ncols * _PANEL_INCHES, nrows * panel_height + title_height))
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()

    _show_image(axes[0], view["moving"], "moving")
    if seg_view["moving_seg"] is not None:
        _draw_label_contours(axes[0], seg_view["moving_seg"], _WARPED_CONTOUR_COLOR)
    _show_image(axes[1], view["fixed"], "fixed")
    if seg_view["fixed_seg"] is not None:
        _draw_label_contours(axes[1], seg_view["fixed_seg"], _FIXED_CONTOUR_COLOR)
    _show_image(axes[2], view["translated"], "translated moving")
    _show_image(axes[3], view["warped"], "warped moving")
    board = checkerboard(normalise(view["warped"]), normalise(view["fixed"]))
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
    return save_figure(fig, path)
