"""A panel's rows drawn as Grafana draws them, read from the Grafana panel itself: a time series
as a plotly figure (bars or lines, stacked or not, the overrides' names, colours, dashes and
points, the threshold line, the alert days), a stat as its reduced values, a table as its
cells with the status and error colours. Pure: rows in, plain data out."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from droughtwatch_contract.drift import is_drift

from droughtwatch_tools.dashboard_page.data import PageRange, Rows, midnight
from droughtwatch_tools.dashboard_page.panels import PagePanel
from droughtwatch_tools.grafana import queries

# Grafana's named colours, and its classic palette for the series without a colour of their own.
COLORS = {
    "green": "#56a64b",
    "red": "#e02f44",
    "blue": "#3274d9",
    "yellow": "#e0b400",
    "purple": "#a352cc",
    "orange": "#fa6400",
    "text": "#333333",
}
PALETTE = (
    "#7eb26d",
    "#eab839",
    "#6ed0e0",
    "#ef843c",
    "#e24d42",
    "#1f78c1",
    "#ba43a9",
    "#705da0",
    "#508642",
    "#cca300",
)
ALERT_FILL = "rgba(224, 47, 68, 0.13)"
# One Grafana grid row, in pixels on the page (Grafana's is 30 plus a margin).
ROW_PIXELS = 34
HALF_DAY = dt.timedelta(hours=12)
# The page's width the legends are laid out for, and a legend line's height.
NOMINAL_PAGE_PIXELS = 1360
LEGEND_ROW_PIXELS = 19


def color(value: Any) -> str | None:
    """A Grafana colour (a name, a hex code, or a {"mode": "fixed", "fixedColor": ...} field
    colour) as CSS; None for a colour mode that is not one colour."""
    if isinstance(value, dict):
        value = value.get("fixedColor") if value.get("mode") == "fixed" else None
    if value is None:
        return None
    return COLORS.get(value, value)


def overrides(panel: PagePanel) -> dict[str, dict[str, Any]]:
    """Column -> {property id: value}, from the panel's by-name overrides."""
    found: dict[str, dict[str, Any]] = {}
    for override in panel.grafana["fieldConfig"]["overrides"]:
        if override["matcher"]["id"] == "byName":
            props = found.setdefault(override["matcher"]["options"], {})
            props.update({p["id"]: p["value"] for p in override["properties"]})
    return found


def axis_time(value: dt.datetime | dt.date) -> str:
    """A time for a plotly date axis: plotly.js reads no time zone, so UTC is written without
    one (the batches sit at midnight UTC, as on the Grafana dashboard shown in UTC)."""
    if not isinstance(value, dt.datetime):
        value = midnight(value)
    value = value.astimezone(dt.UTC).replace(tzinfo=None)
    return value.date().isoformat() if value.time() == dt.time() else value.isoformat(sep=" ")


# -- time series --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Series:
    name: str
    x: list[str]
    y: list[Any]


def series(rows: Rows) -> list[Series]:
    """The rows as Grafana makes series of them: with a ``metric`` column, one series per metric
    (in the order they first appear) of the one value column; else one per value column."""
    if "metric" in rows.columns:
        (value,) = [c for c in rows.columns if c not in ("time", "metric")]
        k, m = rows.columns.index(value), rows.columns.index("metric")
        found: dict[str, Series] = {}
        for row in rows.rows:
            s = found.setdefault(str(row[m]), Series(str(row[m]), [], []))
            s.x.append(axis_time(row[0]))
            s.y.append(row[k])
        return list(found.values())
    times = [axis_time(t) for t in rows.column("time")]
    return [Series(c, times, rows.column(c)) for c in rows.columns if c != "time"]


def _day_segments(days: list[dt.datetime]) -> list[str | None]:
    """Each day from half a day before to half a day after (where its bar is), as x pairs with a
    gap between: a line over consecutive days looks like one."""
    x: list[str | None] = []
    for day in days:
        x += [axis_time(day - HALF_DAY), axis_time(day + HALF_DAY), None]
    return x


def _threshold(panel: PagePanel, results: dict[str, Rows]) -> tuple[list[Any], list[Any]]:
    """The traces and shapes of the panel's threshold line, when Grafana draws one: the value
    Observe stored per day, or the panel's own steps."""
    defaults = panel.grafana["fieldConfig"]["defaults"]
    steps = defaults["thresholds"]["steps"][1:]
    if not steps or defaults["custom"]["thresholdsStyle"]["mode"] == "off":
        return [], []
    line = {"color": color(steps[0]["color"]), "dash": "dash", "width": 2}
    if panel.stored_threshold is not None:
        stored = results[queries.THRESHOLDS.name]
        days = [
            (t, v)
            for t, v in zip(
                stored.column("time"), stored.column(panel.stored_threshold), strict=True
            )
            if v is not None
        ]
        x = _day_segments([t for t, _ in days])
        y = [v for _, value in days for v in (value, value, None)]
        trace = {
            "type": "scatter",
            "mode": "lines",
            "name": "threshold",
            "x": x,
            "y": y,
            "line": line,
        }
        return [trace], []
    shapes = [
        {
            "type": "line",
            "xref": "paper",
            "x0": 0,
            "x1": 1,
            "y0": s["value"],
            "y1": s["value"],
            "line": {**line, "color": color(s["color"])},
        }
        for s in steps
    ]
    return [], shapes


