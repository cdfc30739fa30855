"""The page's data: the days it shows (the newest batches in the ledger) and each query's rows
over them, the SQL run as Grafana runs it (its macros expanded by grafana/macros.py)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from droughtwatch_tools.grafana.compose import BATCH_RANGE_SQL
from droughtwatch_tools.grafana.macros import expand_macros
from droughtwatch_tools.grafana.queries import Query


@dataclass(frozen=True)
class PageRange:
    """The batch days shown, first to last, and the times the macros filter on: from the first
    day's midnight (UTC, where the batches are charted) to the end of the last day, or to now
    when that is later (the stage runs of old batches ran recently)."""

    first_day: dt.date
    last_day: dt.date
    start: dt.datetime
    end: dt.datetime

    @property
    def days(self) -> int:
        return (self.last_day - self.first_day).days + 1


@dataclass(frozen=True)
class Rows:
    """A query's result: its columns and its rows (numbers as int or float)."""

    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]

    def column(self, name: str) -> list[Any]:
        k = self.columns.index(name)
        return [row[k] for row in self.rows]


def midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), dt.UTC)


def batch_dates(conn: Any) -> tuple[dt.date, dt.date] | None:
    """The first and the newest batch date in the ledger; None before the first run."""
    first, last = conn.execute(BATCH_RANGE_SQL).fetchone()
    return None if first is None else (first, last)


def page_range(
    first_batch: dt.date, last_batch: dt.date, days: int | None, now: dt.datetime
) -> PageRange:
    """The ``days`` days up to the newest batch, from the first batch on (every batch when
    ``days`` is None)."""
    first = first_batch
    if days is not None:
        first = max(first_batch, last_batch - dt.timedelta(days=days - 1))
    end_of_last = midnight(last_batch + dt.timedelta(days=1)) - dt.timedelta(milliseconds=1)
    return PageRange(first, last_batch, midnight(first), max(end_of_last, now))


def _value(value: Any) -> Any:
    # numeric columns come back as Decimal: the page's JSON takes floats
    return float(value) if isinstance(value, Decimal) else value


def run_queries(conn: Any, wanted: list[Query], shown: PageRange) -> dict[str, Rows]:
    """Each query's rows over the range, by query name."""
    results = {}
    for query in wanted:
        cursor = conn.execute(expand_macros(query.sql, shown.start, shown.end))
        columns = tuple(d.name for d in cursor.description or ())
        if columns != query.columns:
            raise ValueError(f"query {query.name} returned {columns}, expected {query.columns}")
        rows = [tuple(_value(v) for v in row) for row in cursor.fetchall()]
        results[query.name] = Rows(columns, rows)
    return results
