"""The demo reads each day's daily_metrics row by the names of the metrics row's record: its
columns exist there, and a NULL (a signal not computed) leaves the day's default."""

from __future__ import annotations

import datetime as dt

from droughtwatch_inference.metrics_row import DayMetrics, columns
from droughtwatch_tools.execution import Execution
from droughtwatch_tools.local.demo import _DAY_COLUMNS, DayResult, _summarise


def test_the_demo_reads_daily_metrics_columns_only() -> None:
    assert set(_DAY_COLUMNS) <= columns(DayMetrics)
    assert {"images", "drift_threshold", "dropped_blank", "accuracy_alert"} <= set(_DAY_COLUMNS)


def test_a_day_takes_its_rows_values_and_keeps_defaults_for_nulls() -> None:
    day = DayResult(dt.date(2026, 12, 4), 0.0, Execution(name="demo", status="SUCCEEDED"))
    row = dict.fromkeys(_DAY_COLUMNS)
    row.update(images=295, drift_threshold=0.25, drift_score=0.31, drift_detected=True)
    _summarise(day, row)
    assert (day.images, day.drift_threshold, day.drift_score, day.drift_detected) == (
        295,
        0.25,
        0.31,
        True,
    )
    assert day.dropped_blank == 0 and day.feature_drift == {} and day.accuracy is None
    assert day.input_drift_detected is False and day.accuracy_alert is False
