"""CSV and Markdown tables, and the cell formatting shared with the HTML tables (no matplotlib)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np


def record_keys(records: Iterable[Mapping[str, Any]]) -> list[str]:
    """The keys of all ``records`` in first-seen order (the columns of a table of them)."""
    keys: dict[str, None] = {}
    for record in records:
        keys.update(dict.fromkeys(record))
    return list(keys)


def format_cell(value: Any, float_format: str) -> str:
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
    lines += [line([format_cell(row.get(c), float_format) for c in columns]) for row in rows]
    return "\n".join(lines) + "\n"


def csv_text(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """Rows as CSV text with a header; a column missing from a row (or ``None``) gives an empty cell."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, restval="")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()
