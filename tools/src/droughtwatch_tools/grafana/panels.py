"""Builders of the three kinds of panel the dashboard uses (stat, time series, table), in the
shape Grafana 12 writes them; the dashboard (dashboard.py) says what each one shows."""

from __future__ import annotations

from typing import Any

from droughtwatch_tools.grafana.datasource import DATASOURCE_REF
from droughtwatch_tools.grafana.queries import Query


def target(query: Query) -> dict[str, Any]:
    """The query as Grafana runs it: raw SQL on the droughtwatch datasource."""
    return {
        "refId": "A",
        "datasource": dict(DATASOURCE_REF),
        "editorMode": "code",
        "format": query.format,
        "rawQuery": True,
        "rawSql": query.sql,
    }


def threshold_steps(*steps: tuple[str, float | None]) -> dict[str, Any]:
    """Grafana's steps: the first is the base (-Infinity, written null), then ascending."""
    return {"mode": "absolute", "steps": [{"color": c, "value": v} for c, v in steps]}


NO_THRESHOLDS = threshold_steps(("green", None))


def _panel(
    panel_id: int,
    kind: str,
    title: str,
    description: str,
    query: Query,
    grid: tuple[int, int, int, int],
    options: dict[str, Any],
    defaults: dict[str, Any],
    overrides: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    x, y, w, h = grid
    return {
        "id": panel_id,
        "type": kind,
        "title": title,
        "description": description,
        "datasource": dict(DATASOURCE_REF),
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "targets": [target(query)],
        "options": options,
        "fieldConfig": {"defaults": defaults, "overrides": overrides or []},
    }


def by_name(column: str, *properties: tuple[str, Any]) -> dict[str, Any]:
    """An override: these field properties for the column named ``column``."""
    return {
        "matcher": {"id": "byName", "options": column},
        "properties": [{"id": key, "value": value} for key, value in properties],
    }


def stat(
    panel_id: int,
    title: str,
    description: str,
    query: Query,
    grid: tuple[int, int, int, int],
    *,
    field: str,
    calc: str,
    defaults: dict[str, Any],
) -> dict[str, Any]:
    """One value: the ``field`` column(s) of the query reduced with ``calc``."""
    options = {
        "reduceOptions": {"values": False, "calcs": [calc], "fields": f"/^{field}$/"},
        "orientation": "auto",
        "textMode": "value_and_name",
        "colorMode": "value",
        "graphMode": "none",
        "justifyMode": "auto",
    }
    return _panel(panel_id, "stat", title, description, query, grid, options, defaults)


def timeseries(
    panel_id: int,
    title: str,
    description: str,
    query: Query,
    grid: tuple[int, int, int, int],
    *,
    bars: bool,
    stack: bool = False,
    defaults: dict[str, Any],
    thresholds: dict[str, Any] = NO_THRESHOLDS,
    colors: dict[str, str] | None = None,
    styles: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Lines, or bars (stacked or not), over the batch dates; a threshold above the base step is
    drawn as a dashed line."""
    custom = {
        "drawStyle": "bars" if bars else "line",
        "lineWidth": 1 if bars else 2,
        "fillOpacity": 80 if bars else 10,
        "pointSize": 6,
        "showPoints": "never" if bars else "always",
        "spanNulls": False,
        "stacking": {"mode": "normal" if stack else "none", "group": "A"},
        "axisPlacement": "auto",
        "thresholdsStyle": {"mode": "dashed" if len(thresholds["steps"]) > 1 else "off"},
    }
    options = {
        "legend": {"showLegend": True, "displayMode": "list", "placement": "bottom", "calcs": []},
        "tooltip": {"mode": "multi", "sort": "none"},
    }
    field_defaults = {
        **defaults,
        "custom": custom,
        "color": {"mode": "palette-classic"},
        "thresholds": thresholds,
    }
    overrides = [
        by_name(column, ("color", {"mode": "fixed", "fixedColor": color}))
        for column, color in (colors or {}).items()
    ]
    overrides += styles or []
    return _panel(
        panel_id, "timeseries", title, description, query, grid, options, field_defaults, overrides
    )


_STATUS_COLORS = {
    "done": "green",
    "succeeded": "green",
    "failed": "red",
    "running": "blue",
    "pending": "text",
}


def table(
    panel_id: int,
    title: str,
    description: str,
    query: Query,
    grid: tuple[int, int, int, int],
    *,
    error_column: str,
) -> dict[str, Any]:
    """The query's rows, the status coloured by its value and ``error_column`` in red."""
    status_mapping = {
        "type": "value",
        "options": {
            value: {"color": color, "index": i}
            for i, (value, color) in enumerate(_STATUS_COLORS.items())
        },
    }
    overrides = [
        by_name(
            "status",
            ("mappings", [status_mapping]),
            ("custom.cellOptions", {"type": "color-text"}),
        ),
        by_name(
            error_column,
            ("custom.width", 420),
            ("custom.cellOptions", {"type": "color-text"}),
            ("color", {"mode": "fixed", "fixedColor": "red"}),
        ),
    ]
    options = {
        "showHeader": True,
        "cellHeight": "sm",
        "footer": {"show": False, "reducer": ["sum"], "countRows": False},
    }
    defaults = {
        "custom": {"align": "auto", "cellOptions": {"type": "auto"}},
        "thresholds": NO_THRESHOLDS,
    }
    return _panel(panel_id, "table", title, description, query, grid, options, defaults, overrides)
