"""The offline dashboard page without a database: its panels are the Grafana dashboard's (a new
panel appears on it, a kind it cannot draw is an error), the alert rules mark the panels they
link to, the stored thresholds are the settings Grafana's lines show, and Grafana's macros are
expanded in one function. The page drawn from real rows: tests/test_grafana_sql.py."""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

import pytest
from droughtwatch_contract.settings import ObserveSettings
from droughtwatch_tools.dashboard_page.data import PageRange, Rows, page_range
from droughtwatch_tools.dashboard_page.figures import (
    COLORS,
    legend_rows,
    series,
    stat_values,
    step_color,
    timeseries_figure,
)
from droughtwatch_tools.dashboard_page.html import Drawn, read_figures, render
from droughtwatch_tools.dashboard_page.panels import UnknownPanel, page_panels, queries_of
from droughtwatch_tools.grafana import queries
from droughtwatch_tools.grafana.alerts import build_alert_rules
from droughtwatch_tools.grafana.dashboard import DRIFT_PANEL_ID, build_dashboard
from droughtwatch_tools.grafana.macros import UnknownMacro, expand_macros, grafana_time
from droughtwatch_tools.grafana.panels import threshold_steps, timeseries

UTC = dt.UTC
START = dt.datetime(2026, 11, 21, tzinfo=UTC)
END = dt.datetime(2026, 12, 4, 23, 59, 59, 999000, tzinfo=UTC)


# -- the macros -------------------------------------------------------------------------------
def test_time_filter_becomes_between_the_range_as_grafana_writes_it() -> None:
    sql = "SELECT 1 FROM ledger WHERE $__timeFilter( batch_date ) AND x"
    assert expand_macros(sql, START, END) == (
        "SELECT 1 FROM ledger WHERE batch_date BETWEEN '2026-11-21T00:00:00Z' AND "
        "'2026-12-04T23:59:59.999Z' AND x"
    )


def test_time_from_and_to_become_the_quoted_times() -> None:
    sql = "SELECT $__timeFrom() AS a, $__timeTo() AS b"
    assert expand_macros(sql, START, END) == (
        "SELECT '2026-11-21T00:00:00Z' AS a, '2026-12-04T23:59:59.999Z' AS b"
    )


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT $__timeGroup(batch_date, '1d')",
        "SELECT $__interval_ms",
        "SELECT $__timeFilter()",
        "SELECT $__timeFrom(batch_date)",
    ],
)
def test_a_macro_not_expanded_here_is_an_error(sql: str) -> None:
    with pytest.raises(UnknownMacro):
        expand_macros(sql, START, END)


