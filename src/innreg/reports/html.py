"""Self-contained HTML reports: sections of text, tables and inline images in one file."""

from __future__ import annotations

import base64
import html
import mimetypes
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from innreg.atomic import write_bytes
from innreg.errors import InnregInputError
from innreg.reports.figures import PathLike
from innreg.reports.tables import format_cell, record_keys


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
        columns = record_keys(rows)
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(format_cell(row.get(c), '{:.3f}'))}</td>" for c in columns) + "</tr>"
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
