"""Ledger, metrics and runs SQL. Parameterised always: raw keys come from users.

Claiming is concurrency-safe: a claim takes one row with FOR UPDATE SKIP LOCKED and marks it
running under a lease in the same statement, so two executions never work on the same file; a
lease that expires (a Lambda killed mid-file) makes the file claimable again.

Claims can be restricted to a set of ledger ids (``files``): a child workflow of the Map claims
exactly its item's files, so two executions whose items overlap, or a child run twice, still do
each file once.

A local run's claim also names its owner: a session-level advisory lock that the process
holding the claim keeps for as long as it lives (`hold_claim_lock`; the settings' claim_lock).
PostgreSQL drops a session's locks when its connection goes, so when that process dies (kill -9,
a crash) its claims are taken over at once, while a live run's are left alone. On AWS claims
name no lock and the lease alone ends them: a function's session may outlive the function,
or drop while it still works.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

import psycopg
from droughtwatch_contract.stages import (
    DONE,
    DUPLICATE,
    PENDING,
    SKIPPED,
    STAGES,
    StageRegistry,
)
from psycopg.rows import class_row
from psycopg.types.json import Jsonb

from droughtwatch_inference.metrics_row import FileMetrics, columns, json_columns
from droughtwatch_inference.records import (
    FileOutcome,
    LedgerEntry,
    PendingFile,
    PendingWork,
    RawObject,
)

_ENTRY_COLUMNS = (
    "id, bucket, raw_key, etag, size_bytes, batch_date, stage, status, attempts, "
    "source_digest, processed_key, predictions_key, model_name, model_version, "
    "processed_expires_at"
)
# Outcomes that end a file's way without products (see migration 0002).
SETTLED = frozenset({SKIPPED, DUPLICATE})
# The first key of every claim lock (advisory locks in the two-key form: this space, then the
# claim's claim_lock), which keeps them apart from any other advisory lock.
CLAIM_LOCK_SPACE = 0x64770005
# The claim locks held now in this database: the keys of live local runs.
_LIVE_CLAIM_LOCKS = f"""
    SELECT objid FROM pg_locks
    WHERE locktype = 'advisory' AND granted AND objsubid = 2 AND classid = {CLAIM_LOCK_SPACE}::oid
      AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
"""


def _claim_held(row: str) -> str:
    """SQL: the ledger row ``row`` (a table name or alias) is claimed by a run that still holds
    it: its lease has not ended and, for a local claim, its process still holds its lock."""
    return (
        f"({row}.status = 'running' AND {row}.lease_until > now() AND"
        f" ({row}.claim_lock IS NULL OR {row}.claim_lock::oid IN ({_LIVE_CLAIM_LOCKS})))"
    )


def _open(retry_failed: str = "TRUE") -> str:
    """SQL: a ledger row open to work at its stage: pending, dropped by a claim that ended, or
    failed with attempts left (when ``retry_failed``, an SQL boolean, holds)."""
    return f"""(status = 'pending'
         OR (status = 'running' AND NOT {_claim_held("ledger")})
         OR ({retry_failed} AND status = 'failed' AND attempts < %(max_attempts)s))"""


_CLAIMABLE = f"""
    stage = %(stage)s
    AND {_open()}
    AND (%(files)s::bigint[] IS NULL OR id = ANY(%(files)s::bigint[]))
"""
# What Plan hands out: files waiting for any stage (pending, or dropped by a claim that ended),
# and, in an execution's first round only, those failed with attempts left (a later round
# would retry in the same execution what just failed in it).
_WAITING = f"""
    stage <> '{DONE}'
    AND {_open("%(retry_failed)s")}
