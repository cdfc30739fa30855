"""Every panel's SQL and the alert's SQL, run against a real PostgreSQL with the migrated schema
and seeded ledger, metrics and runs rows, with Grafana's macros expanded as Grafana does; the
alert's reduce and threshold expressions evaluated as provisioned; and the offline dashboard
page drawn from the same rows."""

from __future__ import annotations

import datetime as dt
import io
import math
import operator
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from droughtwatch_contract.drift import is_drift
from droughtwatch_inference.adapters.database import migrate
from droughtwatch_inference.logic.model_quality import quality_dropped
from droughtwatch_tools import printer, run_tables
from droughtwatch_tools.dashboard_page.figures import COLORS
from droughtwatch_tools.dashboard_page.html import read_figures
from droughtwatch_tools.dashboard_page.page import build_page
from droughtwatch_tools.dashboard_page.panels import page_panels
from droughtwatch_tools.execution import Execution
from droughtwatch_tools.grafana import queries
from droughtwatch_tools.grafana.alerts import (
    ACCURACY_RULE_UID,
    ALERT_RULE_UID,
    INPUT_DRIFT_RULE_UID,
)
from droughtwatch_tools.grafana.compose import batch_range, dashboard_url
from droughtwatch_tools.grafana.connection import Connection
from droughtwatch_tools.grafana.dashboard import (
    DASHBOARD_UID,
    DRIFT_PANEL_ID,
    FEATURE_DRIFT_THRESHOLD,
    INPUT_DRIFT_PANEL_ID,
    QUALITY_PANEL_ID,
    build_dashboard,
)
from droughtwatch_tools.grafana.macros import expand_macros
from droughtwatch_tools.local.demo import DayResult, DemoResult
from psycopg.types.json import Jsonb
from rich.console import Console

GRAFANA_DIR = Path(__file__).resolve().parents[1] / "grafana"
THRESHOLD = 0.25  # ObserveSettings' default, which the provisioned alert carries
UTC = dt.UTC


# -- Grafana's side, as far as these queries need it ------------------------------------------
# The macros are expanded by droughtwatch_tools.grafana.macros, the one function the offline
# page uses too: these tests run every panel's SQL through it.


_RELATIVE = re.compile(r"^now(?:(?P<sign>[+-])(?P<n>\d+)(?P<unit>[smhd]))?(?:/(?P<round>d))?$")


def resolve_time(expression: str, now: dt.datetime, *, is_end: bool) -> dt.datetime:
    """A dashboard time like now-30d/d: rounding to a day goes to its start for `from` and to
    its end for `to`, as Grafana does."""
    match = _RELATIVE.match(expression)
    assert match, f"unsupported time expression {expression}"
    value = now
    if match["sign"]:
        seconds = {"s": 1, "m": 60, "h": 3600, "d": 86400}[match["unit"]] * int(match["n"])
        value += dt.timedelta(seconds=seconds if match["sign"] == "+" else -seconds)
    if match["round"]:
        value = value.replace(hour=0, minute=0, second=0, microsecond=0)
        if is_end:
            value += dt.timedelta(days=1) - dt.timedelta(milliseconds=1)
    return value


