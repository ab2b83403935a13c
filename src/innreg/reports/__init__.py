"""Figures, tables and self-contained HTML reports for registration runs and benchmarks.

One module per concern: :mod:`~innreg.reports.arrays` (slicing and array preparation, no matplotlib),
:mod:`~innreg.reports.figures` (the one figure factory and PNG writer; curves and bars),
:mod:`~innreg.reports.overview` (the per-pair registration figure), :mod:`~innreg.reports.tables`
(Markdown) and :mod:`~innreg.reports.html` (HTML pages). matplotlib is imported only when a figure is
drawn. Every file is written atomically.
"""

from innreg.lazy import lazy_exports

# Submodule -> the public names it defines; imported on first use, so importing the package stays light.
_EXPORTS = {
    "arrays": ("central_field_slice", "central_slice", "checkerboard", "deformed_grid_lines", "moving_average"),
    "figures": ("line_plot", "loss_curve", "metric_bars", "new_figure", "save_figure"),
    "html": ("ReportSection", "html_report"),
    "overview": ("registration_overview",),
    "tables": ("markdown_table",),
}
__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
