"""Grafana as code: the datasource, the "Model observability" dashboard and the alerts are
built here and written to `grafana/` (`python -m droughtwatch_tools.grafana`), and
`droughtwatch grafana` starts that compose project against the local demo's embedded database
or against RDS through the bastion tunnel.

The drift thresholds are read from `ObserveSettings`' defaults, so the dashboard's threshold
lines and the Observe stage's defaults agree; a test checks that the committed files equal
what this module generates. The model signals come from the daily rows (daily_metrics, one per
day and model version): the alerts fire on the flags Observe stored in them (prediction drift,
input drift, the accuracy drop), which it computed with the deployed thresholds and only for
days with enough images.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from droughtwatch_contract.settings import CommonSettings, ObserveSettings

from droughtwatch_tools import cloud

# -- identities shared by every provisioning file ---------------------------------------------
DATASOURCE_UID = "droughtwatch-pg"
DATASOURCE_TYPE = "grafana-postgresql-datasource"
DATASOURCE_REF = {"type": DATASOURCE_TYPE, "uid": DATASOURCE_UID}
DASHBOARD_UID = "droughtwatch-model-observability"
DASHBOARD_TITLE = "Model observability"
DASHBOARD_FILE = "model-observability.json"
FOLDER = "droughtwatch"
ALERT_RULE_UID = "droughtwatch-prediction-drift"
ALERT_GROUP = "droughtwatch"
# Grafana 12 writes schemaVersion 41; older files are migrated on load, newer ones are not.
SCHEMA_VERSION = 41
# Where the compose file mounts the dashboards folder inside the container.
CONTAINER_DASHBOARDS = "/etc/grafana/dashboards"

DATABASE_NAME: str = CommonSettings.model_fields["database_name"].default
DRIFT_THRESHOLD: float = ObserveSettings.model_fields["drift_threshold"].default
DRIFT_METHOD: str = ObserveSettings.model_fields["drift_method"].default
FEATURE_DRIFT_THRESHOLD: float = ObserveSettings.model_fields["feature_drift_threshold"].default
MIN_DAILY_IMAGES: int = ObserveSettings.model_fields["min_daily_images"].default
INPUT_DRIFT_RULE_UID = "droughtwatch-input-drift"
ACCURACY_RULE_UID = "droughtwatch-accuracy-drop"

# The variables the datasource reads; `droughtwatch grafana` sets them in the compose
# subprocess's environment only (never in a file).
ENV_HOST = "DROUGHTWATCH_DB_HOST"
ENV_PORT = "DROUGHTWATCH_DB_PORT"
ENV_NAME = "DROUGHTWATCH_DB_NAME"
ENV_USER = "DROUGHTWATCH_DB_USER"
ENV_PASSWORD = "DROUGHTWATCH_DB_PASSWORD"
ENV_SSLMODE = "DROUGHTWATCH_DB_SSLMODE"
ENV_GRAFANA_PORT = "DROUGHTWATCH_GRAFANA_PORT"
DATASOURCE_ENV = (ENV_HOST, ENV_PORT, ENV_NAME, ENV_USER, ENV_PASSWORD, ENV_SSLMODE)

# The dashboard opens on whole UTC days from 30 days ago to the end of tomorrow: the daily
# batches (and the demo's 14 days ending today) fall inside it, and "tomorrow" keeps a batch
# dated by a clock ahead of UTC in view.
TIME_FROM = "now-30d/d"
TIME_TO = "now+1d/d"
# The alert looks at the batches of the last 7 days and judges the newest one.
ALERT_WINDOW_SECONDS = 7 * 24 * 3600

# A batch's date is a day partition (raw/<YYYY-MM-DD>/...): charted at midnight UTC, whatever
# the session's time zone, on a dashboard shown in UTC so the points sit on their dates.
BATCH_TIME = "batch_date::timestamp AT TIME ZONE 'UTC'"


@dataclass(frozen=True)
class Query:
    """One SQL query of the dashboard or the alert, with the columns Grafana is given."""

    name: str
    sql: str
    format: str  # "time_series" (needs a "time" column, ascending) or "table"
    columns: tuple[str, ...]


# The model's signals are read from the daily rows (daily_metrics: a day's files pooled, per
# model version); a day with several model versions sums their counts.
CLASS_SHARES = Query(
    name="class_shares",
    sql=f"""SELECT d.{BATCH_TIME} AS "time",
       'class ' || c.label AS metric,
       sum(c.n) / sum(sum(c.n)) OVER (PARTITION BY d.batch_date) AS share
FROM daily_metrics d
CROSS JOIN LATERAL (
    SELECT key AS label, value::numeric AS n FROM jsonb_each_text(d.class_counts)
) AS c
WHERE $__timeFilter(d.batch_date)
GROUP BY d.batch_date, c.label
ORDER BY 1, 2""",
    format="time_series",
    columns=("time", "metric", "share"),
)

# A day below the minimum sample size is drawn apart, as "not enough data": its score is
# sampling noise as much as drift, and no alert fires for it.
DRIFT = Query(
    name="drift",
    sql=f"""SELECT {BATCH_TIME} AS "time",
       max(drift_score) FILTER (WHERE enough_data) AS drift_score,
       max(drift_score) FILTER (WHERE NOT enough_data) AS not_enough_data