def dashboard_range(now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    time = build_dashboard()["time"]
    return (
        resolve_time(time["from"], now, is_end=False),
        resolve_time(time["to"], now, is_end=True),
    )


def evaluate_alert(conn: psycopg.Connection, rule: dict[str, Any], now: dt.datetime) -> bool | None:
    """The provisioned rule's condition: query A over its relative range, then the reduce and
    threshold expressions as written in the file. None = no data."""
    results: dict[str, Any] = {}
    for step in rule["data"]:
        model = step["model"]
        if step["datasourceUid"] != "__expr__":
            window = step["relativeTimeRange"]
            start = now - dt.timedelta(seconds=window["from"])
            end = now - dt.timedelta(seconds=window["to"])
            rows = conn.execute(expand_macros(model["rawSql"], start, end)).fetchall()
            assert model["format"] == "time_series"
            times = [r[0] for r in rows]
            assert times == sorted(times), "Grafana needs time series in ascending time"
            results[step["refId"]] = [float(r[1]) if r[1] is not None else None for r in rows]
        elif model["type"] == "reduce":
            values = results[model["expression"]]
            if model.get("settings", {}).get("mode") == "dropNN":
                values = [v for v in values if v is not None and not math.isnan(v)]
            reducers = {
                "last": lambda v: v[-1],
                "max": max,
                "min": min,
                "mean": lambda v: sum(v) / len(v),
            }
            results[step["refId"]] = reducers[model["reducer"]](values) if values else None
        elif model["type"] == "threshold":
            value = results[model["expression"]]
            (condition,) = model["conditions"]
            kind, (limit,) = condition["evaluator"]["type"], condition["evaluator"]["params"]
            compare = {
                "gt": operator.gt,
                "gte": operator.ge,
                "lt": operator.lt,
                "lte": operator.le,
            }[kind]
            results[step["refId"]] = None if value is None else compare(value, limit)
        else:  # pragma: no cover - a new expression type needs a line here
            raise AssertionError(f"unknown expression {model['type']}")
    return results[rule["condition"]]


# -- database ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def server_dsn(postgres: Any) -> str:
    """The session's PostgreSQL (the root conftest's), as its admin."""
    return postgres.admin_dsn


def _with_database(dsn: str, name: str) -> str:
    params = psycopg.conninfo.conninfo_to_dict(dsn)
    params["dbname"] = name
    return psycopg.conninfo.make_conninfo(**params)


@pytest.fixture(scope="module")
def database(server_dsn: str) -> Iterator[str]:
    """A database of this module's own, migrated once; its DSN."""
    name = f"grafana_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server_dsn, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    dsn = _with_database(server_dsn, name)
    with psycopg.connect(dsn, autocommit=True) as conn:
        migrate(conn)
    yield dsn
    with psycopg.connect(server_dsn, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def conn(database: str) -> Iterator[psycopg.Connection]:
    """The migrated database, emptied: each test seeds only what it needs."""
    with psycopg.connect(database, autocommit=True) as c:
        c.execute("TRUNCATE metrics, ledger, runs, daily_metrics RESTART IDENTITY CASCADE")
        yield c


@dataclass
class RawFile:
    """One raw file's ledger row and, once observed, its metrics row."""

    day: dt.date
    name: str = "scene"
    status: str = "done"
    stage: str = "done"
    images: int | None = 100
    dropped: int | None = 2
    predicted: int | None = 98
    counts: dict[str, int] | None = field(default_factory=lambda: {"0": 60, "1": 38})
    drift: float | None = 0.05
    model_version: str = "1"
    last_error: str | None = None


def seed(conn: psycopg.Connection, files: list[RawFile]) -> None:
    base = dt.datetime.now(UTC) - dt.timedelta(hours=1)
    for i, f in enumerate(files):
        key = f"raw/{f.day.isoformat()}/{f.name}.tfrecord"
        predicted_at = base + dt.timedelta(seconds=i) if f.predicted is not None else None
        (ledger_id,) = conn.execute(
            "INSERT INTO ledger (bucket, raw_key, etag, size_bytes, batch_date, registered_run,"
            " stage, status, attempts, last_error, last_error_at, processed_at, images, dropped,"
            " predicted_at, predicted_images, model_name, model_version, observed_at)"
            " VALUES ('data', %s, %s, 1000, %s, 'run-1', %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,"
            " %s, %s, %s) RETURNING id",
            (
                key,
                f"etag-{i}",
                f.day,
                f.stage,
                f.status,
                3 if f.status == "failed" else 0,
                f.last_error,
                base if f.last_error else None,
                base if f.images is not None else None,
                f.images,
                f.dropped,
                predicted_at,
                f.predicted,
                "baseline" if f.predicted is not None else None,
                f.model_version if f.predicted is not None else None,
                base if f.counts is not None else None,
            ),
        ).fetchone()
        if f.counts is not None:
            total = sum(f.counts.values())
            conn.execute(
                "INSERT INTO metrics (ledger_id, predictions_key, batch_date, run_id, model_name,"
                " model_version, images, class_counts, class_shares, missing_share, drift_score,"
                " drift_method, drift_threshold, drift_detected) VALUES"
                " (%s, %s, %s, 'run-1', 'baseline', %s, %s, %s, %s, 0, %s, 'psi', 0.25, %s)",
                (
                    ledger_id,
                    f"predictions/{key}.parquet",
                    f.day,
                    f.model_version,
                    total,
                    Jsonb(f.counts),
                    Jsonb({k: v / total for k, v in f.counts.items()}),
                    f.drift,
                    is_drift(f.drift, THRESHOLD),  # what Observe records
                ),
            )


@dataclass
class DayRow:
    """One daily_metrics row: a day's files of one model version, pooled by Observe. Its
    flags are set as Observe sets them: with the one drift comparison, and off below the
    minimum number of images."""

    day: dt.date
    images: int = 300
    counts: dict[str, int] = field(default_factory=lambda: {"0": 180, "1": 120})
    drift: float | None = 0.05
    threshold: float = THRESHOLD  # the drift threshold Observe applied and stored
    model_version: str = "1"
    min_images: int = 200
    labelled: int = 0
    late_labels: int = 0  # of the labelled images, those labelled by label files
    labels_received_at: dt.datetime | None = None
    accuracy: float | None = None
    macro_f1: float | None = None
    reference_accuracy: float | None = 0.6
    margin: float = 0.1
    feature_drift: dict[str, float] | None = field(
        default_factory=lambda: {"mean_B4": 0.05, "mean_NDVI": 0.1}
    )
    records: int = 310
    dropped: int = 10
    missing_label_share: float = 1.0
    zero_share: dict[str, float] = field(default_factory=lambda: {"B4": 0.0, "B9": 0.6})
    saturated_share: dict[str, float] = field(default_factory=lambda: {"B4": 0.01, "B9": 0.0})
    nonfinite_share: dict[str, float] = field(default_factory=lambda: {"EVI": 0.001})


def seed_days(conn: psycopg.Connection, days: list[DayRow]) -> None:
    for i, d in enumerate(days):
        enough = d.images >= d.min_images
        scores = d.feature_drift or {}
        drifted = sum(is_drift(v, FEATURE_DRIFT_THRESHOLD) for v in scores.values())
        share = drifted / len(scores) if scores else None
        drop = (
            None
            if d.accuracy is None or d.reference_accuracy is None
            else d.reference_accuracy - d.accuracy
        )
        total = sum(d.counts.values())
        conn.execute(
            "INSERT INTO daily_metrics (batch_date, model_name, model_version, run_id, files,"
            " last_metrics_id, images, min_images, enough_data, class_counts, class_shares,"
            " missing_share, drift_score, drift_method, drift_threshold, drift_detected,"
            " labelled_images, accuracy, macro_f1, reference_accuracy, accuracy_drop,"
            " accuracy_margin, accuracy_alert, feature_drift, drifted_features,"
            " feature_drift_share, feature_drift_method, feature_drift_threshold,"
            " input_drift_detected, records, dropped_blank, blank_share, missing_label_share,"
            " zero_share, saturated_share, nonfinite_share, embedded_labels, late_labels,"
            " labels_received_at) VALUES (%s, 'baseline', %s, 'run-1',"
            " 1, %s, %s, %s, %s, %s, %s, 0, %s, 'psi', %s, %s, %s, %s, %s, %s, %s, %s, %s,"
            " %s, %s, %s, 'wasserstein', %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (
                d.day,
                d.model_version,
                i + 1,
                d.images,
                d.min_images,
                enough,
                Jsonb(d.counts),
                Jsonb({k: v / total for k, v in d.counts.items()}),
                d.drift,
                d.threshold,
                enough and is_drift(d.drift, d.threshold),
                d.labelled,
                d.accuracy,
                d.macro_f1,
                d.reference_accuracy,
                drop,
                d.margin,
                d.labelled >= d.min_images and quality_dropped(drop, d.margin),
                Jsonb(d.feature_drift) if d.feature_drift is not None else None,
                drifted if scores else None,
                share,
                FEATURE_DRIFT_THRESHOLD,
                enough and is_drift(share, 0.5),
                d.records,
                d.dropped,
                d.dropped / d.records,
                d.missing_label_share,
                Jsonb(d.zero_share),
                Jsonb(d.saturated_share),
                Jsonb(d.nonfinite_share),
                d.labelled - d.late_labels,
                d.late_labels,
                d.labels_received_at,
            ),
        )


def run(
    conn: psycopg.Connection, query: queries.Query, now: dt.datetime
) -> tuple[list[str], list[tuple[Any, ...]]]:
    start, end = dashboard_range(now)
    cur = conn.execute(expand_macros(query.sql, start, end))
    return [d.name for d in cur.description or []], cur.fetchall()


def midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), UTC)


