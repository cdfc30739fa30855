"""The "Model observability" dashboard: which panels it has, where, and what each one shows.

Its threshold lines and descriptions take the Observe stage's defaults from `ObserveSettings`,
so they agree with what Observe computes; a test checks that the committed JSON equals what
this module builds (tests/test_grafana_provisioning.py).
"""

from __future__ import annotations

from typing import Any

from droughtwatch_contract.settings import ObserveSettings

from droughtwatch_tools.grafana import queries
from droughtwatch_tools.grafana.panels import by_name, stat, table, threshold_steps, timeseries

DASHBOARD_UID = "droughtwatch-model-observability"
DASHBOARD_TITLE = "Model observability"
DASHBOARD_FILE = "model-observability.json"
# The Grafana folder of the dashboard, and of the alert rules that link to it.
FOLDER = "droughtwatch"
# Grafana 12 writes schemaVersion 41; older files are migrated on load, newer ones are not.
SCHEMA_VERSION = 41

# The dashboard opens on whole UTC days from 30 days ago to the end of tomorrow: the daily
# batches (and the demo's 14 days ending today) fall inside it, and "tomorrow" keeps a batch
# dated by a clock ahead of UTC in view.
TIME_FROM = "now-30d/d"
TIME_TO = "now+1d/d"

# The Observe stage's defaults, which the threshold lines, the descriptions and the alerts show.
DRIFT_THRESHOLD: float = ObserveSettings.model_fields["drift_threshold"].default
DRIFT_METHOD: str = ObserveSettings.model_fields["drift_method"].default
FEATURE_DRIFT_THRESHOLD: float = ObserveSettings.model_fields["feature_drift_threshold"].default
MIN_DAILY_IMAGES: int = ObserveSettings.model_fields["min_daily_images"].default

# The panels the alert rules link to.
DRIFT_PANEL_ID = 6
QUALITY_PANEL_ID = 11
INPUT_DRIFT_PANEL_ID = 12

_METHOD = DRIFT_METHOD.upper()
_DRIFT_THRESHOLDS = threshold_steps(("green", None), ("red", DRIFT_THRESHOLD))
_FEATURE_THRESHOLDS = threshold_steps(("green", None), ("red", FEATURE_DRIFT_THRESHOLD))
_NOT_ENOUGH = f"not enough data (< {MIN_DAILY_IMAGES} images)"
_DASHED = {"fill": "dash", "dash": [10, 10]}


