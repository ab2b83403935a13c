"""Figures, tables and self-contained HTML reports for registration runs and benchmarks.

One module per concern: :mod:`~innreg.reports.arrays` (slicing and array preparation, no matplotlib),
:mod:`~innreg.reports.figures` (the one figure factory and PNG writer; curves and bars),
:mod:`~innreg.reports.overview` (the per-pair registration figure), :mod:`~innreg.reports.tables`
(Markdown) and :mod:`~innreg.reports.html` (HTML pages). matplotlib is imported only when a figure is
drawn. Every file is written atomically.
"""

from innreg.reports.arrays import central_field_slice, central_slice, checkerboard, deformed_grid_lines, moving_average
from innreg.reports.figures import line_plot, loss_curve, metric_bars, new_figure, save_figure
from innreg.reports.html import ReportSection, html_report
from innreg.reports.overview import registration_overview
from innreg.reports.tables import markdown_table

__all__ = [
    "ReportSection",
    "central_field_slice",
    "central_slice",
    "checkerboard",
    "deformed_grid_lines",
    "html_report",
    "line_plot",
    "loss_curve",
    "markdown_table",
    "metric_bars",
    "moving_average",
    "new_figure",
    "registration_overview",
    "save_figure",
]