@pytest.fixture
def now() -> dt.datetime:
    return dt.datetime.now(UTC)


@pytest.fixture
def today() -> dt.date:
    # the demo dates batches by the local clock; the dashboard's range must show them either way
    return dt.date.today()


def demo_days(today: dt.date) -> list[RawFile]:
    """14 days ending today, as the demo writes them, with one failed file and some runs."""
    files = [RawFile(today - dt.timedelta(days=13 - i), drift=0.01 * i) for i in range(14)]
    files.append(
        RawFile(
            today,
            name="broken",
            status="failed",
            stage="processing",
            images=None,
            dropped=None,
            predicted=None,
            counts=None,
            drift=None,
            last_error="InvalidRawFile: raw/…/broken.tfrecord record 3: truncated",
        )
    )
    return files


def demo_daily(today: dt.date) -> list[DayRow]:
    """The demo's 14 days as daily rows: the first with too few images, labels on the last
    week (on the tenth and eleventh day from label files, three days later), input drift on
    the last three."""
    rows = []
    for i in range(14):
        day = today - dt.timedelta(days=13 - i)
        labelled = 300 if i >= 7 else 0
        late = i in (9, 10)
        rows.append(
            DayRow(
                day,
                images=150 if i == 0 else 300,
                drift=0.01 * i,
                labelled=labelled,
                late_labels=300 if late else 0,
                labels_received_at=(
                    midnight(day + dt.timedelta(days=3)) + dt.timedelta(hours=6) if late else None
                ),
                accuracy=0.62 - 0.01 * i if labelled else None,
                macro_f1=0.5 if labelled else None,
                missing_label_share=0.0 if labelled else 1.0,
                feature_drift={"mean_B4": 0.05, "mean_NDVI": 1.0 if i >= 11 else 0.1},
            )
        )
    return rows


def seed_runs(conn: psycopg.Connection, now: dt.datetime) -> None:
    for i, (stage, status, error) in enumerate(
        [("processing", "succeeded", None), ("inference", "failed", "ModelNotFound: models/")]
    ):
        conn.execute(
            "INSERT INTO runs (run_id, stage, started_at, finished_at, status, files_done,"
            " files_failed, images, dropped, remaining, error)"
            " VALUES ('run-1', %s, %s, %s, %s, %s, %s, 100, 2, 0, %s)",
            (
                stage,
                now - dt.timedelta(minutes=10 - i),
                now - dt.timedelta(minutes=9 - i),
                status,
                1 - i,
                i,
                error,
            ),
        )


# -- the tests --------------------------------------------------------------------------------
@pytest.mark.parametrize("query", queries.QUERIES, ids=lambda q: q.name)
def test_every_query_returns_the_columns_its_panel_expects(
    conn: psycopg.Connection, query: queries.Query, now: dt.datetime, today: dt.date
) -> None:
    seed(conn, demo_days(today))
    seed_days(conn, demo_daily(today))
    seed_runs(conn, now)
    columns, rows = run(conn, query, now)
    assert columns == list(query.columns)
    assert rows
    if query.format == "time_series":
        assert columns[0] == "time"
        times = [r[0] for r in rows]
        assert all(isinstance(t, dt.datetime) and t.tzinfo is not None for t in times)
        assert times == sorted(times)
        # Grafana charts every column but time and the series name (metric) as numbers (a
        # NULL is a gap); the demo's days give each column a value somewhere
        for k, column in enumerate(columns):
            if column in ("time", "metric"):
                continue
            values = [r[k] for r in rows]
            assert all(v is None or isinstance(v, int | float | Decimal) for v in values)
            assert any(v is not None for v in values), column


def test_the_default_range_shows_the_demo_days_at_midnight_utc(
    conn: psycopg.Connection, now: dt.datetime, today: dt.date
) -> None:
    seed_days(conn, demo_daily(today))
    _, rows = run(conn, queries.DRIFT, now)
    assert [r[0] for r in rows] == [midnight(today - dt.timedelta(days=13 - i)) for i in range(14)]
    # the first day has 150 images: not enough data, drawn apart
    assert rows[0][1] is None and float(rows[0][2]) == 0.0
    assert [float(r[1]) for r in rows[1:]] == pytest.approx([0.01 * i for i in range(1, 14)])
    assert all(r[2] is None for r in rows[1:])


