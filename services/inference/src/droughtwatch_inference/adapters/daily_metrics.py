"""daily_metrics SQL: which days are stale, the files of a day, and the day's row.

A day (batch_date, model_name, model_version) is stale when it has a metrics row newer than the
newest one its daily row pooled (``last_metrics_id``), or no daily row yet. Whatever left it
stale (new files, a run that stopped early, a failed pooling), the next Observe run
recomputes it.
"""

from __future__ import annotations

import psycopg

from droughtwatch_inference.adapters.ledger import as_sql_values
from droughtwatch_inference.metrics_row import DayMetrics
from droughtwatch_inference.records import Day

_KEY = ("batch_date", "model_name", "model_version")


class DailyMetrics:
    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn

    def stale_days(self) -> list[Day]:
        rows = self.conn.execute(
            "SELECT m.batch_date, m.model_name, m.model_version, max(m.id)"
            " FROM metrics m"
            " LEFT JOIN daily_metrics d USING (batch_date, model_name, model_version)"
            " GROUP BY m.batch_date, m.model_name, m.model_version, d.last_metrics_id"
            " HAVING d.last_metrics_id IS NULL OR max(m.id) > d.last_metrics_id"
            " ORDER BY 1, 2, 3"
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

    def upsert(self, row: DayMetrics) -> bool:
        """Insert or replace the day's row, unless a row that pooled newer files is there
        already (two executions pooling one day at once: the larger pool wins)."""
        values = as_sql_values(DayMetrics, "daily_metrics", row)
        columns = sorted(values)
        updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns if c not in _KEY)
        with self.conn.transaction():
            cur = self.conn.execute(
                f"INSERT INTO daily_metrics ({', '.join(columns)}) VALUES"
                f" ({', '.join(f'%({c})s' for c in columns)})"
                f" ON CONFLICT ({', '.join(_KEY)}) DO UPDATE SET {updates}, computed_at = now()"
                " WHERE daily_metrics.last_metrics_id <= EXCLUDED.last_metrics_id",
                values,
            )
        return cur.rowcount == 1