def build_dashboard() -> dict[str, Any]:
    """The "Model observability" dashboard, ready for file provisioning."""
    panels = [
        stat(
            1,
            "Current model version",
            "Model of the newest predictions (ledger.model_name, ledger.model_version), "
            "whatever the time range.",
            queries.MODEL,
            (0, 0, 6, 4),
            field="model_(name|version)",
            calc="lastNotNull",
            defaults={"color": {"mode": "fixed", "fixedColor": "text"}},
        ),
        stat(
            2,
            "Latest prediction drift",
            f"Drift ({_METHOD}) of the newest day in range with enough images; red from the "
            f"alert threshold ({DRIFT_THRESHOLD}) up.",
            queries.DRIFT,
            (6, 0, 6, 4),
            field="drift_score",
            calc="lastNotNull",
            defaults={
                "decimals": 3,
                "color": {"mode": "thresholds"},
                "thresholds": _DRIFT_THRESHOLDS,
            },
        ),
        stat(
            3,
            "Images processed",
            "Images decoded by Processing over the batches in range (blank images included).",
            queries.IMAGES,
            (12, 0, 6, 4),
            field="processed",
            calc="sum",
            defaults={"unit": "short", "color": {"mode": "fixed", "fixedColor": "blue"}},
        ),
        stat(
            4,
            "Files failed",
            "Raw files of the batches in range whose last stage attempt failed (the ledger "
            "below shows the error).",
            queries.FILES,
            (18, 0, 6, 4),
            field="failed",
            calc="sum",
            defaults={
                "unit": "short",
                "color": {"mode": "thresholds"},
                "thresholds": threshold_steps(("green", None), ("red", 1)),
            },
        ),
        timeseries(
            5,
            "Class distribution per run",
            "Share of each predicted class in each batch (daily_metrics.class_counts: the day's "
            "files pooled).",
            queries.CLASS_SHARES,
            (0, 4, 12, 9),
            bars=True,
            stack=True,
            defaults={"unit": "percentunit", "min": 0, "max": 1},
        ),
        timeseries(
            DRIFT_PANEL_ID,
            "Prediction drift",
            f"Drift ({_METHOD}) of the predicted classes against the reference, on each day's "
            f"files pooled. Dashed line: the alert threshold ({DRIFT_THRESHOLD}). Grey points: "
            f"days with fewer than {MIN_DAILY_IMAGES} images, not enough data for an alert.",
            queries.DRIFT,
            (12, 4, 12, 9),
            bars=False,
            defaults={"min": 0, "decimals": 3},
            thresholds=_DRIFT_THRESHOLDS,
            styles=[
                by_name(
                    "not_enough_data",
                    ("displayName", _NOT_ENOUGH),
                    ("color", {"mode": "fixed", "fixedColor": "#8e8e8e"}),
                    ("custom.drawStyle", "points"),
                )
            ],
        ),
        timeseries(
            QUALITY_PANEL_ID,
            "Model quality",
            "Accuracy and macro F1 of each day's labelled images, the model's reference "
            "accuracy (dashed) and, dashed red, the accuracy below which the alert fires "
            "(reference minus the configured margin). Days without labels have no point. A "
            "large orange point: the day's figure was recomputed with labels that arrived "
            "later (label files), merged with the raw records' labels by image id.",
            queries.MODEL_QUALITY,
            (0, 13, 12, 9),
            bars=False,
            defaults={"unit": "percentunit", "min": 0, "max": 1, "decimals": 3},
            styles=[
                by_name(
                    "reference_accuracy",
                    ("color", {"mode": "fixed", "fixedColor": "green"}),
                    ("custom.lineStyle", _DASHED),
                    ("custom.showPoints", "never"),
                ),
                by_name(
                    "alert_below",
                    ("displayName", "accuracy alert below"),
                    ("color", {"mode": "fixed", "fixedColor": "red"}),
                    ("custom.lineStyle", _DASHED),
                    ("custom.showPoints", "never"),
                ),
                by_name(
                    "with_late_labels",
                    ("displayName", "recomputed with late labels"),
                    ("color", {"mode": "fixed", "fixedColor": "orange"}),
                    ("custom.drawStyle", "points"),
                    ("custom.pointSize", 12),
                ),
            ],
        ),
        timeseries(
            INPUT_DRIFT_PANEL_ID,
            "Input drift",
            "Drift of each per-image summary (the mean of a model channel, NDVI, NDMI, EVI) "
            "against the model's reference summaries: normed Wasserstein distance, on each "
            f"day's images pooled. Dashed line: a summary drifts from {FEATURE_DRIFT_THRESHOLD}; "
            "the input drifts (and the alert fires) when half of them do. 'not enough data': "
            f"the largest score of days with fewer than {MIN_DAILY_IMAGES} images.",
            queries.INPUT_DRIFT,
            (12, 13, 12, 9),
            bars=False,
            defaults={"min": 0, "decimals": 3},
            thresholds=_FEATURE_THRESHOLDS,
        ),
        timeseries(
            15,
            "Labelled images per day",
            "Per day: the share of the predicted images that carry a label, from their raw "
            "records or from label files uploaded later (droughtwatch labels upload; a late "
            "label overrides the raw record's). Model quality is computed on these images; "
            "labels that arrive later raise a day's bar when the next run has read them.",
            queries.LABELLED,
            (0, 22, 12, 8),
            bars=True,
            stack=True,
            defaults={"unit": "percentunit", "min": 0, "max": 1, "decimals": 2},
            colors={"from_raw_records": "green", "from_label_files": "orange"},
        ),
        timeseries(
            16,
            "Label lag",
            "Per day with labels from label files: days from the images' date to the arrival "
            "of the newest label its figures use.",
            queries.LABEL_LAG,
            (12, 22, 12, 8),
            bars=True,
            defaults={"unit": "d", "min": 0, "decimals": 0},
            colors={"label_lag_days": "orange"},
        ),
        timeseries(
            13,
            "Data quality",
            "Per day: share of raw records that were blank (dropped), of images without a "
            "label, and the worst band's share of pixels at 0 and at 255, and the worst index's "
            "share of non-finite pixels.",
            queries.DATA_QUALITY,
            (0, 30, 6, 8),
            bars=False,
            defaults={"unit": "percentunit", "min": 0, "decimals": 2},
        ),
        timeseries(
            7,
            "Images per run",
            "Per batch: images decoded by Processing, blank images dropped, images predicted.",
            queries.IMAGES,
            (6, 30, 6, 8),
            bars=True,
            defaults={"unit": "short", "min": 0},
        ),
        timeseries(
            8,
            "Files per run by status",
            "Per batch: raw files done, still in the pipeline, failed, not taken (skipped: "
            "not a TFRecord; duplicate: content already taken under another key) and "
            "superseded by a newer upload of the same key.",
            queries.FILES,
            (12, 30, 6, 8),
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
        timeseries(
            14,
            "Model version per day",
            "Per batch: the images each model version predicted (daily_metrics, one row per "
            "day and model version), so a new model's first day shows.",
            queries.MODEL_VERSIONS,
            (18, 30, 6, 8),
            bars=True,
            stack=True,
            defaults={"unit": "short", "min": 0, "decimals": 0},
        ),
        table(
            9,
            "Ledger",
            "Each raw object: its batch, the next stage it needs (done when finished), status "
            "(done, pending, running, failed; skipped, duplicate or superseded with the reason "
            "in note), attempts, when each stage finished, its processed file and report (or "
            "'expired <date>' once the stack's lifecycle rule deleted them), and the last "
            "error. Failed first.",
            queries.LEDGER,
            (0, 38, 24, 11),
            error_column="last_error",
        ),
        table(
            10,
            "Stage runs",
            "Each stage invocation (runs table): files done and failed, images, what remained "
            "for the next invocation, and the error that stopped a stage.",
            queries.RUNS,
            (0, 49, 24, 8),
            error_column="error",
        ),
    ]
    return {
        "uid": DASHBOARD_UID,
        "title": DASHBOARD_TITLE,
        "description": "Batches of the droughtwatch pipeline, day by day: predicted classes, "
        "prediction drift, model quality, labelled images and label lag, input drift, data "
        "quality, the ledger of raw files and the stage runs.",
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
