"""The page's panels: the Grafana dashboard's panels, in its reading order, each with its query,
the alert rules that link to it (their days are marked on it) and, for a threshold that Observe
stores with each day, the column it is stored in (the page draws the stored value; Grafana draws
the settings' default)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from droughtwatch_tools.grafana import queries
from droughtwatch_tools.grafana.alerts import build_alert_rules
from droughtwatch_tools.grafana.dashboard import build_dashboard
from droughtwatch_tools.grafana.queries import Query

# A threshold line or colour of the panels on these queries is a setting Observe applied and
# stored per day: the column of queries.THRESHOLDS that holds it (named as the setting).
STORED_THRESHOLDS: dict[str, str] = {
    queries.DRIFT.name: "drift_threshold",
    queries.INPUT_DRIFT.name: "feature_drift_threshold",
}

# The Grafana panel types the page draws (figures.py draws each).
KINDS = ("stat", "timeseries", "table")


class UnknownPanel(ValueError):
    """A dashboard panel the page cannot draw: its type or its SQL is unknown here."""


@dataclass(frozen=True)
class AlertMark:
    """An alert rule's days on the panel it links to: the days its flag column is 1."""

    title: str
    query: Query

    @property
    def flag(self) -> str:
        return self.query.columns[1]


@dataclass(frozen=True)
class PagePanel:
    """One dashboard panel as the page draws it; ``grafana`` is the panel as Grafana has it."""

    grafana: dict[str, Any]
    query: Query
    alerts: tuple[AlertMark, ...] = ()
    stored_threshold: str | None = None

    @property
    def id(self) -> int:
        return int(self.grafana["id"])

    @property
    def kind(self) -> str:
        return str(self.grafana["type"])

    @property
    def title(self) -> str:
        return str(self.grafana["title"])

    @property
    def description(self) -> str:
        return str(self.grafana.get("description", ""))

    @property
    def width(self) -> int:
        """Columns of Grafana's 24-column grid."""
        return int(self.grafana["gridPos"]["w"])

    @property
    def height(self) -> int:
        """Rows of Grafana's grid (about 30 pixels each)."""
        return int(self.grafana["gridPos"]["h"])


def _query_of(sql: str, where: str) -> Query:
    for query in queries.QUERIES:
        if query.sql == sql:
            return query
    raise UnknownPanel(f"{where}: its SQL is not one of grafana/queries.py's QUERIES")


def page_panels(
    dashboard: dict[str, Any] | None = None, rules: dict[str, Any] | None = None
) -> list[PagePanel]:
    """The dashboard's panels (default: the one provisioned) in reading order (top to bottom,
    left to right), with the alert rules (default: the provisioned ones) that link to each."""
    dashboard = dashboard if dashboard is not None else build_dashboard()
    rules = rules if rules is not None else build_alert_rules()
    marks: dict[int, list[AlertMark]] = {}
    for group in rules["groups"]:
        for rule in group["rules"]:
            (source,) = [d for d in rule["data"] if d["datasourceUid"] != "__expr__"]
            query = _query_of(source["model"]["rawSql"], f"alert rule {rule['title']!r}")
            panel_id = int(rule["annotations"]["__panelId__"])
            marks.setdefault(panel_id, []).append(AlertMark(rule["title"], query))
    panels = []
    for grafana in sorted(
        dashboard["panels"], key=lambda p: (p["gridPos"]["y"], p["gridPos"]["x"])
    ):
        where = f"panel {grafana['title']!r}"
        if grafana["type"] not in KINDS:
            raise UnknownPanel(f"{where}: the page draws {', '.join(KINDS)}, not {grafana['type']}")
        (target,) = grafana["targets"]
        query = _query_of(target["rawSql"], where)
        panels.append(
            PagePanel(
                grafana,
                query,
                tuple(marks.get(int(grafana["id"]), ())),
                STORED_THRESHOLDS.get(query.name),
            )
        )
    return panels


def queries_of(panels: list[PagePanel]) -> list[Query]:
    """Every query the page runs, each once: the panels', their alerts', and the stored
    thresholds' when a panel draws one."""
    wanted: list[Query] = []
    for panel in panels:
        wanted.append(panel.query)
        wanted.extend(mark.query for mark in panel.alerts)
        if panel.stored_threshold is not None:
            wanted.append(queries.THRESHOLDS)
    return list({q.name: q for q in wanted}.values())
