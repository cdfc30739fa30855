"""The SQL of every panel and alert, as `Query` objects (SQL, Grafana's format, the columns it
returns), so the tests can run each one against the migrated schema (tests/test_grafana_sql.py).

The dashboard (dashboard.py) and the alert rules (alerts.py) take their SQL from here; `QUERIES`
lists every one.
"""

from __future__ import annotations

from dataclasses import dataclass

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
# labelled images), the model's reference accuracy, and where the accuracy alert starts; and
# the accuracy once more on the days whose figure was recomputed with labels that arrived later
# (late_labels, migration 0008), which the panel marks.
_ACCURACY = "sum(accuracy * labelled_images) / sum(labelled_images)"
MODEL_QUALITY = Query(
    name="model_quality",
    sql=f"""SELECT {BATCH_TIME} AS "time",
       {_ACCURACY} AS accuracy,
       sum(macro_f1 * labelled_images) / sum(labelled_images) AS macro_f1,
       max(reference_accuracy) AS reference_accuracy,
       max(reference_accuracy - accuracy_margin) AS alert_below,
       CASE WHEN sum(late_labels) > 0 THEN {_ACCURACY} END AS with_late_labels
FROM daily_metrics
WHERE $__timeFilter(batch_date) AND labelled_images > 0 AND accuracy IS NOT NULL
GROUP BY batch_date
ORDER BY 1""",
    format="time_series",
    columns=(
        "time",
        "accuracy",
        "macro_f1",
        "reference_accuracy",
        "alert_below",
        "with_late_labels",
    ),
)

# Per day: the share of the predicted images that carry a label, split by where the labels came
# from (the raw records, or label files uploaded later), so the bars stack to the labelled
# share.
LABELLED = Query(
    name="labelled",
    sql=f"""SELECT {BATCH_TIME} AS "time",
       sum(embedded_labels)::double precision / nullif(sum(images), 0) AS from_raw_records,
       sum(late_labels)::double precision / nullif(sum(images), 0) AS from_label_files
FROM daily_metrics
WHERE $__timeFilter(batch_date)
GROUP BY batch_date
ORDER BY 1""",
    format="time_series",
    columns=("time", "from_raw_records", "from_label_files"),
)

# Per day with late labels: the days from the images' date to the arrival of the newest late
# label its figures use (UTC dates, as the batches are).
LABEL_LAG = Query(
    name="label_lag",
    sql=f"""SELECT {BATCH_TIME} AS "time",
       max((labels_received_at AT TIME ZONE 'UTC')::date - batch_date) AS label_lag_days
FROM daily_metrics
WHERE $__timeFilter(batch_date) AND late_labels > 0 AND labels_received_at IS NOT NULL
GROUP BY batch_date
ORDER BY 1""",
    format="time_series",
    columns=("time", "label_lag_days"),
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


# The thresholds Observe stored with each day (the deployed settings): the offline page draws
# its threshold lines from them; Grafana's lines are the settings' defaults (dashboard.py).
THRESHOLDS = Query(
    name="thresholds",
    sql=f"""SELECT {BATCH_TIME} AS "time",
       max(drift_threshold) AS drift_threshold,
       max(feature_drift_threshold) AS feature_drift_threshold
FROM daily_metrics
WHERE $__timeFilter(batch_date)
GROUP BY batch_date
ORDER BY 1""",
    format="time_series",
    columns=("time", "drift_threshold", "feature_drift_threshold"),
)

# Which model predicted each day: the day's images per model version (a rollout shows as two).
MODEL_VERSIONS = Query(
    name="model_versions",
    sql=f"""SELECT {BATCH_TIME} AS "time",
       model_name || ' ' || model_version AS metric,
       sum(images) AS images
FROM daily_metrics
WHERE $__timeFilter(batch_date)
GROUP BY batch_date, model_name, model_version
ORDER BY 1, 2""",
    format="time_series",
    columns=("time", "metric", "images"),
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


def _product(key: str, expires_at: str, name: str) -> str:
    """A product's key, or "expired <date>" once the stack's lifecycle rule has deleted it (the
    stage recorded when, migration 0007): expired, not missing."""
    return (
        f"CASE WHEN {expires_at} <= now() THEN 'expired ' || "
        f"to_char({expires_at} AT TIME ZONE 'UTC', 'YYYY-MM-DD') ELSE {key} END AS {name}"
    )


# Failed files first, then the newest batches.
LEDGER = Query(
    name="ledger",
    sql=f"""SELECT raw_key, batch_date, stage, status, attempts,
       registered_at, processed_at, predicted_at, observed_at, updated_at,
       model_version, {_product("processed_key", "processed_expires_at", "processed_file")},
       {_product("report_key", "report_expires_at", "report")},
       last_error, last_error_at, note, duplicate_of
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
        "processed_file",
        "report",
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
    LABELLED,
    LABEL_LAG,
    INPUT_DRIFT,
    DATA_QUALITY,
    IMAGES,
    FILES,
    MODEL,
    MODEL_VERSIONS,
    LEDGER,
    RUNS,
    DRIFT_ALERT,
    INPUT_DRIFT_ALERT,
    ACCURACY_ALERT,
    THRESHOLDS,
)
