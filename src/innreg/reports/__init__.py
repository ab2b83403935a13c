"""Figures, tables and self-contained HTML reports for registration runs and benchmarks.

One module per concern: :mod:`~innreg.reports.arrays` (slicing and array preparation, no matplotlib),
:mod:`~innreg.reports.figures` (the one figure factory and PNG writer; curves and bars),
:mod:`~innreg.reports.overview` (the per-pair registration figure), :mod:`~innreg.reports.tables`
(Markdown) and :mod:`~innreg.reports.html` (HTML pages). matplotlib is imported only when a figure is
drawn. Every file is written atomically.
"""

from innreg.lazy import lazy_exports

# Public name -> defining submodule; imported on first use, so importing the package stays light.
_EXPORTS = {
    "ReportSection": "html",
    "central_field_slice": "arrays",
    "central_slice": "arrays",
    "checkerboard": "arrays",
    "deformed_grid_lines": "arrays",
    "html_report": "html",
    "line_plot": "figures",
    "loss_curve": "figures",
    "markdown_table": "tables",
    "metric_bars": "figures",
    "moving_average": "arrays",
    "new_figure": "figures",
    "registration_overview": "overview",
    "save_figure": "figures",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = list(_EXPORTS)