def test_grafana_times_are_utc() -> None:
    local = dt.datetime(2026, 12, 4, 1, 30, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert grafana_time(local) == "2026-12-03T23:30:00Z"
    with pytest.raises(ValueError, match="time zone"):
        grafana_time(dt.datetime(2026, 12, 4))


def test_every_panel_and_alert_query_expands() -> None:
    for query in queries.QUERIES:
        expanded = expand_macros(query.sql, START, END)
        assert "$__" not in expanded, query.name


# -- the panels -------------------------------------------------------------------------------
def test_the_page_has_every_dashboard_panel_in_reading_order() -> None:
    dashboard = build_dashboard()
    panels = page_panels()
    assert sorted(p.id for p in panels) == sorted(p["id"] for p in dashboard["panels"])
    positions = [(p.grafana["gridPos"]["y"], p.grafana["gridPos"]["x"]) for p in panels]
    assert positions == sorted(positions)
    titles = [p.title for p in panels]
    assert titles[:6] == [
        "Current model version",
        "Latest prediction drift",
        "Images processed",
        "Files failed",
        "Class distribution per run",
        "Prediction drift",
    ]
    assert "Model version per day" in titles


def test_a_panel_added_to_the_dashboard_appears_on_the_page() -> None:
    dashboard = build_dashboard()
    dashboard["panels"].append(
        timeseries(
            99,
            "Labelled coverage",
            "a later panel",
            queries.MODEL_QUALITY,
            (0, 60, 24, 8),
            bars=False,
            defaults={"unit": "percentunit"},
        )
    )
    panels = page_panels(dashboard)
    assert panels[-1].title == "Labelled coverage" and panels[-1].query is queries.MODEL_QUALITY


def test_a_panel_the_page_cannot_draw_is_named() -> None:
    dashboard = build_dashboard()
    gauge = copy.deepcopy(dashboard["panels"][0])
    gauge.update(type="gauge", title="A gauge")
    dashboard["panels"].append(gauge)
    with pytest.raises(UnknownPanel, match=r"'A gauge'.*not gauge"):
        page_panels(dashboard)
    unknown_sql = copy.deepcopy(dashboard["panels"][0])
    unknown_sql["targets"][0]["rawSql"] = "SELECT 1"
    with pytest.raises(UnknownPanel, match="not one of"):
        page_panels({"panels": [unknown_sql]})


def test_each_alert_rule_marks_the_panel_it_links_to() -> None:
    marks = {(p.id, m.title, m.query.name) for p in page_panels() for m in p.alerts}
    rules = build_alert_rules()["groups"][0]["rules"]
    assert len(marks) == len(rules) == 3
    assert (DRIFT_PANEL_ID, "Prediction drift above threshold", "drift_alert") in marks
    for rule in rules:
        assert int(rule["annotations"]["__panelId__"]) in {panel_id for panel_id, _, _ in marks}


def test_the_stored_thresholds_are_the_settings_grafana_draws() -> None:
    """A panel whose threshold the page reads from the days shows, in Grafana, that setting's
    default: the stored column is named after the setting."""
    stored = [p for p in page_panels() if p.stored_threshold is not None]
    assert {p.title for p in stored} == {
        "Latest prediction drift",
        "Prediction drift",
        "Input drift",
    }
    for panel in stored:
        steps = panel.grafana["fieldConfig"]["defaults"]["thresholds"]["steps"]
        default = ObserveSettings.model_fields[panel.stored_threshold].default
        assert steps[1]["value"] == default, panel.title
        assert panel.stored_threshold in queries.THRESHOLDS.columns


def test_the_page_runs_each_query_once() -> None:
    wanted = queries_of(page_panels())
    names = [q.name for q in wanted]
    assert len(names) == len(set(names))
    assert set(names) == {q.name for q in queries.QUERIES}  # today every query is drawn


# -- drawing ----------------------------------------------------------------------------------
def _day(n: int) -> dt.datetime:
    return START + dt.timedelta(days=n)


def test_rows_with_a_metric_are_one_series_per_metric() -> None:
    rows = Rows(
        ("time", "metric", "share"),
        [(_day(0), "class 0", 0.7), (_day(0), "class 1", 0.3), (_day(1), "class 0", 1.0)],
    )
    assert [(s.name, s.x, s.y) for s in series(rows)] == [
        ("class 0", ["2026-11-21", "2026-11-22"], [0.7, 1.0]),
        ("class 1", ["2026-11-21"], [0.3]),
    ]


def test_a_step_applies_from_its_value_up() -> None:
    steps = [{"color": "green", "value": None}, {"color": "red", "value": 0.25}]
    assert step_color(0.25, steps) == COLORS["red"]
    assert step_color(0.2499, steps) == COLORS["green"]
    assert step_color("baseline", steps) == COLORS["green"]


def _results(scores: list[float | None], thresholds: list[float], flags: list[int]) -> dict:
    days = [_day(n) for n in range(len(scores))]
    return {
        "drift": Rows(
            queries.DRIFT.columns, [(d, s, None) for d, s in zip(days, scores, strict=True)]
        ),
        "thresholds": Rows(
            queries.THRESHOLDS.columns,
            [(d, t, 0.3) for d, t in zip(days, thresholds, strict=True)],
        ),
        "drift_alert": Rows(
            queries.DRIFT_ALERT.columns, [(d, f) for d, f in zip(days, flags, strict=True)]
        ),
    }


def _shown(days: int) -> PageRange:
    return page_range(START.date(), START.date() + dt.timedelta(days=days - 1), None, START)


def test_the_threshold_follows_the_stored_value_of_each_day() -> None:
    (panel,) = [p for p in page_panels() if p.id == DRIFT_PANEL_ID]
    figure = timeseries_figure(
        panel, _results([0.1, 0.2, 0.6], [0.25, 0.25, 0.5], [0, 0, 1]), _shown(3)
    )
    (line,) = [t for t in figure["data"] if t["name"] == "threshold"]
    assert line["x"] == [
        "2026-11-20 12:00:00", "2026-11-21 12:00:00", None,
        "2026-11-21 12:00:00", "2026-11-22 12:00:00", None,
        "2026-11-22 12:00:00", "2026-11-23 12:00:00", None,
    ]  # fmt: skip
    assert line["y"] == [0.25, 0.25, None, 0.25, 0.25, None, 0.5, 0.5, None]
    (band,) = figure["layout"]["shapes"]
    assert (band["x0"], band["x1"]) == ("2026-11-22 12:00:00", "2026-11-23 12:00:00")
    assert figure["layout"]["xaxis"]["range"] == ["2026-11-20 12:00:00", "2026-11-23 12:00:00"]


def test_the_drift_stat_takes_the_newest_stored_threshold() -> None:
    (panel,) = [p for p in page_panels() if p.title == "Latest prediction drift"]
    # 0.3 is over the settings' 0.25, but the stack stored 0.5: no alert colour
    (value,) = stat_values(panel, _results([0.1, 0.3], [0.5, 0.5], [0, 0]))
    assert (value.name, value.text, value.color) == ("drift_score", "0.300", COLORS["green"])


def test_a_narrow_panel_with_a_long_legend_grows() -> None:
    assert legend_rows(["a", "b"], 12) == 1
    assert legend_rows([f"a long series name {k}" for k in range(5)], 6) > 2


def test_the_page_holds_each_figure_for_the_browser() -> None:
    figure: dict[str, Any] = {"data": [{"type": "bar", "x": ["2026-11-21"], "y": [1]}]}
    figure["data"][0]["name"] = "</script><script>alert(1)</script>"
    panel = Drawn(5, "A chart", "what it shows", 12, 9, figure=figure)
    page = render("title", ["a line"], [], [panel], "/* plotly */")
    assert "</script><script>alert(1)" not in page
    assert read_figures(page)[5]["data"] == figure["data"]
    assert read_figures(page)[5]["config"]["displaylogo"] is False


def test_a_threshold_of_the_panel_itself_is_a_dashed_line_across() -> None:
    dashboard = {
        "panels": [
            timeseries(
                99,
                "Accuracy with a fixed line",
                "a later panel",
                queries.MODEL_QUALITY,
                (0, 0, 12, 8),
                bars=False,
                defaults={"unit": "percentunit"},
                thresholds=threshold_steps(("green", None), ("red", 0.5)),
            )
        ]
    }
    (panel,) = page_panels(dashboard, {"groups": []})
    rows = Rows(queries.MODEL_QUALITY.columns, [(_day(0), 0.6, 0.5, 0.7, 0.6)])
    figure = timeseries_figure(panel, {"model_quality": rows}, _shown(1))
    (line,) = figure["layout"]["shapes"]
    assert (line["y0"], line["y1"], line["xref"]) == (0.5, 0.5, "paper")
    assert line["line"]["color"] == COLORS["red"] and line["line"]["dash"] == "dash"
    assert [t["name"] for t in figure["data"]] == list(queries.MODEL_QUALITY.columns[1:])


def test_the_range_is_the_days_asked_for_within_the_batches() -> None:
    first, last = dt.date(2026, 11, 21), dt.date(2026, 12, 4)
    later = dt.datetime(2026, 12, 10, 8, tzinfo=UTC)
    week = page_range(first, last, 7, later)
    assert (week.first_day, week.last_day, week.days) == (dt.date(2026, 11, 28), last, 7)
    assert week.start == dt.datetime(2026, 11, 28, tzinfo=UTC)
    # to now: the stage runs of old batches ran since
    assert week.end == later
    # never before the first batch, and to the end of the newest day when that is later
    everything = page_range(first, last, 365, START)
    assert (everything.first_day, everything.days) == (first, 14)
    assert everything.end == END
    assert page_range(first, last, None, START) == everything
