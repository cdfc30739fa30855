"""The metrics row is written once (metrics_row) and the rest agrees with it: the migrated
tables have exactly its columns, with their types and nullability; each signal's logic builds
exactly its part; the adapters refuse a row with a column too many or too few. A column added
to a record without its migration, or the other way round, fails here."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd
import psycopg
import pytest
from droughtwatch_inference.adapters.daily_metrics import DailyMetrics
from droughtwatch_inference.adapters.ledger import Ledger
from droughtwatch_inference.logic.data_quality import data_quality
from droughtwatch_inference.logic.input_drift import input_drift
from droughtwatch_inference.logic.model_quality import model_quality
from droughtwatch_inference.logic.observe import observe_predictions
from droughtwatch_inference.metrics_row import (
    DataQuality,
    DayMetrics,
    FileMetrics,
    InputDrift,
    ModelQuality,
    PredictionDrift,
    Signals,
    column_types,
    columns,
    json_columns,
    nullable,
    value_type,
)
from droughtwatch_preprocess import PIXELS

# Each table's own columns, which no stage writes.
TABLE_OWN = {"metrics": {"id", "computed_at"}, "daily_metrics": {"computed_at"}}
RECORDS = {"metrics": FileMetrics, "daily_metrics": DayMetrics}
SQL_TYPES = {
    int: {"integer", "bigint"},
    float: {"double precision"},
    str: {"text"},
    bool: {"boolean"},
    dt.date: {"date"},
    dict: {"jsonb"},
    list: {"jsonb"},
}
CLASSES = ["0", "1"]
META = {
    "name": "m",
    "version": "v1",
    "classes": CLASSES,
    "reference_class_shares": {"0": 0.5, "1": 0.5},
}


@pytest.fixture
def conn(database_dsn: str):
    with psycopg.connect(database_dsn, autocommit=True) as connection:
        yield connection


def migrated_columns(conn: psycopg.Connection, table: str) -> dict[str, tuple[str, bool]]:
    """column -> (SQL type, nullable) of the migrated ``table``."""
    rows = conn.execute(
        "SELECT column_name, data_type, is_nullable = 'YES' FROM information_schema.columns"
        " WHERE table_name = %s",
        (table,),
    ).fetchall()
    return {name: (kind, null) for name, kind, null in rows}


@pytest.mark.parametrize("table", sorted(RECORDS))
def test_the_record_has_the_migrated_tables_columns_types_and_nullability(
    conn: psycopg.Connection, table: str
) -> None:
    migrated = migrated_columns(conn, table)
    record = column_types(RECORDS[table])
    assert set(migrated) - TABLE_OWN[table] == set(record)
    for name, kind in record.items():
        sql_type, sql_nullable = migrated[name]
        assert sql_type in SQL_TYPES[value_type(kind)], (table, name, sql_type, kind)
        # a NULL the record writes must be allowed; a NOT NULL column is never written NULL
        if nullable(kind):
            assert sql_nullable, (table, name)
        if not sql_nullable:
            assert not nullable(kind), (table, name)


def test_both_tables_hold_the_signals_and_their_own_columns() -> None:
    signals = columns(Signals)
    assert signals == columns(PredictionDrift) | columns(ModelQuality) | columns(
        InputDrift
    ) | columns(DataQuality) | {"notes"}
    assert signals < columns(FileMetrics) and signals < columns(DayMetrics)
    assert json_columns(FileMetrics) == json_columns(DayMetrics) == json_columns(Signals)
    assert {"class_counts", "notes", "per_class", "zero_share"} <= json_columns(Signals)


def test_each_signal_builds_exactly_its_part_of_the_row() -> None:
    empty = pd.DataFrame({"label": pd.Series([], dtype=object)})
    prediction, _ = observe_predictions(empty, META, method="psi", threshold=0.25)
    quality, _, _ = model_quality(empty, CLASSES, None, margin=0.1)
    drift, _, _ = input_drift(
        empty, None, threshold=0.3, share_threshold=0.5, detected=lambda s, t: False
    )
    labelled = pd.DataFrame({"label": ["0", "1"], "true_label": ["0", None]})
    counts = {
        "records": 3,
        "dropped_blank": 1,
        "pixels": {
            "images": 2,
            "pixels_per_image": PIXELS,
            "zero": {"B4": 1},
            "saturated": {"B4": 0},
            "nonfinite": {"EVI": 0},
        },
    }
    for values, part in (
        (prediction, PredictionDrift),
        (quality, ModelQuality),
        (drift, InputDrift),
        (data_quality(empty, None), DataQuality),
        (data_quality(labelled, counts), DataQuality),
    ):
        assert set(values) == columns(part), part.__name__


def _signals() -> dict[str, Any]:
    return dict.fromkeys(columns(Signals))


def test_the_adapters_take_a_whole_row_and_nothing_else(conn: psycopg.Connection) -> None:
    ledger, daily = Ledger(conn), DailyMetrics(conn)
    with pytest.raises(ValueError, match=r"metrics row lacks the columns \['batch_date'"):
        ledger.insert_metrics(_signals())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown daily_metrics columns: \\['ledger_id'\\]"):
        daily.upsert({**_signals(), **dict.fromkeys(columns(DayMetrics)), "ledger_id": 1})  # type: ignore[typeddict-item]
    with pytest.raises(ValueError, match=r"daily_metrics row lacks the columns \['enough_data'\]"):
        row = dict.fromkeys(columns(DayMetrics) - {"enough_data"})
        daily.upsert(row)  # type: ignore[arg-type]