def test_a_batch_dated_tomorrow_by_a_clock_ahead_of_utc_is_in_range(
    conn: psycopg.Connection, now: dt.datetime
) -> None:
    tomorrow = now.date() + dt.timedelta(days=1)
    seed_days(conn, [DayRow(tomorrow, drift=0.1)])
    _, rows = run(conn, queries.DRIFT, now)
    assert [r[0] for r in rows] == [midnight(tomorrow)]


def test_batches_outside_the_range_are_left_out(
    conn: psycopg.Connection, now: dt.datetime, today: dt.date
) -> None:
    old = today - dt.timedelta(days=60)
    seed(conn, [RawFile(old, name="old"), RawFile(today, name="new")])
    seed_days(
        conn, [DayRow(old, labelled=300, accuracy=0.5), DayRow(today, labelled=300, accuracy=0.5)]
    )
    for query in (
        queries.CLASS_SHARES,
        queries.DRIFT,
        queries.MODEL_QUALITY,
        queries.INPUT_DRIFT,
        queries.DATA_QUALITY,
        queries.IMAGES,
        queries.FILES,
    ):
        _, rows = run(conn, query, now)
        assert {r[0] for r in rows} == {midnight(today)}, query.name
    _, rows = run(conn, queries.LEDGER, now)
    assert [r[0] for r in rows] == [f"raw/{today.isoformat()}/new.tfrecord"]


def test_class_shares_are_each_class_share_of_the_day(
    conn: psycopg.Connection, now: dt.datetime, today: dt.date
) -> None:
    # two model versions on one day: their pooled counts add up
    seed_days(
        conn,
        [
            DayRow(today, counts={"0": 30, "1": 10}),
            DayRow(today, counts={"0": 10, "1": 30, "3": 20}, model_version="2"),
        ],
    )
    _, rows = run(conn, queries.CLASS_SHARES, now)
    shares = {metric: float(share) for _, metric, share in rows}
    assert shares == pytest.approx({"class 0": 0.4, "class 1": 0.4, "class 3": 0.2})
    assert {r[0] for r in rows} == {midnight(today)}


def test_the_days_drift_and_the_days_without_enough_data(
    conn: psycopg.Connection, now: dt.datetime, today: dt.date
) -> None:
    yesterday = today - dt.timedelta(days=1)
    seed_days(
        conn,
        [
            DayRow(yesterday, drift=0.7, images=199),
            DayRow(today, drift=0.1),
            DayRow(today, drift=0.3, model_version="2"),
        ],
    )
    _, rows = run(conn, queries.DRIFT, now)
    assert [(t, v and float(v), n and float(n)) for t, v, n in rows] == [
        (midnight(yesterday), None, 0.7),
        (midnight(today), 0.3, None),
    ]


def test_model_quality_per_day_with_the_reference_and_the_alert_line(
    conn: psycopg.Connection, now: dt.datetime, today: dt.date
) -> None:
    yesterday = today - dt.timedelta(days=1)
    seed_days(
        conn,
        [
            DayRow(yesterday),  # no labels: no point
            DayRow(today, labelled=300, accuracy=0.5, macro_f1=0.4),
            DayRow(today, labelled=100, accuracy=0.9, macro_f1=0.8, model_version="2"),
        ],
    )
    columns, rows = run(conn, queries.MODEL_QUALITY, now)
    (row,) = [dict(zip(columns, r, strict=True)) for r in rows]
    assert row["time"] == midnight(today)
    # weighted by labelled images: (300 x 0.5 + 100 x 0.9) / 400
    assert float(row["accuracy"]) == pytest.approx(0.6)
    assert float(row["macro_f1"]) == pytest.approx(0.5)
    assert float(row["reference_accuracy"]) == 0.6
    assert float(row["alert_below"]) == pytest.approx(0.5)


def test_labelled_share_label_lag_and_the_days_recomputed_with_late_labels(
    conn: psycopg.Connection, now: dt.datetime, today: dt.date
) -> None:
    before, yesterday = today - dt.timedelta(days=2), today - dt.timedelta(days=1)
    arrived = midnight(today) + dt.timedelta(hours=23)  # late in the day, UTC
    seed_days(
        conn,
        [
            DayRow(before),  # no labels at all: a day with a zero bar, no lag, no quality
            # 200 of 300 images labelled: 50 by their raw records, 150 by files two days later
            DayRow(yesterday, labelled=200, late_labels=150, labels_received_at=arrived,
                   accuracy=0.5, macro_f1=0.4),
            DayRow(today, labelled=300, accuracy=0.7, macro_f1=0.6),
        ],
    )  # fmt: skip
    _, rows = run(conn, queries.LABELLED, now)
    assert [(t, float(raw), float(late)) for t, raw, late in rows] == [
        (midnight(before), 0.0, 0.0),
        (midnight(yesterday), pytest.approx(50 / 300), pytest.approx(150 / 300)),
        (midnight(today), 1.0, 0.0),
    ]
    _, rows = run(conn, queries.LABEL_LAG, now)
    assert rows == [(midnight(yesterday), 1)]
    columns, rows = run(conn, queries.MODEL_QUALITY, now)
    marked = {r[0]: r[columns.index("with_late_labels")] for r in rows}
    assert marked == {midnight(yesterday): pytest.approx(0.5), midnight(today): None}


def test_input_drift_per_summary_and_the_days_without_enough_data(
    conn: psycopg.Connection, now: dt.datetime, today: dt.date
) -> None:
    yesterday = today - dt.timedelta(days=1)
    seed_days(
        conn,
        [
            DayRow(yesterday, images=50, feature_drift={"mean_B4": 0.2, "mean_NDVI": 0.9}),
            DayRow(today, feature_drift={"mean_B4": 0.1, "mean_NDVI": 1.4}),
            DayRow(today, feature_drift={"mean_B4": 0.3, "mean_NDVI": 0.2}, model_version="2"),
            DayRow(today, feature_drift=None, model_version="3"),  # no reference summaries
        ],
    )
    _, rows = run(conn, queries.INPUT_DRIFT, now)
    assert [(t, m, pytest.approx(float(v))) for t, m, v in rows] == [
        (midnight(yesterday), "not enough data", pytest.approx(0.9)),
        (midnight(today), "B4", pytest.approx(0.3)),
        (midnight(today), "NDVI", pytest.approx(1.4)),
    ]


