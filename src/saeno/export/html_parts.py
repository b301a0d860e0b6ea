"""The HTML building blocks of the report and the audit page: the inline CSS and sorting script,
escaping and number formatting, table cells and tables, links to figures, the page frame."""

from __future__ import annotations

import base64
import html
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

CSS = """
body { font-family: sans-serif; margin: 1.5em; color: #222; max-width: 90em; line-height: 1.4; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 1.4em; }
table { border-collapse: collapse; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.5em; text-align: right; }
th { background: #f0f0f0; cursor: pointer; user-select: none; }
td.text, th.text { text-align: left; }
th[aria-sort="ascending"]::after { content: " \\25B2"; }
th[aria-sort="descending"]::after { content: " \\25BC"; }
tr.dead td { color: #999; }
img { max-width: 100%; border: 1px solid #eee; margin: 0.3em 0; }
.note { background: #fff6dd; border: 1px solid #e8d9a8; padding: 0.4em 0.7em; }
.meta td { text-align: left; }
nav a { margin-right: 1em; }
table.eval td, table.eval th { padding: 0.3em 0.7em; }
table.eval { font-size: 0.95em; margin: 0.5em 0 0.3em 0; }
td.thumb { padding: 1px; text-align: center; }
td.thumb img { border: 0; margin: 0; display: block; width: 40px; height: 40px;
               image-rendering: pixelated; }
.caption { color: #555; font-size: 0.9em; max-width: 60em; margin: 0 0 0.8em 0; }
.dead-summary { color: #666; }
section.concept { border-top: 2px solid #ccc; margin-top: 2.5em; }
details summary { cursor: pointer; font-weight: bold; margin-top: 1em; }
"""

# Sort the table whose header was clicked: numbers by value (empty cells last), text by locale.
SORT_JS = """
document.querySelectorAll('table.sortable').forEach(function (table) {
  table.querySelectorAll('th').forEach(function (th, col) {
    th.addEventListener('click', function () {
      var asc = th.getAttribute('aria-sort') !== 'ascending';
      table.querySelectorAll('th').forEach(function (h) { h.removeAttribute('aria-sort'); });
      th.setAttribute('aria-sort', asc ? 'ascending' : 'descending');
      var numeric = th.dataset.type === 'number';
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      function key(row) {
        var cell = row.cells[col];
        var v = cell.hasAttribute('data-value') ? cell.getAttribute('data-value') : cell.textContent;
        if (!numeric) { return v; }
        var f = parseFloat(v);
        return isNaN(f) ? null : f;
      }
      rows.sort(function (a, b) {
        var ka = key(a), kb = key(b);
        if (ka === kb) { return 0; }
        if (ka === null) { return 1; }
        if (kb === null) { return -1; }
        var c = numeric ? ka - kb : String(ka).localeCompare(String(kb));
        return asc ? c : -c;
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
});
"""


def esc(value: Any) -> str:
    """HTML-escape any value (quotes included) for text and attribute contexts."""
    return html.escape("" if value is None else str(value), quote=True)


def fmt_value(value: Any, digits: int = 3) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def num_cell(value: Any, digits: int = 3) -> str:
    data = "" if value is None else repr(float(value))
    return f'<td data-value="{esc(data)}">{esc(fmt_value(value, digits))}</td>'


def text_cell(value: Any, inner_html: str | None = None) -> str:
    return f'<td class="text">{inner_html if inner_html is not None else esc(value)}</td>'


class Links:
    """Where a page's links and images point: separate pages with relative paths, or one file.

    ``up`` is the prefix from the page to the export folder (``"../"`` for a concept page);
    ``root`` set means one self-contained file: images become ``data:`` URIs read from ``root``
    and links to concept pages become anchors in the same file.
    """

    def __init__(self, up: str = "", root: Path | None = None) -> None:
        self.up, self.root = up, root

    def img(self, rel: str) -> str:
        if self.root is None:
            return self.up + rel
        data = (self.root / rel).read_bytes()
        return "data:image/png;base64," + base64.b64encode(data).decode("ascii")

    def page(self, page: str, from_page: bool) -> str:
        """Link to a concept page (``page`` relative to the export folder)."""
        if self.root is not None:
            return "#" + Path(page).stem
        return Path(page).name if from_page else page

    def index(self) -> str:
        return "#top" if self.root is not None else self.up + "report.html"


def html_page(title: str, body: str) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "img-src 'self' data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'\">\n"
        f"<title>{esc(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n{body}\n"
        f"<script>{SORT_JS}</script>\n</body>\n</html>\n"
    )


def html_table(
    headers: Iterable[tuple[str, str]], rows: Iterable[str], *, sortable: bool = True, table_id: str = ""
) -> str:
    head = "".join(
        f'<th data-type="{kind}" class="{"text" if kind == "text" else ""}">{esc(name)}</th>'
        for name, kind in headers
    )
    cls = "sortable" if sortable else ""
    ident = f' id="{esc(table_id)}"' if table_id else ""
    return (
        f'<table class="{cls}"{ident}><thead><tr>{head}</tr></thead><tbody>\n'
        + "\n".join(rows)
        + "\n</tbody></table>"
    )


def meta_table(items: Mapping[str, Any]) -> str:
    rows = "".join(
        f'<tr><th class="text">{esc(k)}</th><td>{esc(fmt_value(v))}</td></tr>' for k, v in items.items()
    )
    return f'<table class="meta">{rows}</table>'
