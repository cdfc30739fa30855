"""Late labels SQL (migration 0008): the once-only record of label files and the labels table.

A label file version (bucket, key, ETag) is read once: its record and all its labels are written
in one transaction, so a file is loaded whole or not at all, and two runs that find the same new
file load it once (the second's insert of the record conflicts and it moves on).

Label writers are serialised by a transaction-level advisory lock, so a label's number
(labels.seq, from a sequence) grows in commit order: a reader that sees label n sees every label
before it. That lets a daily row record the newest label it pooled (last_label_seq) and the day
go stale exactly when a newer label matches its images.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import psycopg
from droughtwatch_preprocess.ids import DIGEST_CHARS

from droughtwatch_inference.records import LabelFileOutcome

# pg_advisory_xact_lock key of the label writers: any constant, the same in every process.
_LABELS_LOCK = 0x64770008


def digest_match(image_id: str, source_digest: str) -> str:
    """SQL: the image id (an SQL expression) names the raw file whose digest is
    ``source_digest``: their first DIGEST_CHARS characters, in the very expressions of migration
    0008's indexes, so that the planner uses them."""
    return f"left({image_id}, {DIGEST_CHARS}) = left({source_digest}, {DIGEST_CHARS})"


# Of these ids (a text[] parameter), those that match no record of a predicted file: the file
# its digest names has no predictions yet (or the index is past its records).
_UNKNOWN_IDS = f"""
    SELECT count(*) FROM unnest(%(ids)s::text[]) AS f(id)
    WHERE NOT EXISTS (
        SELECT 1 FROM ledger g
        WHERE {digest_match("f.id", "g.source_digest")}
          AND g.predictions_key IS NOT NULL
          AND split_part(f.id, '-', 2)::bigint < coalesce(g.records, 0))
"""


class Labels:
    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn

    def known_files(self, bucket: str) -> set[tuple[str, str]]:
        """(key, ETag) of every label file version of ``bucket`` already read."""
        rows = self.conn.execute(
            "SELECT key, etag FROM label_files WHERE bucket = %s", (bucket,)
        ).fetchall()
        return {(str(k), str(e)) for k, e in rows}

    def ingest(
        self,
        bucket: str,
        key: str,
        etag: str,
        size: int,
        run_id: str,
        labels: Mapping[str, str],
    ) -> LabelFileOutcome | None:
        """Record the file and write its labels, in one transaction; None when another run
        has taken this version. A label that differs from an image's current one replaces it
        and keeps what it replaced; the same label again changes nothing."""
        ids, values = list(labels), list(labels.values())
        with self.conn.transaction():
            self.conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LABELS_LOCK,))
            row = self.conn.execute(
                "INSERT INTO label_files (bucket, key, etag, size_bytes, run_id, status,"
                " label_rows) VALUES (%s, %s, %s, %s, %s, 'ingested', %s)"
                " ON CONFLICT (bucket, key, etag) DO NOTHING RETURNING id",
                (bucket, key, etag, size, run_id, len(ids)),
            ).fetchone()
            if row is None:
                return None
            written = self.conn.execute(
                """
                INSERT INTO labels AS l (image_id, label, source_key, source_etag)
                SELECT f.id, f.label, %(key)s, %(etag)s
                FROM unnest(%(ids)s::text[], %(labels)s::text[]) AS f(id, label)
                ON CONFLICT (image_id) DO UPDATE SET
                    label = EXCLUDED.label,
                    source_key = EXCLUDED.source_key,
                    source_etag = EXCLUDED.source_etag,
                    received_at = now(),
                    seq = nextval('labels_seq'),
                    previous_label = l.label,
                    previous_source_key = l.source_key,
                    previous_received_at = l.received_at
                WHERE l.label IS DISTINCT FROM EXCLUDED.label
                RETURNING (xmax = 0) AS inserted
                """,
                {"key": key, "etag": etag, "ids": ids, "labels": values},
            ).fetchall()
            new = sum(1 for (inserted,) in written if inserted)
            outcome = LabelFileOutcome(
                key=key,
                etag=etag,
                status="ingested",
                label_rows=len(ids),
                new_labels=new,
                replaced=len(written) - new,
                unchanged=len(ids) - len(written),
                unknown_ids=self.unknown_ids(ids),
            )
            self.conn.execute(
                "UPDATE label_files SET new_labels = %s, replaced = %s, unchanged = %s,"
                " unknown_ids = %s WHERE id = %s",
                (outcome.new_labels, outcome.replaced, outcome.unchanged, outcome.unknown_ids,
                 row[0]),
            )  # fmt: skip
        return outcome

    def record_failed(
        self, bucket: str, key: str, etag: str, size: int, run_id: str, error: str
    ) -> LabelFileOutcome | None:
        """Record a refused file version with its error (none of its labels is written); None
        when another run has recorded it."""
        with self.conn.transaction():
            row = self.conn.execute(
                "INSERT INTO label_files (bucket, key, etag, size_bytes, run_id, status, error)"
                " VALUES (%s, %s, %s, %s, %s, 'failed', %s)"
                " ON CONFLICT (bucket, key, etag) DO NOTHING RETURNING id",
                (bucket, key, etag, size, run_id, error[:4000]),
            ).fetchone()
        if row is None:
            return None
        return LabelFileOutcome(key=key, etag=etag, status="failed", error=error)

    def files_of_run(self, run_id: str) -> list[LabelFileOutcome]:
        """The label files run ``run_id`` read, by key."""
        rows = self.conn.execute(
            "SELECT key, etag, status, label_rows, new_labels, replaced, unchanged, unknown_ids,"
            " error FROM label_files WHERE run_id = %s ORDER BY key, id",
            (run_id,),
        ).fetchall()
        return [LabelFileOutcome(*row) for row in rows]

    def unknown_ids(self, ids: Iterable[str]) -> int:
        """How many of ``ids`` match no record of a predicted file yet."""
        row = self.conn.execute(_UNKNOWN_IDS, {"ids": list(ids)}).fetchone()
        return int(row[0]) if row else 0