def test_data_quality_per_day_from_the_counts(
    conn: psycopg.Connection, now: dt.datetime, today: dt.date
) -> None:
    seed_days(
        conn,
        [
            DayRow(today, records=110, dropped=10, images=100, missing_label_share=1.0),
            DayRow(
                today,
                records=300,
                dropped=0,
                images=300,
                missing_label_share=0.0,
                zero_share={"B9": 0.9},
                model_version="2",
            ),
        ],
    )
    columns, rows = run(conn, queries.DATA_QUALITY, now)
    (row,) = [dict(zip(columns, r, strict=True)) for r in rows]
    assert float(row["blank"]) == pytest.approx(10 / 410)
    assert float(row["no_label"]) == pytest.approx(100 / 400)
    assert float(row["zero_worst_band"]) == 0.9
    assert float(row["saturated_worst_band"]) == 0.01
    assert float(row["nonfinite_worst_index"]) == 0.001


def test_images_and_files_per_run(
    conn: psycopg.Connection, now: dt.datetime, today: dt.date
) -> None:
    seed(
        conn,
        [
            RawFile(today, name="a", images=100, dropped=3, predicted=97),
            RawFile(
                today,
                name="b",
                images=50,
                dropped=0,
                predicted=None,
                counts=None,
                status="pending",
                stage="inference",
            ),
            RawFile(
                today,
                name="c",
                images=None,
                dropped=None,
                predicted=None,
                counts=None,
                status="failed",
                stage="processing",
                last_error="InvalidRawFile: x",
            ),
            RawFile(
                today,
                name="readme",
                images=None,
                dropped=None,
                predicted=None,
                counts=None,
                status="skipped",
                stage="processing",
            ),
            RawFile(
                today,
                name="copy",
                images=None,
                dropped=None,
                predicted=None,
                counts=None,
                status="duplicate",
                stage="processing",
            ),
            # an older version replaced by a newer upload: its images are not counted again
            RawFile(
                today,
                name="old",
                images=70,
                dropped=1,
                predicted=None,
                counts=None,
                status="superseded",
                stage="inference",
            ),
        ],
    )
    _, images = run(conn, queries.IMAGES, now)
    assert images == [(midnight(today), 150, 3, 97)]
    _, files = run(conn, queries.FILES, now)
    assert files == [(midnight(today), 1, 1, 1, 2, 1)]


def test_the_current_model_is_the_newest_predictions_model(
    conn: psycopg.Connection, now: dt.datetime, today: dt.date
) -> None:
    seed(
        conn,
        [
            RawFile(today - dt.timedelta(days=40), name="ancient", model_version="1"),
            RawFile(today, name="a", model_version="2"),
            RawFile(today, name="b", model_version="3"),
            RawFile(
                today, name="c", predicted=None, counts=None, status="pending", stage="inference"
            ),
        ],
    )
    _, rows = run(conn, queries.MODEL, now)
    assert rows == [("baseline", "3")]


def test_the_stored_thresholds_per_day(
    conn: psycopg.Connection, now: dt.datetime, today: dt.date
) -> None:
    yesterday = today - dt.timedelta(days=1)
    # a stack deployed with another threshold stores it with each day
    seed_days(conn, [DayRow(yesterday), DayRow(today, threshold=0.4)])
    _, rows = run(conn, queries.THRESHOLDS, now)
    assert rows == [
        (midnight(yesterday), THRESHOLD, FEATURE_DRIFT_THRESHOLD),
        (midnight(today), 0.4, FEATURE_DRIFT_THRESHOLD),
    ]


def test_the_model_versions_per_day(
    conn: psycopg.Connection, now: dt.datetime, today: dt.date
) -> None:
    yesterday = today - dt.timedelta(days=1)
    seed_days(
        conn,
        [
            DayRow(yesterday, images=300),
            DayRow(today, images=120),
            DayRow(today, images=180, model_version="2"),  # the day a new version rolled out
        ],
    )
    _, rows = run(conn, queries.MODEL_VERSIONS, now)
    assert rows == [
        (midnight(yesterday), "baseline 1", 300),
        (midnight(today), "baseline 1", 120),
        (midnight(today), "baseline 2", 180),
    ]


def test_the_ledger_lists_failed_files_first_with_their_error(
    conn: psycopg.Connection, now: dt.datetime, today: dt.date
) -> None:
    seed(conn, demo_days(today))
    columns, rows = run(conn, queries.LEDGER, now)
    first = dict(zip(columns, rows[0], strict=True))
    assert first["raw_key"] == f"raw/{today.isoformat()}/broken.tfrecord"
    assert (first["stage"], first["status"], first["attempts"]) == ("processing", "failed", 3)
    assert first["last_error"].startswith("InvalidRawFile")
    assert first["last_error_at"] is not None
    done = [dict(zip(columns, r, strict=True)) for r in rows[1:]]
    assert len(done) == 14
    assert all(d["status"] == "done" and d["observed_at"] is not None for d in done)
    assert [d["batch_date"] for d in done] == sorted((d["batch_date"] for d in done), reverse=True)


