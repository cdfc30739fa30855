"""Read, draw, write: the page of the batches in a database, as `droughtwatch dashboard` and the
demo write it. The database is read in one read-only snapshot, so the panels agree with each
other even while a run commits."""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from droughtwatch_tools.dashboard_page.data import (
    PageRange,
    Rows,
    batch_dates,
    page_range,
    run_queries,
)
from droughtwatch_tools.dashboard_page.figures import stat_values, table_view, timeseries_figure
from droughtwatch_tools.dashboard_page.html import Drawn, render
from droughtwatch_tools.dashboard_page.panels import PagePanel, page_panels, queries_of
from droughtwatch_tools.grafana.dashboard import DASHBOARD_TITLE


@dataclass(frozen=True)
class Page:
    """The page's HTML, the days it shows, and what it drew."""

    html: str
    shown: PageRange
    panels: list[Drawn]
    alerts: list[str]


def draw(panel: PagePanel, results: dict[str, Rows], shown: PageRange) -> Drawn:
    """One panel as its kind is drawn (panels.KINDS)."""
    import plotly.graph_objects as go

    common = {
        "id": panel.id,
        "title": panel.title,
        "description": panel.description,
        "width": panel.width,
        "height": panel.height,
    }
    if panel.kind == "timeseries":
        figure = timeseries_figure(panel, results, shown)
        go.Figure(figure)  # plotly checks every property: a misspelt one fails here, not later
        return Drawn(**common, figure=figure)
    if panel.kind == "stat":
        return Drawn(**common, stats=stat_values(panel, results))
    return Drawn(**common, table=table_view(panel, results))


def alert_lines(panels: list[PagePanel], results: dict[str, Rows]) -> list[str]:
    """Each alert rule's flagged days, e.g. "Input drift: 3 of 14 days (2026-12-02, ...)"."""
    lines = []
    for panel in panels:
        for mark in panel.alerts:
            rows = results[mark.query.name]
            flagged = [
                t.astimezone(dt.UTC).date().isoformat()
                for t, flag in zip(rows.column("time"), rows.column(mark.flag), strict=True)
                if flag
            ]
            if flagged:
                lines.append(
                    f"{mark.title}: {len(flagged)} of {len(rows.rows)} days ({', '.join(flagged)})"
                )
    return lines


def build_page(
    conn: Any, *, source: str, days: int | None = None, now: dt.datetime | None = None
) -> Page | None:
    """The page of the ``days`` newest batch days (all of them when None) on the connection;
    None when the ledger has no batch yet."""
    from plotly.offline import get_plotlyjs

    dates = batch_dates(conn)
    if dates is None:
        return None
    now = now or dt.datetime.now(dt.UTC)
    shown = page_range(*dates, days, now)
    panels = page_panels()
    results = run_queries(conn, queries_of(panels), shown)
    drawn = [draw(panel, results, shown) for panel in panels]
    alerts = alert_lines(panels, results)
    plotly_js = get_plotlyjs()
    if "</script" in plotly_js:  # it would end the inline script early
        raise ValueError("plotly's bundle holds </script>: it cannot be inlined")
    days_text = "1 day" if shown.days == 1 else f"{shown.days} days"
    lines = [
        f"Batches {shown.first_day} to {shown.last_day} ({days_text}), from {source}; "
        f"written {now:%Y-%m-%d %H:%M} UTC.",
        f'The panels and SQL of the Grafana dashboard "{DASHBOARD_TITLE}" '
        "(droughtwatch grafana); batch dates in UTC; a shaded day: an alert rule's flag.",
    ]
    html = render(f"droughtwatch: {DASHBOARD_TITLE}", lines, alerts, drawn, plotly_js)
    return Page(html, shown, drawn, alerts)


def write_page(conninfo: str, path: Path, *, source: str, days: int | None = None) -> Page | None:
    """Read the database at ``conninfo`` (read-only, one snapshot) and write its page to
    ``path`` whole (a temporary file renamed into place); None, and nothing written, when the
    ledger has no batch yet."""
    import psycopg

    with psycopg.connect(conninfo, connect_timeout=10) as conn:
        conn.read_only = True
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        page = build_page(conn, source=source, days=days)
    if page is None:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(page.html)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return page
