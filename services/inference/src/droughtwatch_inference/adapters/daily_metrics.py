"""daily_metrics SQL: which days are stale, the files and the late labels of a day, and the day's
row.

A day (batch_date, model_name, model_version) is stale when it has a metrics row newer than the
newest one its daily row pooled (``last_metrics_id``), when a late label newer than the newest
one it pooled (``last_label_seq``, migration 0008) matches one of its files, or when it has no
daily row yet. Whatever left it stale (new files, new labels, a run that stopped early, a
failed pooling), the next Observe run recomputes it.

A label matches a file by the start of the raw file's digest that every image id carries
(``left(image_id, DIGEST_CHARS)`` = ``left(source_digest, DIGEST_CHARS)``, the expressions of
migration 0008's indexes).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import psycopg

from droughtwatch_inference.adapters.labels import digest_match
from droughtwatch_inference.adapters.ledger import as_sql_values
from droughtwatch_inference.metrics_row import DayMetrics, columns
from droughtwatch_inference.records import Day, LateLabel

_KEY = ("batch_date", "model_name", "model_version")
_MATCHES = digest_match("l.image_id", "g.source_digest")


class DailyMetrics:
    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn

    def stale_days(self) -> list[Day]:
        rows = self.conn.execute(
            f"""
            SELECT m.batch_date, m.model_name, m.model_version, max(m.id)
            FROM metrics m
            JOIN ledger g ON g.id = m.ledger_id
            LEFT JOIN daily_metrics d ON (d.batch_date, d.model_name, d.model_version)
                                       = (m.batch_date, m.model_name, m.model_version)
            LEFT JOIN LATERAL (
                SELECT max(l.seq) AS seq FROM labels l WHERE {_MATCHES}
            ) AS newest ON true
            GROUP BY m.batch_date, m.model_name, m.model_version, d.last_metrics_id,
                     d.last_label_seq
            HAVING d.last_metrics_id IS NULL OR max(m.id) > d.last_metrics_id
                OR max(newest.seq) > coalesce(d.last_label_seq, 0)
            ORDER BY 1, 2, 3
            """
        ).fetchall()
        return [Day(*row) for row in rows]

    def day_files(self, day: Day) -> list[tuple[int, str]]:
        """(metrics id, predictions key) of the day's files up to ``day.last_metrics_id``."""
        rows = self.conn.execute(
            "SELECT id, predictions_key FROM metrics"
            " WHERE batch_date = %s AND model_name = %s AND model_version = %s AND id <= %s"
            " ORDER BY id",
            (day.batch_date, day.model_name, day.model_version, day.last_metrics_id),
        ).fetchall()
        return [(int(i), str(k)) for i, k in rows]

    def day_labels(self, day: Day) -> list[LateLabel]:
        """The late labels whose ids name a raw file of the day's files (up to
        ``day.last_metrics_id``), read in one statement: with the label writers serialised
        (adapters.labels), they are every label up to the newest one read."""
        rows = self.conn.execute(
            f"""
            SELECT DISTINCT l.image_id, l.label, l.seq, l.received_at
            FROM metrics m
            JOIN ledger g ON g.id = m.ledger_id
            JOIN labels l ON {_MATCHES}
            WHERE m.batch_date = %s AND m.model_name = %s AND m.model_version = %s
              AND m.id <= %s
            ORDER BY l.image_id
            """,
            (day.batch_date, day.model_name, day.model_version, day.last_metrics_id),
        ).fetchall()
        return [
            LateLabel(str(i), str(label), int(seq), at.astimezone(dt.UTC))
            for i, label, seq, at in rows
        ]

    def upsert(self, row: DayMetrics) -> bool:
        """Insert or replace the day's row, unless the row there pooled newer files or newer
        labels (two executions pooling one day at once: the newer pool wins; a day left with
        the older one is stale and recomputed by the next run)."""
        values = as_sql_values(DayMetrics, "daily_metrics", row)
        columns = sorted(values)
        updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns if c not in _KEY)
        with self.conn.transaction():
            cur = self.conn.execute(
                f"INSERT INTO daily_metrics ({', '.join(columns)}) VALUES"
                f" ({', '.join(f'%({c})s' for c in columns)})"
                f" ON CONFLICT ({', '.join(_KEY)}) DO UPDATE SET {updates}, computed_at = now()"
                " WHERE daily_metrics.last_metrics_id <= EXCLUDED.last_metrics_id"
                " AND coalesce(daily_metrics.last_label_seq, 0)"
                " <= coalesce(EXCLUDED.last_label_seq, 0)",
                values,
            )
        return cur.rowcount == 1

    def written_by(self, run_id: str, names: Sequence[str]) -> list[dict[str, Any]]:
        """The columns ``names`` of the daily rows that run ``run_id`` wrote (the days it
        recomputed), by date."""
        unknown = set(names) - columns(DayMetrics)
        if unknown:
            raise ValueError(f"not daily_metrics columns: {sorted(unknown)}")
        rows = self.conn.execute(
            f"SELECT {', '.join(names)} FROM daily_metrics WHERE run_id = %s"
            " ORDER BY batch_date, model_name, model_version",
            (run_id,),
        ).fetchall()
        return [dict(zip(names, row, strict=True)) for row in rows]