def test_the_ledger_shows_an_expired_product_as_expired_not_missing(
    conn: psycopg.Connection, now: dt.datetime, today: dt.date
) -> None:
    seed(
        conn, [RawFile(today, name="old"), RawFile(today, name="new"), RawFile(today, name="kept")]
    )
    expired, later = now - dt.timedelta(days=1), now + dt.timedelta(days=6)
    for name, processed_expiry, report_expiry in (
        ("old", expired, expired),
        ("new", later, later),
        ("kept", None, None),
    ):
        conn.execute(
            "UPDATE ledger SET processed_key = 'processed/' || %(name)s,"
            " processed_expires_at = %(p)s, report_key = 'reports/' || %(name)s,"
            " report_expires_at = %(r)s WHERE raw_key LIKE '%%/' || %(name)s || '.tfrecord'",
            {"name": name, "p": processed_expiry, "r": report_expiry},
        )
    columns, rows = run(conn, queries.LEDGER, now)
    shown = {
        r["raw_key"].rsplit("/", 1)[1]: (r["processed_file"], r["report"])
        for r in (dict(zip(columns, row, strict=True)) for row in rows)
    }
    day = expired.astimezone(UTC).date().isoformat()
    assert shown == {
        "old.tfrecord": (f"expired {day}", f"expired {day}"),
        "new.tfrecord": ("processed/new", "reports/new"),
        "kept.tfrecord": ("processed/kept", "reports/kept"),
    }


def test_stage_runs_are_listed_newest_first(conn: psycopg.Connection, now: dt.datetime) -> None:
    seed_runs(conn, now)
    columns, rows = run(conn, queries.RUNS, now)
    listed = [dict(zip(columns, r, strict=True)) for r in rows]
    assert [(r["stage"], r["status"], r["files_failed"], r["error"]) for r in listed] == [
        ("inference", "failed", 1, "ModelNotFound: models/"),
        ("processing", "succeeded", 0, None),
    ]


@pytest.fixture(scope="module")
def rules() -> dict[str, dict[str, Any]]:
    document = yaml.safe_load((GRAFANA_DIR / "provisioning/alerting/droughtwatch.yaml").read_text())
    (group,) = document["groups"]
    return {rule["uid"]: rule for rule in group["rules"]}


@pytest.mark.parametrize(
    ("drift", "images", "fires"),
    [
        (0.3, 300, True),
        (0.25, 300, True),  # exactly the threshold: the one comparison says drift
        (0.2499, 300, False),
        (0.9, 199, False),  # not enough data: no alert
        (0.9, 200, True),  # exactly the minimum is enough
    ],
)
def test_the_drift_alert_fires_from_the_threshold_on_days_with_enough_images(
    conn: psycopg.Connection,
    rules: dict[str, dict[str, Any]],
    now: dt.datetime,
    today: dt.date,
    drift: float,
    images: int,
    fires: bool,
) -> None:
    seed_days(
        conn,
        [
            DayRow(today - dt.timedelta(days=1), drift=0.05),
            DayRow(today, drift=drift, images=images),
        ],
    )
    assert evaluate_alert(conn, rules[ALERT_RULE_UID], now) is fires