def _alert_days(panel: PagePanel, results: dict[str, Rows]) -> list[dict[str, Any]]:
    """A shaded band over each day an alert rule of the panel flagged, one legend entry per
    rule."""
    shapes = []
    for mark in panel.alerts:
        rows = results[mark.query.name]
        flagged = [
            t for t, flag in zip(rows.column("time"), rows.column(mark.flag), strict=True) if flag
        ]
        for i, day in enumerate(flagged):
            shapes.append(
                {
                    "type": "rect",
                    "xref": "x",
                    "yref": "paper",
                    "x0": axis_time(day - HALF_DAY),
                    "x1": axis_time(day + HALF_DAY),
                    "y0": 0,
                    "y1": 1,
                    "fillcolor": ALERT_FILL,
                    "line": {"width": 0},
                    "layer": "below",
                    "name": f"alert: {mark.title}",
                    "legendgroup": mark.title,
                    "showlegend": i == 0,
                }
            )
    return shapes


def _trace(
    s: Series, props: dict[str, Any], custom: dict[str, Any], fallback: str
) -> dict[str, Any]:
    draw = props.get("custom.drawStyle", custom["drawStyle"])
    shade = color(props.get("color")) or fallback
    name = props.get("displayName", s.name)
    if draw == "bars":
        return {"type": "bar", "name": name, "x": s.x, "y": s.y, "marker": {"color": shade}}
    points = props.get("custom.showPoints", custom["showPoints"])
    mode = "markers" if draw == "points" else "lines" if points == "never" else "lines+markers"
    style = props.get("custom.lineStyle", {})
    return {
        "type": "scatter",
        "mode": mode,
        "name": name,
        "x": s.x,
        "y": s.y,
        "connectgaps": bool(custom.get("spanNulls")),
        "line": {
            "color": shade,
            "width": custom["lineWidth"],
            "dash": "dash" if style.get("fill") == "dash" else "solid",
        },
        "marker": {"color": shade, "size": custom["pointSize"] + (3 if draw == "points" else 1)},
    }


def _y_axis(defaults: dict[str, Any]) -> dict[str, Any]:
    axis: dict[str, Any] = {"gridcolor": "#e8e8e8", "zerolinecolor": "#cccccc"}
    decimals = defaults.get("decimals")
    if defaults.get("unit") == "percentunit":
        axis["tickformat"] = ".0%"
        axis["hoverformat"] = f".{max((decimals or 3) - 2, 0)}%"
    elif decimals is not None:
        axis["hoverformat"] = f".{decimals}f"
    low, high = defaults.get("min"), defaults.get("max")
    if low is not None and high is not None:
        axis["range"] = [low, high]
    elif low == 0:
        axis["rangemode"] = "tozero"
    return axis


def legend_rows(names: list[str], width: int) -> int:
    """About how many lines a horizontal legend of these names takes in a panel ``width`` grid
    columns wide on a page about 1,400 pixels wide: the figure grows by the lines beyond the
    first, so that a narrow panel keeps its plot's height."""
    available = NOMINAL_PAGE_PIXELS * width / 24 - 30
    rows, used = 1, 0.0
    for name in names:
        entry = 46 + 6.5 * len(name)
        if used and used + entry > available:
            rows, used = rows + 1, 0.0
        used += entry
    return rows


def timeseries_figure(
    panel: PagePanel, results: dict[str, Rows], shown: PageRange
) -> dict[str, Any]:
    """The panel's rows as a plotly figure (data and layout), over the page's days."""
    defaults = panel.grafana["fieldConfig"]["defaults"]
    custom = defaults["custom"]
    by_column = overrides(panel)
    data = [
        _trace(s, by_column.get(s.name, {}), custom, PALETTE[i % len(PALETTE)])
        for i, s in enumerate(series(results[panel.query.name]))
    ]
    threshold_traces, threshold_shapes = _threshold(panel, results)
    data += threshold_traces
    stacked = custom["stacking"]["mode"] == "normal"
    shapes = threshold_shapes + _alert_days(panel, results)
    names = [t["name"] for t in data] + [s["name"] for s in shapes if s.get("showlegend")]
    extra_rows = legend_rows(names, panel.width) - 1
    layout = {
        "height": panel.height * ROW_PIXELS - 56 + LEGEND_ROW_PIXELS * extra_rows,
        "margin": {"l": 48, "r": 8, "t": 6, "b": 4},
        "barmode": "stack" if stacked else "group",
        "bargap": 0.15,
        "hovermode": "x unified",
        "showlegend": True,
        # in the order of the series, also when stacked (plotly would reverse it)
        "legend": {
            "orientation": "h",
            "x": 0,
            "y": -0.08,
            "yanchor": "top",
            "traceorder": "normal",
        },
        "font": {"size": 11, "family": "system-ui, sans-serif"},
        "paper_bgcolor": "white",
        "plot_bgcolor": "white",
        "xaxis": {
            "type": "date",
            "range": [
                axis_time(midnight(shown.first_day) - HALF_DAY),
                axis_time(midnight(shown.last_day) + HALF_DAY),
            ],
            "tickformat": "%b %d",
            "gridcolor": "#f0f0f0",
        },
        "yaxis": _y_axis(defaults),
        "shapes": shapes,
    }
    return {"data": data, "layout": layout}


