"""The metrics row, written once: what Observe measures on a set of images (a predictions file,
or a day's files pooled) and what each table adds to it.

``Signals`` are the columns both tables hold: ``metrics`` (one row per predictions file,
``FileMetrics``) and ``daily_metrics`` (one row per day and model version, ``DayMetrics``).
Each signal's logic builds its part: ``PredictionDrift`` (logic/observe.py), ``ModelQuality``
(logic/model_quality.py), ``InputDrift`` (logic/input_drift.py), ``DataQuality``
(logic/data_quality.py). The adapters check every row against its record and store a dict or
list value as jsonb; the demo reads its days by these names. A test compares the records with
the migrated tables (migrations 0001 and 0004): a new signal is a field here and a migration.
"""

from __future__ import annotations

import datetime as dt
import types
from functools import cache
from typing import Any, TypedDict, get_args, get_type_hints


class PredictionDrift(TypedDict):
    """The predicted classes against the model's reference class shares."""

    model_name: str
    model_version: str
    images: int
    class_counts: dict[str, int]
    class_shares: dict[str, float]
    most_common_class: str | None  # None: no image
    most_common_share: float | None
    missing_share: float
    drift_score: float | None  # None: no image, or none with a label
    drift_method: str
    drift_threshold: float
    drift_detected: bool


class ModelQuality(TypedDict):
    """The quality of the model on the images that carry a label (None where none does), and
    its drop against the model's reference accuracy."""

    labelled_images: int
    accuracy: float | None
    macro_f1: float | None
    per_class: dict[str, dict[str, float | None]] | None  # {class: {precision, recall, support}}
    confusion: dict[str, dict[str, int]] | None  # {true class: {predicted class: images}}
    reference_accuracy: float | None
    accuracy_drop: float | None  # reference_accuracy - accuracy
    accuracy_margin: float
    accuracy_alert: bool


class InputDrift(TypedDict):
    """The per-image summaries against the model's reference summaries (None without them)."""

    feature_drift: dict[str, float] | None  # {column: score}
    drifted_features: int | None
    feature_drift_share: float | None
    feature_drift_method: str
    feature_drift_threshold: float
    input_drift_detected: bool


class DataQuality(TypedDict):
    """Shares of blank records, of images without a label and of pixels at 0, at 255 or not
    finite (None where the files' counts are unknown)."""

    records: int | None
    dropped_blank: int | None
    blank_share: float | None  # dropped_blank / records
    missing_label_share: float | None
    zero_share: dict[str, float] | None  # {band: share of its pixels at 0}
    saturated_share: dict[str, float] | None  # {band: share of its pixels at 255}
    nonfinite_share: dict[str, float] | None  # {index: share of its pixels not finite}


class Signals(PredictionDrift, ModelQuality, InputDrift, DataQuality):
    """Every signal of a set of images: the columns metrics and daily_metrics share."""

    notes: list[str]  # why a signal is missing (no labels, no reference summaries): not errors


class FileMetrics(Signals):
    """A ``metrics`` row: one predictions file (``id`` and ``computed_at`` are the table's)."""

    ledger_id: int
    predictions_key: str
    report_key: str | None  # None: no HTML report (an empty file, or reports turned off)
    batch_date: dt.date
    run_id: str


class DayMetrics(Signals):
    """A ``daily_metrics`` row: one day and model version (``computed_at`` is the table's)."""

    batch_date: dt.date
    run_id: str
    files: int
    last_metrics_id: int  # the newest metrics row pooled: a newer one makes the day stale
    report_key: str | None
    min_images: int
    enough_data: bool  # images >= min_images; below, no alert fires for the day


@cache
def column_types(record: type) -> dict[str, Any]:
    """The record's columns, in order, with their types (``X | None`` where NULL is written)."""
    return get_type_hints(record)


def columns(record: type) -> frozenset[str]:
    return frozenset(column_types(record))


def nullable(kind: Any) -> bool:
    return isinstance(kind, types.UnionType) and type(None) in get_args(kind)


def value_type(kind: Any) -> type:
    """The type of a column's values when not NULL: int, float, str, bool, dt.date, dict or
    list."""
    if nullable(kind):
        (kind,) = (k for k in get_args(kind) if k is not type(None))
    return getattr(kind, "__origin__", kind)


@cache
def json_columns(record: type) -> frozenset[str]:
    """The columns stored as jsonb: those that hold a dict or a list."""
    return frozenset(
        name for name, kind in column_types(record).items() if value_type(kind) in (dict, list)
    )
