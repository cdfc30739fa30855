"""The alert rules: each fires on one of the flags Observe stored in the newest day's row of
daily_metrics (prediction drift, input drift, the accuracy drop), which Observe computed with
the deployed thresholds and only for days with enough images."""

from __future__ import annotations

from typing import Any

from droughtwatch_contract.settings import ObserveSettings

from droughtwatch_tools.grafana import queries
from droughtwatch_tools.grafana.dashboard import (
    DASHBOARD_UID,
    DRIFT_METHOD,
    DRIFT_PANEL_ID,
    DRIFT_THRESHOLD,
    FEATURE_DRIFT_THRESHOLD,
    FOLDER,
    INPUT_DRIFT_PANEL_ID,
    MIN_DAILY_IMAGES,
    QUALITY_PANEL_ID,
)
from droughtwatch_tools.grafana.datasource import DATASOURCE_UID
from droughtwatch_tools.grafana.panels import target
from droughtwatch_tools.grafana.queries import Query

ALERT_RULE_UID = "droughtwatch-prediction-drift"
INPUT_DRIFT_RULE_UID = "droughtwatch-input-drift"
ACCURACY_RULE_UID = "droughtwatch-accuracy-drop"
ALERT_GROUP = "droughtwatch"
# The alert looks at the batches of the last 7 days and judges the newest one.
ALERT_WINDOW_SECONDS = 7 * 24 * 3600


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
                "model": {**target(query), "intervalMs": 60000, "maxDataPoints": 43200},
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
            queries.DRIFT_ALERT,
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
            queries.INPUT_DRIFT_ALERT,
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
            queries.ACCURACY_ALERT,
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