"""


# The runs table's counts (a step reports those it has).
_RUN_COUNTS = ("files_done", "files_failed", "images", "dropped", "remaining")


class RunReport(Protocol):
    """What a step reports about one invocation (records' StageReport, PlanReport or
    DayReport)."""

    stage: str
    run_id: str

    def run_counts(self) -> dict[str, int]: ...


def hold_claim_lock(conn: psycopg.Connection) -> int:
    """Take a claim lock under a free key for the session of ``conn`` and return the key (for
    the settings' claim_lock). It is held until that connection closes, or its process dies."""
    while True:
        key = secrets.randbelow(2**31 - 1) + 1
        row = conn.execute(
            "SELECT pg_try_advisory_lock(%s, %s)", (CLAIM_LOCK_SPACE, key)
        ).fetchone()
        if row is not None and row[0]:
            return key


class Ledger:
    def __init__(
        self,
        conn: psycopg.Connection,
        stages: StageRegistry = STAGES,
        *,
        claim_lock: int | None = None,
        files: Sequence[int] | None = None,
    ) -> None:
        """``claim_lock``: the key of the claim lock this process holds (local runs), which
        every claim records; None on AWS. ``files``: the ledger ids this ledger may claim (a
        Map item's), or None for any file."""
        self.conn = conn
        self.stages = stages
        self.claim_lock = claim_lock
        self.files = None if files is None else [int(i) for i in files]

    def register(
        self, bucket: str, objects: Iterable[tuple[RawObject, dt.date]], run_id: str
    ) -> int:
        """Insert unseen raw object versions; returns how many were new. A new version (new
        ETag) of a key supersedes the key's older versions: they keep their history and leave
        the queue and the failed files."""
        rows = list(objects)
        if not rows:
            return 0
        # One statement for the whole listing (a backlog of thousands is one round trip): the
        # new versions, then their keys' older versions superseded, which the insert's
        # snapshot still shows as they were.
        row = self.conn.execute(
            """
            WITH new AS (
                INSERT INTO ledger (bucket, raw_key, etag, size_bytes, batch_date, registered_run)
                SELECT %(bucket)s, f.raw_key, f.etag, f.size_bytes, f.batch_date, %(run_id)s
                FROM unnest(%(keys)s::text[], %(etags)s::text[], %(sizes)s::bigint[],
                            %(dates)s::date[]) WITH ORDINALITY
                     AS f(raw_key, etag, size_bytes, batch_date, n)
                ORDER BY f.n
                ON CONFLICT (bucket, raw_key, etag) DO NOTHING
                RETURNING id, raw_key, etag
            ), superseded AS (
                UPDATE ledger SET status = 'superseded', superseded_by = new.id,
                       note = 'replaced by a newer upload of the same key (ETag '
                              || new.etag || ')',
                       lease_until = NULL, updated_at = now()
                FROM new
                WHERE ledger.bucket = %(bucket)s AND ledger.raw_key = new.raw_key
                  AND ledger.id < new.id AND ledger.status <> 'superseded'
            )
            SELECT count(*) FROM new
            """,
            {
                "bucket": bucket,
                "run_id": run_id,
                "keys": [obj.key for obj, _ in rows],
                "etags": [obj.etag for obj, _ in rows],
                "sizes": [obj.size for obj, _ in rows],
                "dates": [batch_date for _, batch_date in rows],
            },
        ).fetchone()
        return int(row[0]) if row else 0

    def claim(
        self, stage: str, *, max_attempts: int, lease_seconds: int, exclude: Sequence[int] = ()
    ) -> LedgerEntry | None:
        params = {
            "stage": stage,
            "max_attempts": max_attempts,
            "lease": dt.timedelta(seconds=lease_seconds),
            "exclude": list(exclude),
            "claim_lock": self.claim_lock,
            "files": self.files,
        }
        with self.conn.cursor(row_factory=class_row(LedgerEntry)) as cur:
            cur.execute(
                f"""
                UPDATE ledger SET status = 'running', attempts = attempts + 1,
                       lease_until = now() + %(lease)s, claim_lock = %(claim_lock)s,
                       updated_at = now()
                WHERE id = (
                    SELECT id FROM ledger
                    WHERE {_CLAIMABLE} AND NOT (id = ANY(%(exclude)s))
                    ORDER BY batch_date, registered_at, id
                    LIMIT 1 FOR UPDATE SKIP LOCKED)
                RETURNING {_ENTRY_COLUMNS}
                """,
                params,
            )
            return cur.fetchone()

    def remaining(self, stage: str, *, max_attempts: int, exclude: Sequence[int] = ()) -> int:
        row = self.conn.execute(
            f"SELECT count(*) FROM ledger WHERE {_CLAIMABLE} AND NOT (id = ANY(%(exclude)s))",
            {
                "stage": stage,
                "max_attempts": max_attempts,
                "exclude": list(exclude),
                "files": self.files,
            },
        ).fetchone()
        return int(row[0]) if row else 0

    def pending_files(self, *, max_attempts: int, retry_failed: bool, limit: int) -> PendingWork:
        """The first ``limit`` files waiting for any stage, in the order the stages claim
        them; how many wait in all; and how many are held by other runs' live claims (left
        out: they are in progress there)."""
        params = {"max_attempts": max_attempts, "retry_failed": retry_failed, "limit": limit}
        rows = self.conn.execute(
            f"SELECT id, size_bytes, count(*) OVER () FROM ledger WHERE {_WAITING}"
            " ORDER BY batch_date, registered_at, id LIMIT %(limit)s",
            params,
        ).fetchall()
        held = self.conn.execute(
            f"SELECT count(*) FROM ledger WHERE {_claim_held('ledger')}"
        ).fetchone()
        return PendingWork(
            files=[PendingFile(int(i), int(size)) for i, size, _ in rows],
            total=int(rows[0][2]) if rows else 0,
            held=int(held[0]) if held else 0,
        )

    def complete(self, entry_id: int, stage: str, **values: Any) -> None:
        """Record a stage's outputs (the columns the stage registry gives that stage) and move the
        file on to the next stage. Only a claimed (running) row moves: one superseded meanwhile
        keeps its new status."""
        self._check_columns(stage, values)
        stamp = self.stages[stage].completed_at
        columns = sorted(values)
        assignments = ", ".join(f"{c} = %({c})s" for c in columns)
        next_stage = self.stages.next_name(stage)
        status = DONE if next_stage == DONE else PENDING
        self.conn.execute(
            f"UPDATE ledger SET {assignments}{', ' if columns else ''}"
            f"{stamp} = now(), stage = %(next)s, status = %(status)s, attempts = 0,"
            " lease_until = NULL, last_error = NULL, updated_at = now()"
            " WHERE id = %(id)s AND stage = %(stage)s AND status = 'running'",
            {**values, "next": next_stage, "status": status, "id": entry_id, "stage": stage},
        )

    def settle(
        self,
        entry_id: int,
        stage: str,
        status: str,
        note: str,
        *,
        duplicate_of: str | None = None,
        **values: Any,
    ) -> None:
        """End a claimed file's way through the pipeline without products: ``skipped`` (not
        a TFRecord) or ``duplicate`` (its content was taken under ``duplicate_of``)."""
        if status not in SETTLED:
            raise ValueError(f"not a settled status: {status!r}")
        self._check_columns(stage, values)
        columns = sorted(values)
        assignments = "".join(f"{c} = %({c})s, " for c in columns)
        self.conn.execute(
            f"UPDATE ledger SET {assignments}status = %(status)s, note = %(note)s,"
            " duplicate_of = %(duplicate_of)s, lease_until = NULL, last_error = NULL,"
            " updated_at = now()"
            " WHERE id = %(id)s AND stage = %(stage)s AND status = 'running'",
            {
                **values,
                "status": status,
                "note": note,
                "duplicate_of": duplicate_of,
                "id": entry_id,
                "stage": stage,
            },
        )

    def original_of(self, entry_id: int, source_digest: str) -> str | None:
        """The raw key that already holds this content, or None after recording the digest on
        this (claimed) row, so that it is the original for every later copy. Serialised per
        digest, so two runs taking two copies at once agree on one original."""
        with self.conn.transaction():
            self.conn.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (source_digest,)
            )
            row = self.conn.execute(
                "SELECT raw_key FROM ledger WHERE source_digest = %s AND id <> %s"
                " AND status NOT IN ('superseded', 'duplicate', 'skipped')"
                " ORDER BY id LIMIT 1",
                (source_digest, entry_id),
            ).fetchone()
            if row is not None:
                return str(row[0])
            self.conn.execute(
                "UPDATE ledger SET source_digest = %s WHERE id = %s", (source_digest, entry_id)
            )
        return None

    def fail(self, entry_id: int, stage: str, error: str) -> None:
        self.conn.execute(
            "UPDATE ledger SET status = 'failed', last_error = %s, last_error_at = now(),"
            " lease_until = NULL, updated_at = now()"
            " WHERE id = %s AND stage = %s AND status = 'running'",
            (error[:4000], entry_id, stage),
        )

    def send_back(self, entry_id: int, stage: str, to_stage: str, error: str) -> None:
        """A claimed file whose input product expired goes back to ``to_stage`` (the stage
        that makes that product again), pending with fresh attempts; ``error`` says why."""
        if to_stage not in self.stages:
            raise ValueError(f"no stage {to_stage!r} to send the file back to")
        self.conn.execute(
            "UPDATE ledger SET stage = %(to)s, status = 'pending', attempts = 0,"
            " last_error = %(error)s, last_error_at = now(), lease_until = NULL,"
            " updated_at = now()"
            " WHERE id = %(id)s AND stage = %(stage)s AND status = 'running'",
            {"to": to_stage, "error": error[:4000], "id": entry_id, "stage": stage},
        )

    def _check_columns(self, stage: str, values: dict[str, Any]) -> None:
        """Only the columns the stage registry gives the stage."""
        unknown = set(values) - self.stages[stage].ledger_columns
        if unknown:
            raise ValueError(f"unknown ledger columns for {stage}: {sorted(unknown)}")

    def release(self, entry_id: int, stage: str) -> None:
        """Give a claimed file back untouched (interrupted before any work was recorded)."""
        self.conn.execute(
            "UPDATE ledger SET"
            " status = CASE WHEN attempts > 1 THEN 'failed' ELSE 'pending' END,"
            " attempts = greatest(attempts - 1, 0), lease_until = NULL, updated_at = now()"
            " WHERE id = %s AND stage = %s AND status = 'running'",
            (entry_id, stage),
        )

    def record_run(self, report: RunReport, started_at: dt.datetime, error: str | None) -> None:
        """One row of the runs table: a step's invocation, its counts and its error."""
        counts = {c: 0 for c in _RUN_COUNTS} | report.run_counts()
        self.conn.execute(
            "INSERT INTO runs (run_id, stage, started_at, status, files_done, files_failed,"
            " images, dropped, remaining, error)"
            " VALUES (%(run_id)s, %(stage)s, %(started_at)s, %(status)s, %(files_done)s,"
            " %(files_failed)s, %(images)s, %(dropped)s, %(remaining)s, %(error)s)",
            {
                **counts,
                "run_id": report.run_id,
                "stage": report.stage,
                "started_at": started_at,
                "status": "failed" if error else "succeeded",
                "error": error,
            },
        )

    def outcomes(self, bucket: str, versions: Sequence[RawObject]) -> list[FileOutcome]:
        """Where each raw object version stands, in the order given, with the metrics of its
        predictions file (joined on that file, so a version whose products an earlier version
        already observed shows those metrics)."""
        rows = self.conn.execute(
            f"""
            SELECT f.raw_key, f.etag, l.id IS NOT NULL, l.stage, l.status,
                   coalesce(l.attempts, 0),
                   coalesce({_claim_held("l")}, false),
                   l.images, l.dropped, l.last_error, l.note, l.duplicate_of, l.report_key,
                   coalesce(m.class_shares, '{{}}'::jsonb), m.drift_score, m.drift_threshold,
                   m.drift_detected, l.report_expires_at
            FROM unnest(%(keys)s::text[], %(etags)s::text[]) WITH ORDINALITY AS f(raw_key, etag, n)
            LEFT JOIN ledger l
                   ON l.bucket = %(bucket)s AND l.raw_key = f.raw_key AND l.etag = f.etag
            LEFT JOIN metrics m ON m.predictions_key = l.predictions_key
            ORDER BY f.n
            """,
            {
                "bucket": bucket,
                "keys": [v.key for v in versions],
                "etags": [v.etag for v in versions],
            },
        ).fetchall()
        return [FileOutcome(*row) for row in rows]

    def insert_metrics(self, row: FileMetrics) -> bool:
        """Insert one metrics row; a second insert for the same predictions file is a no-op."""
        values = as_sql_values(FileMetrics, "metrics", row)
        columns = sorted(values)
        cur = self.conn.execute(
            f"INSERT INTO metrics ({', '.join(columns)}) VALUES"
            f" ({', '.join(f'%({c})s' for c in columns)})"
            " ON CONFLICT (predictions_key) DO NOTHING",
            values,
        )
        return cur.rowcount == 1


def as_sql_values(record: type, table: str, row: Mapping[str, Any]) -> dict[str, Any]:
    """``row``'s values for psycopg, once it is checked to hold exactly the columns of
    ``record`` (its table's row, metrics_row), with the jsonb columns wrapped."""
    expected = columns(record)
    unknown = set(row) - expected
    if unknown:
        raise ValueError(f"unknown {table} columns: {sorted(unknown)}")
    missing = expected - set(row)
    if missing:
        raise ValueError(f"the {table} row lacks the columns {sorted(missing)}")
    jsonb = json_columns(record)
    return {k: Jsonb(v) if k in jsonb and v is not None else v for k, v in row.items()}