FROM daily_metrics
WHERE $__timeFilter(batch_date) AND drift_score IS NOT NULL
GROUP BY batch_date
ORDER BY 1""",
    format="time_series",
    columns=("time", "drift_score", "not_enough_data"),
)

# Accuracy and macro F1 of the day's labelled images (over model versions, weighted by their
# labelled images), the model's reference accuracy, and where the accuracy alert starts.
MODEL_QUALITY = Query(
    name="model_quality",
    sql=f"""SELECT {BATCH_TIME} AS "time",
       sum(accuracy * labelled_images) / sum(labelled_images) AS accuracy,
       sum(macro_f1 * labelled_images) / sum(labelled_images) AS macro_f1,
       max(reference_accuracy) AS reference_accuracy,
       max(reference_accuracy - accuracy_margin) AS alert_below
FROM daily_metrics
WHERE $__timeFilter(batch_date) AND labelled_images > 0 AND accuracy IS NOT NULL
GROUP BY batch_date
ORDER BY 1""",
    format="time_series",
    columns=("time", "accuracy", "macro_f1", "reference_accuracy", "alert_below"),
)

# Each summary's drift score (normed Wasserstein) per day; the days without enough images as
# one series of their largest score.
INPUT_DRIFT = Query(
    name="input_drift",
    sql=f"""SELECT "time", metric, score FROM (
    SELECT d.{BATCH_TIME} AS "time",
           replace(f.key, 'mean_', '') AS metric,
           max(f.value::double precision) AS score
    FROM daily_metrics d
    CROSS JOIN LATERAL jsonb_each_text(d.feature_drift) AS f
    WHERE $__timeFilter(d.batch_date) AND d.enough_data
    GROUP BY d.batch_date, f.key
    UNION ALL
    SELECT d.{BATCH_TIME} AS "time",
           'not enough data' AS metric,
           max(f.value::double precision) AS score
    FROM daily_metrics d
    CROSS JOIN LATERAL jsonb_each_text(d.feature_drift) AS f
    WHERE $__timeFilter(d.batch_date) AND NOT d.enough_data
    GROUP BY d.batch_date
) AS scores
ORDER BY 1, 2""",
    format="time_series",
    columns=("time", "metric", "score"),
)

# Per day: blank records, images without a label, and the worst band's (index's) share of
# pixels at 0, at 255 and not finite.
DATA_QUALITY = Query(
    name="data_quality",
    sql=f"""SELECT {BATCH_TIME} AS "time",
       sum(dropped_blank)::double precision / nullif(sum(records), 0) AS blank,
       sum(missing_label_share * images) / nullif(sum(images), 0) AS no_label,
       max((SELECT max(value::double precision) FROM jsonb_each_text(zero_share)))
           AS zero_worst_band,
       max((SELECT max(value::double precision) FROM jsonb_each_text(saturated_share)))
           AS saturated_worst_band,
       max((SELECT max(value::double precision) FROM jsonb_each_text(nonfinite_share)))
           AS nonfinite_worst_index
FROM daily_metrics
WHERE $__timeFilter(batch_date)
GROUP BY batch_date
ORDER BY 1""",
    format="time_series",
    columns=(
        "time",
        "blank",
        "no_label",
        "zero_worst_band",
        "saturated_worst_band",
        "nonfinite_worst_index",
    ),
)


def _flag_query(name: str, flag: str, where: str = "") -> Query:
    """The alert's series: 1 on a day Observe flagged (any model version), else 0."""
    return Query(
        name=name,
        sql=f"""SELECT {BATCH_TIME} AS "time",
       max({flag}::int) AS {flag}
FROM daily_metrics
WHERE $__timeFilter(batch_date){where}
GROUP BY batch_date
ORDER BY 1""",
        format="time_series",
        columns=("time", flag),
    )


DRIFT_ALERT = _flag_query("drift_alert", "drift_detected")
INPUT_DRIFT_ALERT = _flag_query("input_drift_alert", "input_drift_detected")
# Days without labels say nothing about accuracy: the newest labelled day decides.
ACCURACY_ALERT = _flag_query("accuracy_alert", "accuracy_alert", " AND labelled_images > 0")

IMAGES = Query(
    name="images",
    sql=f"""SELECT {BATCH_TIME} AS "time",
       coalesce(sum(images), 0) AS processed,
       coalesce(sum(dropped), 0) AS dropped_blank,
       coalesce(sum(predicted_images), 0) AS predicted
FROM ledger
WHERE $__timeFilter(batch_date) AND status <> 'superseded'
GROUP BY batch_date
ORDER BY 1""",
    format="time_series",
    columns=("time", "processed", "dropped_blank", "predicted"),
)

FILES = Query(
    name="files",
    sql=f"""SELECT {BATCH_TIME} AS "time",
       count(*) FILTER (WHERE status = 'done') AS done,
       count(*) FILTER (WHERE status IN ('pending', 'running')) AS in_progress,
       count(*) FILTER (WHERE status = 'failed') AS failed,
       count(*) FILTER (WHERE status IN ('skipped', 'duplicate')) AS not_taken,
       count(*) FILTER (WHERE status = 'superseded') AS superseded
FROM ledger
WHERE $__timeFilter(batch_date)
GROUP BY batch_date
ORDER BY 1""",
    format="time_series",
    columns=("time", "done", "in_progress", "failed", "not_taken", "superseded"),
)

