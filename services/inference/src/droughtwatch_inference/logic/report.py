"""One HTML report of several Evidently runs: a header that says what the report is about
(logic/report_header.py), then prediction drift, model quality, input drift and data quality,
each a titled section.

Each signal needs its own Evidently run, because a run has one reference dataset and every
metric in it is computed on the reference too: prediction drift compares with the model's
reference class shares, input drift with its reference summaries, and model quality has no
reference rows at all. Evidently 0.7 renders a run as one group of widgets
(``Snapshot.get_html_str``); this module renders the runs' widget lists as groups of one page
with Evidently's own renderer. The widget list is the snapshot's ``_widgets``, a private
attribute: Evidently is pinned (services/inference/pyproject.toml) and a test reads the report.

Two changes to Evidently's charts: a distribution is drawn as shares, not counts, when it is
first shown (a file's 300 images as counts beside the reference's 10,000 rows are a flat line;
the chart's own abs/perc buttons still switch), and a chart is drawn once (``ValueDrift``'s
distribution of the classes repeats ``UniqueValueCount``'s).
"""

from __future__ import annotations

import copy
import html
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from droughtwatch_inference.logic.evidently_api import load_evidently
from droughtwatch_inference.logic.report_header import Header, header_html

# The button of Evidently's distribution charts that draws shares instead of counts.
SHARES_BUTTON = "perc"
# Where the header goes: the body's start in Evidently's page template (the widgets' data sits
# in the head as JSON, where a newline is always escaped, so this matches the tag only).
_BODY = re.compile(r"<body>\n")


@dataclass
class Section:
    """A titled part of the report: an Evidently snapshot's widgets, lines of text, and rows
    of a two-column table (any of them may be empty)."""

    title: str
    snapshot: Any = None
    text: list[str] = field(default_factory=list)
    rows: list[tuple[str, str]] = field(default_factory=list)


def render(header: Header, sections: Sequence[Section]) -> str:
    """The self-contained HTML page: the header, then the sections in order."""
    ev = load_evidently()
    groups = []
    drawn: set[str] = set()
    for section in sections:
        widgets = []
        if section.text:
            widgets.append(ev.text_widget(title="", text="\n\n".join(section.text)))
        if section.rows:
            widgets.append(
                ev.table_data(
                    title="",
                    column_names=["", "value"],
                    data=[list(row) for row in section.rows],
                )
            )
        if section.snapshot is not None:
            for widget in section.snapshot._widgets:
                shown = _drawn_once(copy.deepcopy(widget), drawn)
                if shown is not None:
                    widgets.append(_shares_first(shown))
        groups.append(ev.group_widget(title=section.title, widgets=widgets))
    page = ev.render_widgets(groups)
    title = html.escape(header.title)
    page = page.replace("<head>", f"<head>\n<title>droughtwatch: {title}</title>", 1)
    body = _BODY.search(page)
    if body is None:
        raise RuntimeError("Evidently's page has no <body> to put the report's header in")
    return f"{page[: body.end()]}{header_html(header)}\n{page[body.end() :]}"


def _charts(widget: Any) -> Iterator[Any]:
    """The widget and the widgets inside it (a group's, a tab's)."""
    yield widget
    for child in widget.widgets or []:
        yield from _charts(child)
    for tab in widget.tabs or []:
        yield from _charts(tab.widget)


def _figure(widget: Any) -> dict[str, Any] | None:
    """The plotly figure a widget draws, if it draws one."""
    params = widget.params
    if isinstance(params, dict) and isinstance(params.get("data"), list) and "layout" in params:
        return params
    return None


def _fingerprint(figure: dict[str, Any]) -> str:
    """What a chart shows: its traces' names and values."""
    return repr(
        [
            (t.get("name"), np.asarray(t.get("x")).tolist(), np.asarray(t.get("y")).tolist())
            for t in figure["data"]
        ]
    )


def _drawn_once(widget: Any, drawn: set[str]) -> Any | None:
    """``widget`` without the charts already drawn in the report (None when nothing is left):
    a tab whose chart was drawn is left out, and so is a widget with no tab left."""
    figure = _figure(widget)
    if figure is not None:
        key = _fingerprint(figure)
        if key in drawn:
            return None
        drawn.add(key)
    if widget.tabs:
        tabs = [tab for tab in widget.tabs if _drawn_once(tab.widget, drawn) is not None]
        if not tabs:
            return None
        widget.tabs = tabs
    return widget


def _shares_first(widget: Any) -> Any:
    """``widget`` with each distribution it draws showing shares first: the chart's "perc"
    button pressed (its traces and axis title as that button sets them)."""
    for chart in _charts(widget):
        figure = _figure(chart)
        if figure is None:
            continue
        for menu in figure["layout"].get("updatemenus") or []:
            for position, button in enumerate(menu.get("buttons") or []):
                if button.get("label") != SHARES_BUTTON or button.get("method") != "update":
                    continue
                traces, layout = button["args"]
                for trace, visible in zip(figure["data"], traces["visible"], strict=True):
                    trace["visible"] = visible
                for key, value in layout.items():
                    figure["layout"][key] = {**(figure["layout"].get(key) or {}), **value}
                menu["active"] = position
    return widget
