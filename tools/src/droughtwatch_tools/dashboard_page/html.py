"""The page itself: one HTML file with plotly's JavaScript inline (one copy), each figure's JSON
in a script element of type application/json that one loop hands to Plotly.newPlot, the stats
and tables as HTML, laid out on Grafana's 24-column grid. Nothing is fetched: no script src, no
stylesheet link, no url() in the styles."""

from __future__ import annotations

import json
from dataclasses import dataclass
from html import escape
from html.parser import HTMLParser
from typing import Any

from droughtwatch_tools.dashboard_page.figures import ROW_PIXELS, StatValue, TableView

# What the page hands plotly besides each figure: a chart that follows the width of its panel,
# without the tool bar (drag to zoom, double-click to zoom out) and its logo link.
PLOTLY_CONFIG = {"displayModeBar": False, "displaylogo": False, "responsive": True}

_STYLE = """
:root { color-scheme: light; }
body { margin: 0; padding: 16px 20px 32px; background: #f4f5f5; color: #222;
       font: 13px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
header h1 { margin: 0 0 4px; font-size: 20px; }
header p { margin: 2px 0; color: #555; }
header .alerts { color: #b3192f; font-weight: 600; }
main { display: grid; grid-template-columns: repeat(24, minmax(0, 1fr)); gap: 8px;
       margin-top: 12px; }
section { background: #fff; border: 1px solid #dcdfe2; border-radius: 4px; padding: 6px 8px;
          min-width: 0; overflow: hidden; box-sizing: border-box; }
section h2 { margin: 0; font-size: 14px; }
section .about { margin: 1px 0 4px; color: #666; font-size: 11px; overflow: hidden;
                 display: -webkit-box; -webkit-line-clamp: 2; -webkit-box-orient: vertical; }
.stats { display: flex; gap: 18px; flex-wrap: wrap; align-items: baseline; }
.stat .name { color: #666; font-size: 11px; }
.stat .value { font-size: 24px; font-weight: 600; overflow-wrap: anywhere; }
.table { overflow: auto; }
table { border-collapse: collapse; font-size: 11px; width: 100%; }
th, td { text-align: left; padding: 2px 6px; border-bottom: 1px solid #eee; vertical-align: top; }
th { position: sticky; top: 0; background: #fafafa; }
td { white-space: nowrap; }
td.wrap { white-space: normal; }
.empty { color: #888; padding: 20px 0; text-align: center; }
"""

_DRAW = """
document.querySelectorAll('script.figure').forEach(function (source) {
  var figure = JSON.parse(source.textContent);
  Plotly.newPlot(source.dataset.target, figure.data, figure.layout, figure.config);
});
"""


@dataclass(frozen=True)
class Drawn:
    """One panel, drawn: exactly one of ``figure``, ``stats`` and ``table``."""

    id: int
    title: str
    description: str
    width: int
    height: int
    figure: dict[str, Any] | None = None
    stats: list[StatValue] | None = None
    table: TableView | None = None


def script_json(value: Any) -> str:
    """JSON safe inside a script element: "<" escaped, so no "</script>" ends it early."""
    return json.dumps(value, separators=(",", ":"), allow_nan=False).replace("<", "\\u003c")


def _figure(panel: Drawn) -> str:
    target = f"panel-{panel.id}"
    figure = {**(panel.figure or {}), "config": PLOTLY_CONFIG}
    return (
        f'<div class="chart" id="{target}"></div>'
        f'<script type="application/json" class="figure" data-target="{target}">'
        f"{script_json(figure)}</script>"
    )


def _stats(values: list[StatValue]) -> str:
    if not values:
        return '<div class="empty">no data</div>'
    cards = "".join(
        f'<div class="stat"><div class="name">{escape(v.name)}</div>'
        f'<div class="value" style="color: {escape(v.color)}">{escape(v.text)}</div></div>'
        for v in values
    )
    return f'<div class="stats">{cards}</div>'


def _table(view: TableView, height: int) -> str:
    if not view.rows:
        return '<div class="empty">no rows</div>'
    head = "".join(f"<th>{escape(c)}</th>" for c in view.columns)
    body = []
    for row in view.rows:
        cells = []
        for column, cell in zip(view.columns, row, strict=True):
            attributes = ""
            style = []
            if cell.color:
                style.append(f"color: {cell.color}")
            if column in view.widths:
                style.append(f"min-width: {view.widths[column]}px")
                attributes = ' class="wrap"'
            if style:
                attributes += f' style="{escape("; ".join(style))}"'
            cells.append(f"<td{attributes}>{escape(cell.text)}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    return (
        f'<div class="table" style="max-height: {height}px"><table><thead><tr>{head}</tr>'
        f"</thead><tbody>{''.join(body)}</tbody></table></div>"
    )


def _panel(panel: Drawn) -> str:
    if panel.figure is not None:
        content = _figure(panel)
    elif panel.stats is not None:
        content = _stats(panel.stats)
    else:
        assert panel.table is not None
        content = _table(panel.table, panel.height * ROW_PIXELS - 56)
    return (
        f'<section style="grid-column: span {panel.width}; min-height: '
        f'{panel.height * ROW_PIXELS}px" data-panel="{panel.id}">'
        f'<h2 title="{escape(panel.description)}">{escape(panel.title)}</h2>'
        f'<p class="about">{escape(panel.description)}</p>{content}</section>'
    )


def render(
    title: str, lines: list[str], alerts: list[str], panels: list[Drawn], plotly_js: str
) -> str:
    """The whole page: the title, its lines (what it shows, from where, when), the alerts, and
    the panels in order."""
    header = "".join(f"<p>{escape(line)}</p>" for line in lines)
    header += "".join(f'<p class="alerts">{escape(line)}</p>' for line in alerts)
    body = "".join(_panel(p) for p in panels)
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>\n'
        f"<style>{_STYLE}</style>\n"
        f"<script>{plotly_js}</script>\n"
        f"</head><body><header><h1>{escape(title)}</h1>{header}</header>\n"
        f"<main>{body}</main>\n<script>{_DRAW}</script>\n</body></html>\n"
    )


class _FigureReader(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.figures: dict[int, dict[str, Any]] = {}
        self._target: str | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "script" and found.get("class") == "figure":
            self._target, self._text = found.get("data-target"), []

    def handle_data(self, data: str) -> None:
        if self._target is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "script" and self._target is not None:
            panel = int(self._target.removeprefix("panel-"))
            self.figures[panel] = json.loads("".join(self._text))
            self._target = None


def read_figures(page: str) -> dict[int, dict[str, Any]]:
    """The figures a page hands plotly, by panel id, as the browser reads them: how a page is
    checked without a browser."""
    reader = _FigureReader()
    reader.feed(page)
    reader.close()
    return reader.figures