# The model the newest predictions came from, whatever the time range.
MODEL = Query(
    name="model",
    sql="""SELECT model_name, model_version
FROM ledger
WHERE predicted_at IS NOT NULL
ORDER BY predicted_at DESC, id DESC
LIMIT 1""",
    format="table",
    columns=("model_name", "model_version"),
)

# Failed files first, then the newest batches.
LEDGER = Query(
    name="ledger",
    sql="""SELECT raw_key, batch_date, stage, status, attempts,
       registered_at, processed_at, predicted_at, observed_at, updated_at,
       model_version, last_error, last_error_at, note, duplicate_of
FROM ledger
WHERE $__timeFilter(batch_date)
ORDER BY (status = 'failed') DESC, batch_date DESC, raw_key
LIMIT 1000""",
    format="table",
    columns=(
        "raw_key",
        "batch_date",
        "stage",
        "status",
        "attempts",
        "registered_at",
        "processed_at",
        "predicted_at",
        "observed_at",
        "updated_at",
        "model_version",
        "last_error",
        "last_error_at",
        "note",
        "duplicate_of",
    ),
)

RUNS = Query(
    name="runs",
    sql="""SELECT run_id, stage, started_at, finished_at, status,
       files_done, files_failed, images, dropped, remaining, error
FROM runs
WHERE $__timeFilter(started_at)
ORDER BY started_at DESC, id DESC
LIMIT 500""",
    format="table",
    columns=(
        "run_id",
        "stage",
        "started_at",
        "finished_at",
        "status",
        "files_done",
        "files_failed",
        "images",
        "dropped",
        "remaining",
        "error",
    ),
)

QUERIES: tuple[Query, ...] = (
    CLASS_SHARES,
    DRIFT,
    MODEL_QUALITY,
    INPUT_DRIFT,
    DATA_QUALITY,
    IMAGES,
    FILES,
    MODEL,
    LEDGER,
    RUNS,
    DRIFT_ALERT,
    INPUT_DRIFT_ALERT,
    ACCURACY_ALERT,
)


# -- dashboard ----------------------------------------------------------------------------------
def _target(query: Query) -> dict[str, Any]:
    return {
        "refId": "A",
        "datasource": dict(DATASOURCE_REF),
        "editorMode": "code",
        "format": query.format,
        "rawQuery": True,
        "rawSql": query.sql,
    }


def _thresholds(*steps: tuple[str, float | None]) -> dict[str, Any]:
    """Grafana's steps: the first is the base (-Infinity, written null), then ascending."""
    return {"mode": "absolute", "steps": [{"color": c, "value": v} for c, v in steps]}


_NO_THRESHOLDS = _thresholds(("green", None))
_DRIFT_THRESHOLDS = _thresholds(("green", None), ("red", DRIFT_THRESHOLD))


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
        "targets": [_target(query)],
        "options": options,
        "fieldConfig": {"defaults": defaults, "overrides": overrides or []},
    }


def _by_name(column: str, *properties: tuple[str, Any]) -> dict[str, Any]:
    return {
        "matcher": {"id": "byName", "options": column},
        "properties": [{"id": key, "value": value} for key, value in properties],
    }