# -- stat -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class StatValue:
    name: str
    text: str
    color: str


def _reduce(calc: str) -> Callable[[list[Any]], Any]:
    reducers: dict[str, Callable[[list[Any]], Any]] = {
        "lastNotNull": lambda v: v[-1],
        "sum": sum,
    }
    if calc not in reducers:
        raise ValueError(f"the page reduces a stat with {', '.join(reducers)}, not {calc}")
    return reducers[calc]


def value_text(value: Any, defaults: dict[str, Any]) -> str:
    """A value as a Grafana stat shows it: its decimals, a percent for ``percentunit``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    decimals = defaults.get("decimals")
    if defaults.get("unit") == "percentunit":
        return f"{value:.{max((decimals or 3) - 2, 0)}%}"
    if decimals is not None:
        return f"{value:.{decimals}f}"
    return f"{value:,}" if isinstance(value, int) else f"{value:.4g}"


def step_color(value: Any, steps: list[dict[str, Any]]) -> str | None:
    """The colour of the last threshold step the value reaches (a step applies from its value
    up: the contract's at-or-above rule)."""
    found = None
    for step in steps:
        if step["value"] is None or (
            isinstance(value, int | float) and is_drift(value, step["value"])
        ):
            found = step["color"]
    return color(found)


def stat_values(panel: PagePanel, results: dict[str, Rows]) -> list[StatValue]:
    """The stat's fields reduced by its calculation and coloured as Grafana colours them; with
    a stored threshold, the newest day's stands in for the panel's step."""
    defaults = panel.grafana["fieldConfig"]["defaults"]
    reduce_options = panel.grafana["options"]["reduceOptions"]
    (calc,) = reduce_options["calcs"]
    pattern = re.compile(reduce_options["fields"].strip("/"))
    rows = results[panel.query.name]
    steps = defaults.get("thresholds", {}).get("steps", [])
    if panel.stored_threshold is not None and len(steps) > 1:
        stored = [
            v
            for v in results[queries.THRESHOLDS.name].column(panel.stored_threshold)
            if v is not None
        ]
        if stored:
            steps = [steps[0], {**steps[1], "value": stored[-1]}]
    found = []
    for column in rows.columns:
        if column == "time" or not pattern.search(column):
            continue
        values = [v for v in rows.column(column) if v is not None]
        if not values:
            found.append(StatValue(column, "no data", COLORS["text"]))
            continue
        value = _reduce(calc)(values)
        mode = defaults.get("color", {}).get("mode")
        shade = step_color(value, steps) if mode == "thresholds" else color(defaults.get("color"))
        found.append(StatValue(column, value_text(value, defaults), shade or COLORS["text"]))
    return found


# -- table ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Cell:
    text: str
    color: str | None = None


@dataclass(frozen=True)
class TableView:
    columns: tuple[str, ...]
    rows: list[list[Cell]]
    widths: dict[str, int]


def cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def cell_color(props: dict[str, Any], value: Any) -> str | None:
    """A cell's colour from its column's overrides: a value mapping's colour for its value (the
    status), else the column's fixed colour (the error)."""
    if value is None:
        return None
    if "mappings" in props:
        for mapping in props["mappings"]:
            option = mapping["options"].get(str(value))
            if option is not None:
                return color(option.get("color"))
        return None
    return color(props.get("color"))


def table_view(panel: PagePanel, results: dict[str, Rows]) -> TableView:
    """The rows as cells, coloured as the panel's overrides say."""
    rows = results[panel.query.name]
    by_column = overrides(panel)
    widths = {c: p["custom.width"] for c, p in by_column.items() if "custom.width" in p}
    cells = [
        [
            Cell(cell_text(v), cell_color(by_column.get(c, {}), v))
            for c, v in zip(rows.columns, row, strict=True)
        ]
        for row in rows.rows
    ]
    return TableView(rows.columns, cells, widths)