@pytest.mark.parametrize("drift", [math.nextafter(THRESHOLD, 0), THRESHOLD, 0.2501])
def test_the_alert_the_daily_row_and_the_demo_agree_at_the_threshold(
    conn: psycopg.Connection,
    rules: dict[str, dict[str, Any]],
    now: dt.datetime,
    today: dt.date,
    drift: float,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A score exactly at the threshold is drift for all three (the one rule is
    droughtwatch_contract.drift.is_drift, which Observe applies to the daily row; Observe's
    own test: test_observe.py)."""
    seed_days(conn, [DayRow(today, drift=drift)])
    ((score, detected, enough),) = conn.execute(
        "SELECT drift_score, drift_detected, enough_data FROM daily_metrics"
    )
    alert = evaluate_alert(conn, rules[ALERT_RULE_UID], now)
    # The demo's table, printed from the same daily row.
    out = io.StringIO()
    monkeypatch.setattr(printer, "console", Console(file=out, width=200))
    execution = Execution(name="demo-today", status="SUCCEEDED")
    day = DayResult(
        today,
        0.0,
        execution,
        drift_score=score,
        drift_detected=detected,
        drift_threshold=THRESHOLD,
        enough_data=enough,
        input_drift_detected=False,  # so the only cell that can say DRIFT is the alert's
    )
    run_tables.print_demo(DemoResult([day], Path("out"), {"classes": ["0", "1"]}, exported=1))
    table_says_drift = "DRIFT" in out.getvalue()
    assert alert is detected is table_says_drift is (drift >= THRESHOLD)


def test_the_drift_alert_judges_the_newest_day(
    conn: psycopg.Connection, rules: dict[str, dict[str, Any]], now: dt.datetime, today: dt.date
) -> None:
    seed_days(
        conn,
        [
            DayRow(today - dt.timedelta(days=2), drift=0.4),
            DayRow(today - dt.timedelta(days=1), drift=0.1),
        ],
    )
    assert evaluate_alert(conn, rules[ALERT_RULE_UID], now) is False
    # a newest day too small to judge does not keep an older day's alert alive
    conn.execute("TRUNCATE daily_metrics")
    seed_days(
        conn,
        [
            DayRow(today - dt.timedelta(days=1), drift=0.4),
            DayRow(today, drift=0.4, images=30),
        ],
    )
    assert evaluate_alert(conn, rules[ALERT_RULE_UID], now) is False


def test_the_alerts_have_no_data_without_recent_days_and_stay_ok(
    conn: psycopg.Connection, rules: dict[str, dict[str, Any]], now: dt.datetime, today: dt.date
) -> None:
    seed_days(
        conn,
        [
            DayRow(
                today - dt.timedelta(days=20),
                drift=0.9,
                labelled=300,
                accuracy=0.1,
                feature_drift={"mean_NDVI": 2.0},
            )
        ],
    )
    for rule in rules.values():
        assert evaluate_alert(conn, rule, now) is None, rule["uid"]
        assert rule["noDataState"] == "OK"


@pytest.mark.parametrize(
    ("scores", "fires"),
    [
        ({"mean_B4": 0.1, "mean_NDVI": 1.4}, True),  # one of two: the share reaches 0.5
        ({"mean_B4": 0.1, "mean_NDVI": FEATURE_DRIFT_THRESHOLD}, True),  # exactly
        ({"mean_B4": 0.1, "mean_NDVI": 0.29}, False),
        (None, False),  # no reference summaries
    ],
)
def test_the_input_drift_alert(
    conn: psycopg.Connection,
    rules: dict[str, dict[str, Any]],
    now: dt.datetime,
    today: dt.date,
    scores: dict[str, float] | None,
    fires: bool,
) -> None:
    seed_days(conn, [DayRow(today, feature_drift=scores)])
    assert evaluate_alert(conn, rules[INPUT_DRIFT_RULE_UID], now) is fires


@pytest.mark.parametrize(
    ("accuracy", "labelled", "fires"),
    [
        (0.45, 300, True),  # reference 0.75, margin 0.25: 0.3 below
        (0.5, 300, False),  # exactly the margin below: not more than it
        (0.6, 300, False),
        (0.3, 199, False),  # too few labelled images
    ],
)
def test_the_accuracy_alert_fires_beyond_the_margin_below_the_reference(
    conn: psycopg.Connection,
    rules: dict[str, dict[str, Any]],
    now: dt.datetime,
    today: dt.date,
    accuracy: float,
    labelled: int,
    fires: bool,
) -> None:
    seed_days(
        conn,
        [
            DayRow(today - dt.timedelta(days=1), labelled=300, accuracy=0.6),
            DayRow(
                today,
                labelled=labelled,
                images=max(labelled, 200),
                accuracy=accuracy,
                reference_accuracy=0.75,
                margin=0.25,
            ),
        ],
    )
    assert evaluate_alert(conn, rules[ACCURACY_RULE_UID], now) is fires


def test_the_accuracy_alert_judges_the_newest_labelled_day(
    conn: psycopg.Connection, rules: dict[str, dict[str, Any]], now: dt.datetime, today: dt.date
) -> None:
    seed_days(
        conn,
        [
            DayRow(today - dt.timedelta(days=1), labelled=300, accuracy=0.3),
            DayRow(today),  # unlabelled: says nothing about accuracy
        ],
    )
    assert evaluate_alert(conn, rules[ACCURACY_RULE_UID], now) is True


def test_batch_range_gives_a_link_that_shows_all_the_data(
    conn: psycopg.Connection, today: dt.date
) -> None:
    info = conn.info
    connection = Connection(info.host, info.port, info.dbname, info.user, info.password, "disable")
    assert batch_range(connection) is None
    seed(conn, [RawFile(today - dt.timedelta(days=90), name="old"), RawFile(today, name="new")])
    first, last = batch_range(connection)
    assert (first, last) == (today - dt.timedelta(days=90), today)
    url = dashboard_url(3000, first, last)
    start_ms, end_ms = (int(v) for v in re.findall(r"(?:from|to)=(\d+)", url))
    assert start_ms < midnight(first).timestamp() * 1000
    assert end_ms > (midnight(last) + dt.timedelta(days=1)).timestamp() * 1000
    assert url.startswith(f"http://127.0.0.1:3000/d/{DASHBOARD_UID}?")


# -- the offline page: the same panels drawn from the same rows -------------------------------
def drought_daily(today: dt.date, threshold: float = THRESHOLD) -> list[DayRow]:
    """The demo's days ending in its drought: the last three over the drift threshold, their
    accuracy falling more than the margin below the reference, their NDVI drifting."""
    rows = demo_daily(today)
    for k, row in enumerate(rows[-3:]):
        row.drift = 0.5 + 0.5 * k
        row.accuracy = 0.45 - 0.1 * k
    for row in rows:
        row.threshold = threshold
    return rows


def _displayed(panel: Any, column: str) -> str:
    """The name Grafana shows for a column: its displayName override, else the column."""
    for override in panel.grafana["fieldConfig"]["overrides"]:
        if override["matcher"]["options"] == column:
            for prop in override["properties"]:
                if prop["id"] == "displayName":
                    return prop["value"]
    return column


def expected_series(
    panel: Any, columns: list[str], rows: list[tuple[Any, ...]]
) -> dict[str, tuple[list[str], list[Any]]]:
    """Series name -> (days, values), split from the rows as Grafana splits a time series."""
    found: dict[str, tuple[list[str], list[Any]]] = {}
    if "metric" in columns:
        for time, metric, value in rows:
            days, values = found.setdefault(metric, ([], []))
            days.append(time.astimezone(UTC).date().isoformat())
            values.append(value)
        return found
    for k, column in enumerate(columns[1:], start=1):
        found[_displayed(panel, column)] = (
            [r[0].astimezone(UTC).date().isoformat() for r in rows],
            [r[k] for r in rows],
        )
    return found


@pytest.fixture
def drought(conn: psycopg.Connection, now: dt.datetime, today: dt.date) -> list[DayRow]:
    days = drought_daily(today, threshold=0.3)  # not the default: the page reads what is stored
    # a session west of UTC gets the batches' midnights as the evening before: still their days
    conn.execute("SET TIME ZONE 'America/New_York'")
    seed(conn, demo_days(today))
    seed_days(conn, days)
    seed_runs(conn, now)
    return days


def test_the_page_draws_each_time_series_from_the_rows_grafana_gets(
    conn: psycopg.Connection, drought: list[DayRow], now: dt.datetime
) -> None:
    page = build_page(conn, source="a test database", now=now)
    figures = read_figures(page.html)
    drawn = 0
    for panel in page_panels():
        if panel.kind != "timeseries":
            continue
        columns, rows = run(conn, panel.query, now)  # over Grafana's default range
        traces = {t["name"]: t for t in figures[panel.id]["data"] if t["name"] != "threshold"}
        expected = expected_series(panel, columns, rows)
        assert set(traces) == set(expected), panel.title
        for name, (days, values) in expected.items():
            assert traces[name]["x"] == days, (panel.title, name)
            assert traces[name]["y"] == pytest.approx(
                [None if v is None else float(v) for v in values]
            ), (panel.title, name)
        drawn += 1
    assert drawn == sum(p["type"] == "timeseries" for p in build_dashboard()["panels"])


def test_the_page_marks_the_drought_days_over_the_stored_threshold(
    conn: psycopg.Connection, drought: list[DayRow], now: dt.datetime, today: dt.date
) -> None:
    page = build_page(conn, source="a test database", now=now)
    figures = read_figures(page.html)
    drought_days = [today - dt.timedelta(days=k) for k in (2, 1, 0)]
    # the days Observe flagged: the drift's, the accuracy's and the input's alert
    for panel_id, title, judged in (
        (DRIFT_PANEL_ID, "Prediction drift above threshold", 14),
        (QUALITY_PANEL_ID, "Accuracy below the reference", 7),  # the days with labels
        (INPUT_DRIFT_PANEL_ID, "Input drift", 14),
    ):
        shaded = [
            shape
            for shape in figures[panel_id]["layout"]["shapes"]
            if shape.get("name") == f"alert: {title}"
        ]
        assert [dt.datetime.fromisoformat(s["x0"]) for s in shaded] == [
            dt.datetime.combine(d, dt.time()) - dt.timedelta(hours=12) for d in drought_days
        ], title
        days = ", ".join(d.isoformat() for d in drought_days)
        assert f"{title}: 3 of {judged} days ({days})" in page.alerts
        assert f"{title}: 3 of {judged} days ({days})" in page.html
    # the threshold line is the stored 0.3 under each day, not the settings' 0.25
    (threshold,) = [t for t in figures[DRIFT_PANEL_ID]["data"] if t["name"] == "threshold"]
    assert {y for y in threshold["y"] if y is not None} == {0.3}
    assert len(threshold["x"]) == 3 * 14
    # the drift line crosses it on the drought days only
    (score,) = [t for t in figures[DRIFT_PANEL_ID]["data"] if t["name"] == "drift_score"]
    over = [x for x, y in zip(score["x"], score["y"], strict=True) if y is not None and y >= 0.3]
    assert over == [d.isoformat() for d in drought_days]
    # and the stat of the newest day's drift is red
    (stat,) = [p for p in page.panels if p.title == "Latest prediction drift"]
    assert [(v.name, v.text, v.color) for v in stat.stats] == [
        ("drift_score", "1.500", COLORS["red"])
    ]


def test_the_page_shows_the_newest_days_asked_for(
    conn: psycopg.Connection, drought: list[DayRow], now: dt.datetime, today: dt.date
) -> None:
    page = build_page(conn, source="a test database", days=3, now=now)
    assert (page.shown.first_day, page.shown.last_day) == (today - dt.timedelta(days=2), today)
    figures = read_figures(page.html)
    (score,) = [t for t in figures[DRIFT_PANEL_ID]["data"] if t["name"] == "drift_score"]
    assert score["x"] == [(today - dt.timedelta(days=k)).isoformat() for k in (2, 1, 0)]
    (ledger,) = [p for p in page.panels if p.title == "Ledger"]
    dates = {row[ledger.table.columns.index("batch_date")].text for row in ledger.table.rows}
    assert dates == {(today - dt.timedelta(days=k)).isoformat() for k in (2, 1, 0)}
    # the failed file comes first, its error in red
    first = dict(zip(ledger.table.columns, ledger.table.rows[0], strict=True))
    assert (first["status"].text, first["status"].color) == ("failed", COLORS["red"])
    assert first["last_error"].text.startswith("InvalidRawFile")
    assert first["last_error"].color == COLORS["red"]


class _Fetches(HTMLParser):
    """What a browser would fetch for a page: the src and href of its elements, its link
    elements, and url() or @import in its styles."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []
        self._style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "link":
            self.found.append(f"<link {attrs}>")
        for name, value in attrs:
            if name in ("src", "href", "srcset", "data", "action", "poster"):
                self.found.append(f"{tag} {name}={value}")
            if name == "style" and value and re.search(r"url\(|@import", value):
                self.found.append(f"{tag} style={value}")
        self._style = tag == "style"

    def handle_data(self, data: str) -> None:
        if self._style and re.search(r"url\(|@import", data):
            self.found.append(f"style: {data}")

    def handle_endtag(self, tag: str) -> None:
        self._style = False


def test_the_page_fetches_nothing_and_embeds_plotly_once(
    conn: psycopg.Connection, drought: list[DayRow], now: dt.datetime
) -> None:
    from plotly.offline import get_plotlyjs

    page = build_page(conn, source="a test database", now=now)
    fetches = _Fetches()
    fetches.feed(page.html)
    assert fetches.found == []
    bundle = get_plotlyjs()
    assert page.html.count(bundle) == 1
    # besides plotly's own bundle (whose code names URLs it never fetches for these traces:
    # no maps, no LaTeX), the page holds no address at all
    assert not re.search(r"https?:|//[a-z]", page.html.replace(bundle, ""))
    kinds = {t["type"] for f in read_figures(page.html).values() for t in f["data"]}
    assert kinds <= {"bar", "scatter"}
    assert len(page.html) < len(bundle) + 300_000


def test_the_page_of_an_empty_ledger_is_none(conn: psycopg.Connection, now: dt.datetime) -> None:
    assert build_page(conn, source="a test database", now=now) is None