def _stat(
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
    options = {
        "reduceOptions": {"values": False, "calcs": [calc], "fields": f"/^{field}$/"},
        "orientation": "auto",
        "textMode": "value_and_name",
        "colorMode": "value",
        "graphMode": "none",
        "justifyMode": "auto",
    }
    return _panel(panel_id, "stat", title, description, query, grid, options, defaults)


def _timeseries(
    panel_id: int,
    title: str,
    description: str,
    query: Query,
    grid: tuple[int, int, int, int],
    *,
    bars: bool,
    stack: bool = False,
    defaults: dict[str, Any],
    thresholds: dict[str, Any] = _NO_THRESHOLDS,
    colors: dict[str, str] | None = None,
    styles: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    custom = {
        "drawStyle": "bars" if bars else "line",
        "lineWidth": 1 if bars else 2,
        "fillOpacity": 80 if bars else 10,
        "pointSize": 6,
        "showPoints": "never" if bars else "always",
        "spanNulls": False,
        "stacking": {"mode": "normal" if stack else "none", "group": "A"},
        "axisPlacement": "auto",
        # a threshold other than the base step is drawn as a dashed line
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
        _by_name(column, ("color", {"mode": "fixed", "fixedColor": color}))
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


def _table(
    panel_id: int,
    title: str,
    description: str,
    query: Query,
    grid: tuple[int, int, int, int],
    *,
    error_column: str,
) -> dict[str, Any]:
    status_mapping = {
        "type": "value",
        "options": {
            value: {"color": color, "index": i}
            for i, (value, color) in enumerate(_STATUS_COLORS.items())
        },
    }
    overrides = [
        _by_name(
            "status",
            ("mappings", [status_mapping]),
            ("custom.cellOptions", {"type": "color-text"}),
        ),
        _by_name(
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
        "thresholds": _NO_THRESHOLDS,
    }
    return _panel(panel_id, "table", title, description, query, grid, options, defaults, overrides)


DRIFT_PANEL_ID = 6
QUALITY_PANEL_ID = 11
INPUT_DRIFT_PANEL_ID = 12
_METHOD = DRIFT_METHOD.upper()
_FEATURE_THRESHOLDS = _thresholds(("green", None), ("red", FEATURE_DRIFT_THRESHOLD))
_NOT_ENOUGH = f"not enough data (< {MIN_DAILY_IMAGES} images)"
_DASHED = {"fill": "dash", "dash": [10, 10]}


def build_dashboard() -> dict[str, Any]:
    """The "Model observability" dashboard, ready for file provisioning."""
    panels = [
        _stat(
            1,
            "Current model version",
            "Model of the newest predictions (ledger.model_name, ledger.model_version), "
            "whatever the time range.",
            MODEL,
            (0, 0, 6, 4),
            field="model_(name|version)",
            calc="lastNotNull",
            defaults={"color": {"mode": "fixed", "fixedColor": "text"}},
        ),
        _stat(
            2,
            "Latest prediction drift",
            f"Drift ({_METHOD}) of the newest day in range with enough images; red from the "
            f"alert threshold ({DRIFT_THRESHOLD}) up.",
            DRIFT,
            (6, 0, 6, 4),
            field="drift_score",
            calc="lastNotNull",
            defaults={
                "decimals": 3,
                "color": {"mode": "thresholds"},
                "thresholds": _DRIFT_THRESHOLDS,
            },
        ),
        _stat(
            3,
            "Images processed",
            "Images decoded by Processing over the batches in range (blank images included).",
            IMAGES,
            (12, 0, 6, 4),
            field="processed",
            calc="sum",
            defaults={"unit": "short", "color": {"mode": "fixed", "fixedColor": "blue"}},
        ),
        _stat(
            4,
            "Files failed",
            "Raw files of the batches in range whose last stage attempt failed (the ledger "
            "below shows the error).",
            FILES,
            (18, 0, 6, 4),
            field="failed",
            calc="sum",
            defaults={
                "unit": "short",
                "color": {"mode": "thresholds"},
                "thresholds": _thresholds(("green", None), ("red", 1)),
            },
        ),
        _timeseries(
            5,
            "Class distribution per run",
            "Share of each predicted class in each batch (daily_metrics.class_counts: the day's "
            "files pooled).",
            CLASS_SHARES,
            (0, 4, 12, 9),
            bars=True,
            stack=True,
            defaults={"unit": "percentunit", "min": 0, "max": 1},
        ),
        _timeseries(
            DRIFT_PANEL_ID,
            "Prediction drift",
            f"Drift ({_METHOD}) of the predicted classes against the reference, on each day's "
            f"files pooled. Dashed line: the alert threshold ({DRIFT_THRESHOLD}). Grey points: "
            f"days with fewer than {MIN_DAILY_IMAGES} images, not enough data for an alert.",
            DRIFT,
            (12, 4, 12, 9),
            bars=False,
            defaults={"min": 0, "decimals": 3},
            thresholds=_DRIFT_THRESHOLDS,
            styles=[
                _by_name(
                    "not_enough_data",
                    ("displayName", _NOT_ENOUGH),
                    ("color", {"mode": "fixed", "fixedColor": "#8e8e8e"}),
                    ("custom.drawStyle", "points"),
                )
            ],
        ),
        _timeseries(
            QUALITY_PANEL_ID,
            "Model quality",
            "Accuracy and macro F1 of each day's labelled images, the model's reference "
            "accuracy (dashed) and, dashed red, the accuracy below which the alert fires "
            "(reference minus the configured margin). Days without labels have no point.",
            MODEL_QUALITY,
            (0, 13, 12, 9),
            bars=False,
            defaults={"unit": "percentunit", "min": 0, "max": 1, "decimals": 3},
            styles=[
                _by_name(
                    "reference_accuracy",
                    ("color", {"mode": "fixed", "fixedColor": "green"}),
                    ("custom.lineStyle", _DASHED),
                    ("custom.showPoints", "never"),
                ),
                _by_name(
                    "alert_below",
                    ("displayName", "accuracy alert below"),
                    ("color", {"mode": "fixed", "fixedColor": "red"}),
                    ("custom.lineStyle", _DASHED),
                    ("custom.showPoints", "never"),
                ),
            ],
        ),
        _timeseries(
            INPUT_DRIFT_PANEL_ID,
            "Input drift",
            "Drift of each per-image summary (the mean of a model channel, NDVI, NDMI, EVI) "
            "against the model's reference summaries: normed Wasserstein distance, on each "
            f"day's images pooled. Dashed line: a summary drifts from {FEATURE_DRIFT_THRESHOLD}; "
            "the input drifts (and the alert fires) when half of them do. 'not enough data': "
            f"the largest score of days with fewer than {MIN_DAILY_IMAGES} images.",
            INPUT_DRIFT,
            (12, 13, 12, 9),
            bars=False,
            defaults={"min": 0, "decimals": 3},
            thresholds=_FEATURE_THRESHOLDS,
        ),
        _timeseries(
            13,
            "Data quality",
            "Per day: share of raw records that were blank (dropped), of images without a "
            "label, and the worst band's share of pixels at 0 and at 255, and the worst index's "
            "share of non-finite pixels.",
            DATA_QUALITY,
            (0, 22, 8, 8),
            bars=False,
            defaults={"unit": "percentunit", "min": 0, "decimals": 2},
        ),
        _timeseries(
            7,
            "Images per run",
            "Per batch: images decoded by Processing, blank images dropped, images predicted.",
            IMAGES,
            (8, 22, 8, 8),
            bars=True,
            defaults={"unit": "short", "min": 0},
        ),
        _timeseries(
            8,
            "Files per run by status",
            "Per batch: raw files done, still in the pipeline, failed, not taken (skipped: "
            "not a TFRecord; duplicate: content already taken under another key) and "
            "superseded by a newer upload of the same key.",
            FILES,
            (16, 22, 8, 8),
            bars=True,
            stack=True,
            defaults={"unit": "short", "min": 0, "decimals": 0},
            colors={
                "done": "green",
                "in_progress": "blue",
                "failed": "red",
                "not_taken": "yellow",
                "superseded": "purple",
            },
        ),
        _table(
            9,
            "Ledger",
            "Each raw object: its batch, the next stage it needs (done when finished), status "
            "(done, pending, running, failed; skipped, duplicate or superseded with the reason "
            "in note), attempts, when each stage finished, and the last error. Failed first.",
            LEDGER,
            (0, 30, 24, 11),
            error_column="last_error",
        ),
        _table(
            10,
            "Stage runs",
            "Each stage invocation (runs table): files done and failed, images, what remained "
            "for the next invocation, and the error that stopped a stage.",
            RUNS,
            (0, 41, 24, 8),
            error_column="error",
        ),
    ]
    return {
        "uid": DASHBOARD_UID,
        "title": DASHBOARD_TITLE,
        "description": "Batches of the droughtwatch pipeline, day by day: predicted classes, "
        "prediction drift, model quality, input drift, data quality, the ledger of raw files "
        "and the stage runs.",
        "tags": ["droughtwatch"],
        "timezone": "utc",
        "editable": False,
        "graphTooltip": 1,
        "time": {"from": TIME_FROM, "to": TIME_TO},
        "timepicker": {},
        "refresh": "1m",
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "links": [],
        "templating": {"list": []},
        "annotations": {
            "list": [
                {
                    "builtIn": 1,
                    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                    "enable": True,
                    "hide": True,
                    "iconColor": "rgba(0, 211, 255, 1)",
                    "name": "Annotations & Alerts",
                    "type": "dashboard",
                }
            ]
        },
        "panels": panels,
    }


# -- datasource, dashboard provider, alert rule --------------------------------------------------
def build_datasource() -> dict[str, Any]:
    """The PostgreSQL datasource; every connection detail comes from the container's env."""
    return {
        "apiVersion": 1,
        "datasources": [
            {
                "name": "droughtwatch",
                "uid": DATASOURCE_UID,
                "type": DATASOURCE_TYPE,
                "access": "proxy",
                "url": f"${{{ENV_HOST}}}:${{{ENV_PORT}}}",
                "user": f"${{{ENV_USER}}}",
                "isDefault": True,
                "editable": False,
                "jsonData": {
                    "database": f"${{{ENV_NAME}}}",
                    "sslmode": f"${{{ENV_SSLMODE}}}",
                    "postgresVersion": 1500,
                    "timescaledb": False,
                    "maxOpenConns": 5,
                    "connMaxLifetime": 14400,
                },
                "secureJsonData": {"password": f"${{{ENV_PASSWORD}}}"},
            }
        ],
    }


def build_dashboard_provider() -> dict[str, Any]:
    return {
        "apiVersion": 1,
        "providers": [
            {
                "name": "droughtwatch",
                "orgId": 1,
                "folder": FOLDER,
                "folderUid": FOLDER,
                "type": "file",
                "disableDeletion": True,
                "allowUiUpdates": False,
                "updateIntervalSeconds": 30,
                "options": {"path": CONTAINER_DASHBOARDS, "foldersFromFilesStructure": False},
            }
        ],
    }


def _alert_rule(
    uid: str, title: str, query: Query, panel_id: int, summary: str, description: str
) -> dict[str, Any]:
    """A rule on one of Observe's daily flags: the flag of the newest day in the window (the
    query reduced to its last point) fires when it is 1. The flag was set by Observe with the
    deployed thresholds and only for days with enough images, so the rule compares nothing
    itself. No data in the window is not a problem, so it stays OK."""
    return {
        "uid": uid,
        "title": title,
        "condition": "C",
        "data": [
            {
                "refId": "A",
                "relativeTimeRange": {"from": ALERT_WINDOW_SECONDS, "to": 0},
                "datasourceUid": DATASOURCE_UID,
                "model": {**_target(query), "intervalMs": 60000, "maxDataPoints": 43200},
            },
            {
                "refId": "B",
                "datasourceUid": "__expr__",
                "model": {
                    "refId": "B",
                    "type": "reduce",
                    "expression": "A",
                    "reducer": "last",
                    "settings": {"mode": "dropNN"},
                },
            },
            {
                "refId": "C",
                "datasourceUid": "__expr__",
                "model": {
                    "refId": "C",
                    "type": "threshold",
                    "expression": "B",
                    "conditions": [{"evaluator": {"type": "gt", "params": [0]}}],
                },
            },
        ],
        "noDataState": "OK",
        "execErrState": "Error",
        "for": "0s",
        "isPaused": False,
        "annotations": {
            "summary": summary,
            "description": description,
            "__dashboardUid__": DASHBOARD_UID,
            "__panelId__": str(panel_id),
        },
        "labels": {"severity": "warning", "service": "droughtwatch"},
    }


def build_alert_rules() -> dict[str, Any]:
    """Three rules on the newest day: prediction drift, input drift, and accuracy fallen more
    than the margin below the reference."""
    rules = [
        _alert_rule(
            ALERT_RULE_UID,
            "Prediction drift above threshold",
            DRIFT_ALERT,
            DRIFT_PANEL_ID,
            "Prediction drift reached the threshold",
            f"The newest day's prediction drift ({DRIFT_METHOD}) reached the threshold "
            f"(default {DRIFT_THRESHOLD}) on at least {MIN_DAILY_IMAGES} images: the predicted "
            "classes moved away from the reference. Check the class distribution, the input "
            "drift and the data quality.",
        ),
        _alert_rule(
            INPUT_DRIFT_RULE_UID,
            "Input drift",
            INPUT_DRIFT_ALERT,
            INPUT_DRIFT_PANEL_ID,
            "The model's inputs drifted",
            "On the newest day, at least half of the per-image summaries (channel means, NDVI, "
            f"NDMI, EVI) drifted from the model's reference (normed Wasserstein distance from "
            f"{FEATURE_DRIFT_THRESHOLD} by default) on at least {MIN_DAILY_IMAGES} images. The "
            "predictions may follow: check the input drift panel, the data quality, and the "
            "model quality where labels exist.",
        ),
        _alert_rule(
            ACCURACY_RULE_UID,
            "Accuracy below the reference",
            ACCURACY_ALERT,
            QUALITY_PANEL_ID,
            "Accuracy fell below the model's reference",
            "On the newest day with labelled images, accuracy is more than the configured "
            "margin (DROUGHTWATCH_ACCURACY_MARGIN, default "
            f"{ObserveSettings.model_fields['accuracy_margin'].default}) below the model's "
            f"reference accuracy, on at least {MIN_DAILY_IMAGES} labelled images. Check the "
            "model quality panel and its per-class values in the day's report.",
        ),
    ]
    return {
        "apiVersion": 1,
        "groups": [
            {
                "orgId": 1,
                "name": ALERT_GROUP,
                "folder": FOLDER,
                "interval": "1m",
                "rules": rules,
            }
        ],
    }


# -- files ----------------------------------------------------------------------------------------
GENERATED_HEADER = (
    "# Generated by `uv run python -m droughtwatch_tools.grafana`; edit grafana.py, not "
    "this file.\n"
)


def _yaml(document: dict[str, Any]) -> str:
    import yaml  # dev-time only: writing the files, not running Grafana

    class _Dumper(yaml.SafeDumper):
        pass

    def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
        style = "|" if "\n" in value else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    _Dumper.add_representer(str, _str)
    return GENERATED_HEADER + yaml.dump(
        document, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=100
    )


def rendered_files() -> dict[str, str]:
    """Path under `grafana/` -> content, for every generated file."""
    return {
        "provisioning/datasources/droughtwatch.yaml": _yaml(build_datasource()),
        "provisioning/dashboards/droughtwatch.yaml": _yaml(build_dashboard_provider()),
        "provisioning/alerting/droughtwatch.yaml": _yaml(build_alert_rules()),
        f"dashboards/{DASHBOARD_FILE}": json.dumps(build_dashboard(), indent=2) + "\n",
    }


def write_files(grafana_dir: Path) -> list[Path]:
    written = []
    for relative, content in rendered_files().items():
        path = grafana_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
        written.append(path)
    return written


# -- connecting Grafana to a database --------------------------------------------------------------
class GrafanaSetupError(Exception):
    """Something `droughtwatch grafana` needs is missing; the message says what to do."""


@dataclass(frozen=True)
class Connection:
    """Where Grafana's datasource connects. Repr hides the password."""

    host: str
    port: int
    database: str
    user: str
    password: str
    sslmode: str

    def __repr__(self) -> str:
        return (
            f"Connection(host={self.host!r}, port={self.port}, database={self.database!r}, "
            f"user={self.user!r}, sslmode={self.sslmode!r})"
        )

    def environment(self) -> dict[str, str]:
        """The compose subprocess's extra variables (the datasource file reads them)."""
        return {
            ENV_HOST: self.host,
            ENV_PORT: str(self.port),
            ENV_NAME: self.database,
            ENV_USER: self.user,
            ENV_PASSWORD: self.password,
            ENV_SSLMODE: self.sslmode,
        }


def default_data_dir() -> Path:
    """Where the demo keeps its embedded PostgreSQL."""
    from droughtwatch_tools.local.state import postgres_root

    return postgres_root()


def local_connection(data_dir: Path | None = None) -> Connection:
    """The demo's embedded database, started if its files exist but the server is stopped."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    from droughtwatch_tools.local.database import GRAFANA_ROLE
    from droughtwatch_tools.local.postgres import (
        DATABASE,
        EmbeddedPostgres,
        EmbeddedPostgresError,
    )

    root = Path(data_dir) if data_dir is not None else default_data_dir()
    if not (root / "pgdata" / "PG_VERSION").exists():
        raise GrafanaSetupError(
            f"no demo database in {root}: run `droughtwatch demo` first, or pass --data-dir "
            "with the folder that holds it"
        )
    pg = EmbeddedPostgres(root)
    try:
        if not pg.is_running():
            pg.start()
        # Grafana reads through its read-only role, as on RDS (migration 0003)
        info = conninfo_to_dict(pg.role_dsn(GRAFANA_ROLE, DATABASE))
    except EmbeddedPostgresError as exc:
        raise GrafanaSetupError(f"cannot start the demo database in {root}: {exc}") from None
    except psycopg.Error as exc:
        raise GrafanaSetupError(
            f"the demo database in {root} has no Grafana role yet ({type(exc).__name__}): run "
            "`droughtwatch db migrate` or `droughtwatch demo` first"
        ) from None
    return Connection("127.0.0.1", pg.port, DATABASE, GRAFANA_ROLE, info["password"], "disable")


def read_stack_outputs(path: Path | None, stack: str | None, cwd: Path | None) -> dict[str, Any]:
    """The stack's outputs, from a file written by `pulumi stack output --json` or from the
    Pulumi CLI itself (run in ``cwd``, the directory of Pulumi.yaml)."""
    if path is not None:
        try:
            outputs = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise GrafanaSetupError(
                f"cannot read stack outputs from {path} ({type(exc).__name__}): write them with "
                "`pulumi stack output --json > outputs.json`"
            ) from None
        if not isinstance(outputs, dict):
            raise GrafanaSetupError(f"{path} holds no JSON object of stack outputs")
        return outputs
    try:
        return cloud.stack_outputs(stack, cwd)
    except cloud.CloudError as exc:
        raise GrafanaSetupError(
            f"{exc}: pass --stack-outputs with a file from `pulumi stack output --json` instead"
        ) from None


def fetch_database_credentials(secret_arn: str, region: str | None) -> tuple[str, str]:
    """(username, password) from the read-only Grafana user's secret."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        raw = boto3.client("secretsmanager", region_name=region).get_secret_value(
            SecretId=secret_arn
        )
        value = json.loads(raw["SecretString"])
        return str(value["username"]), str(value["password"])
    except (ClientError, BotoCoreError, KeyError, ValueError, TypeError) as exc:
        reason = type(exc).__name__
        if isinstance(exc, ClientError):
            reason = exc.response.get("Error", {}).get("Code", reason)
        raise GrafanaSetupError(
            f"cannot read the Grafana database secret {secret_arn} ({reason}): check your AWS "
            "credentials (AWS_PROFILE) and that they may call secretsmanager:GetSecretValue on "
            f"it (the stack's {cloud.StackOutput.OPERATOR_POLICY.value} output grants it)"
        ) from None


def cloud_connection(
    outputs: Mapping[str, Any],
    port: int,
    fetch: Callable[[str, str | None], tuple[str, str]] = fetch_database_credentials,
) -> Connection:
    """RDS through the tunnel at 127.0.0.1:port, as the read-only droughtwatch_grafana user
    (its secret's ARN is a stack output; the master secret is never read here)."""
    arn = outputs.get(cloud.StackOutput.GRAFANA_SECRET_ARN)
    if not arn:
        raise GrafanaSetupError(
            f"the stack outputs have no {cloud.StackOutput.GRAFANA_SECRET_ARN.value}: is this "
            "a droughtwatch stack, and is it deployed with this version (`pulumi up`)?"
        )
    user, password = fetch(str(arn), outputs.get(cloud.StackOutput.REGION))
    database = str(outputs.get(cloud.StackOutput.DATABASE_NAME) or DATABASE_NAME)
    # Through the tunnel the certificate names the RDS host, not 127.0.0.1, so verify-full
    # cannot pass: require TLS without verifying the name.
    return Connection("127.0.0.1", port, database, user, password, "require")


# -- running compose -------------------------------------------------------------------------------
def compose_command(which: Callable[[str], str | None] = shutil.which) -> list[str]:
    """`docker compose` (the plugin), else the standalone `docker-compose`."""
    docker = which("docker")
    if docker is not None:
        probe = subprocess.run(
            [docker, "compose", "version"], capture_output=True, text=True, check=False
        )
        if probe.returncode == 0:
            return [docker, "compose"]
    standalone = which("docker-compose")
    if standalone is not None:
        return [standalone]
    if docker is None:
        raise GrafanaSetupError(
            "Docker is not installed: install Docker Engine with the Compose plugin "
            "(https://docs.docker.com/engine/install/, package docker-compose-plugin)"
        )
    raise GrafanaSetupError(
        "Docker is installed but Compose is not: install the Docker Compose plugin "
        "(package docker-compose-plugin, https://docs.docker.com/compose/install/linux/)"
    )


def find_compose_file(start: Path | None = None) -> Path:
    """grafana/docker-compose.yaml in the working directory or a parent, else in the checkout
    this package is installed from."""
    here = (start or Path.cwd()).resolve()
    candidates = [d / "grafana" / "docker-compose.yaml" for d in (here, *here.parents)]
    candidates.append(Path(__file__).resolve().parents[3] / "grafana" / "docker-compose.yaml")
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise GrafanaSetupError(
        "grafana/docker-compose.yaml not found: run from the droughtwatch repository, or pass "
        "--compose-file"
    )


def dashboard_url(port: int, first: dt.date | None = None, last: dt.date | None = None) -> str:
    """The dashboard's address; with the data's first and last batch dates, a range that shows
    all of it (a day either side), whatever the dashboard's default."""
    url = f"http://127.0.0.1:{port}/d/{DASHBOARD_UID}"
    if first is None or last is None:
        return url

    def ms(day: dt.date) -> int:
        return int(dt.datetime.combine(day, dt.time(), dt.UTC).timestamp() * 1000)

    return f"{url}?from={ms(first - dt.timedelta(days=1))}&to={ms(last + dt.timedelta(days=2))}"


BATCH_RANGE_SQL = "SELECT min(batch_date), max(batch_date) FROM ledger"


def batch_range(connection: Connection) -> tuple[dt.date, dt.date] | None:
    """First and last batch dates in the ledger, or None when it is empty."""
    import psycopg

    with psycopg.connect(
        host=connection.host,
        port=connection.port,
        dbname=connection.database,
        user=connection.user,
        password=connection.password,
        sslmode=connection.sslmode,
        connect_timeout=5,
    ) as conn:
        row = conn.execute(BATCH_RANGE_SQL).fetchone()
    if row is None or row[0] is None:
        return None
    return row[0], row[1]


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def run_grafana(
    connection: Connection,
    compose: list[str],
    compose_file: Path,
    grafana_port: int,
    detach: bool,
    echo: Callable[[str], None] = print,
) -> int:
    """`docker compose up` with the datasource variables in the subprocess's environment only."""
    import psycopg

    env = {**os.environ, **connection.environment(), ENV_GRAFANA_PORT: str(grafana_port)}
    try:
        first_last = batch_range(connection)
    except (psycopg.Error, OSError) as exc:  # only the printed link depends on it
        echo(
            f"note: could not read the batch dates ({type(exc).__name__}); the dashboard "
            "opens on its default range"
        )
        first_last = None
    url = dashboard_url(grafana_port, *(first_last or (None, None)))
    argv = [*compose, "-f", str(compose_file), "up", *(["--detach"] if detach else [])]
    echo(f"Grafana: {url}  (database {connection.database} at {connection.host}:{connection.port})")
    try:
        code = subprocess.run(argv, env=env, check=False).returncode
    except KeyboardInterrupt:  # Ctrl-C reached compose too, which stops the container
        return 0
    if detach and code == 0:
        echo(f"stop it with: {' '.join(compose)} -f {compose_file} down")
    return code


# -- the command ---------------------------------------------------------------------------------
def grafana(
    stack_outputs: Annotated[
        Path | None,
        typer.Option(
            "--stack-outputs",
            help="Cloud: JSON from `pulumi stack output --json`.",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    stack: Annotated[
        str | None,
        typer.Option("--stack", help="Cloud: read the outputs of this Pulumi stack."),
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir",
            help="Local: the demo's database folder "
            "(default: $DROUGHTWATCH_HOME/postgres, e.g. ~/.local/share/droughtwatch/postgres).",
        ),
    ] = None,
    port: Annotated[
        int, typer.Option("--port", min=1, max=65535, help="Grafana's HTTP port.")
    ] = 3000,
    db_port: Annotated[
        int, typer.Option("--db-port", min=1, max=65535, help="Cloud: the tunnel's local port.")
    ] = 5432,
    detach: Annotated[bool, typer.Option("--detach", "-d", help="Run in the background.")] = False,
    compose_file: Annotated[
        Path | None,
        typer.Option(
            "--compose-file",
            help="Default: grafana/docker-compose.yaml.",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
) -> None:
    """Open the "Model observability" dashboard: Grafana in Docker, pointed at the local demo's
    database, or (with --stack / --stack-outputs) at RDS through the bastion tunnel."""
    try:
        if stack_outputs is not None and stack is not None:
            raise GrafanaSetupError("pass either --stack or --stack-outputs, not both")
        in_cloud = stack_outputs is not None or stack is not None
        if in_cloud and data_dir is not None:
            raise GrafanaSetupError("--data-dir is for the local demo; drop it with --stack")
        compose_path = compose_file or find_compose_file()
        compose = compose_command()  # fail on a missing Docker before fetching any secret
        if in_cloud:
            project = cloud.find_project_dir() or compose_path.parent.parent
            outputs = read_stack_outputs(stack_outputs, stack, project)
            connection = cloud_connection(outputs, db_port)
            if not _port_open(db_port):
                typer.echo(
                    f"warning: nothing listens on 127.0.0.1:{db_port}: open the tunnel with "
                    f"`droughtwatch tunnel{f' --stack {stack}' if stack else ''} --local-port "
                    f"{db_port}` (grafana/README.md), or "
                    "the panels will show connection errors",
                    err=True,
                )
        else:
            connection = local_connection(data_dir)
        code = run_grafana(connection, compose, compose_path, port, detach, echo=typer.echo)
    except GrafanaSetupError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if code != 0:
        raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    """Add `grafana` to the CLI."""
    app.command("grafana")(grafana)


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("grafana")
    for written in write_files(target):
        print(written)
