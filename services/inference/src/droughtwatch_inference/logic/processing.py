"""Processing: turn each claimed raw file into a processed file with the preprocessing package
shared with training. (Plan registers the raw objects: logic.plan.)"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

from droughtwatch_contract.keys import KeyLayout
from droughtwatch_contract.retention import expires_at
from droughtwatch_preprocess import PreprocessError, process_file, why_not_tfrecord

from droughtwatch_inference.errors import InvalidRawFile
from droughtwatch_inference.logic.ports import LedgerPort, StorePort
from droughtwatch_inference.logic.stage import FileResult
from droughtwatch_inference.records import LedgerEntry


def is_job_marker(key: str, size: int) -> bool:
    """An empty marker that Hadoop/Spark-style jobs write beside their part files
    (``_SUCCESS``, Databricks' ``_committed_*``/``_started_*``): not data, and not an error."""
    name = key.rsplit("/", 1)[-1]
    return size == 0 and (name == "_SUCCESS" or name.startswith(("_committed_", "_started_")))


def process_entry(
    entry: LedgerEntry,
    store: StorePort,
    layout: KeyLayout,
    work_dir: Path,
    chunk_size: int,
    digests: LedgerPort,
    retention_days: int | None = None,
) -> FileResult:
    """Process one raw file into its processed file; ``retention_days`` is how long the
    stack's lifecycle rule keeps that file (recorded in the ledger as its expiry)."""
    if is_job_marker(entry.raw_key, entry.size_bytes):
        return FileResult({}, outcome="skipped", note="an empty job marker file, not data")
    if entry.size_bytes == 0:
        raise InvalidRawFile(
            f"{entry.raw_key}: empty file (0 bytes): nothing to process; upload it again with "
            "its content"
        )
    scratch = work_dir / f"processing-{entry.id}"
    scratch.mkdir(parents=True, exist_ok=True)
    try:
        raw = store.download(entry.bucket, entry.raw_key, scratch / "raw.tfrecord", entry.etag)
        reason = why_not_tfrecord(raw)
        if reason is not None:
            return FileResult({}, outcome="skipped", note=f"not a TFRecord file: {reason}")
        out = scratch / "processed.npz"
        try:
            result = process_file(raw, out, chunk_size=chunk_size, source_name=entry.raw_key)
        except PreprocessError as exc:
            raise InvalidRawFile(str(exc)) from exc
        counts = {
            "source_digest": result.source_digest,
            "records": result.records,
            "images": result.kept,
            "dropped": result.dropped_blank,
        }
        original = digests.original_of(entry.id, result.source_digest)
        if original is not None:
            # no image counts: the day's figures count this content once, under the original
            return FileResult(
                {"source_digest": result.source_digest, "records": result.records},
                outcome="duplicate",
                note=f"the same content as {original}, already taken: not predicted again",
                duplicate_of=original,
            )
        key = layout.processed_key(entry.raw_key, result.source_digest)
        store.upload(out, entry.bucket, key, "application/octet-stream")
        expiry = expires_at(dt.datetime.now(dt.UTC), retention_days)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return FileResult(
        ledger_values={**counts, "processed_key": key, "processed_expires_at": expiry},
        images=result.kept,
        dropped=result.dropped_blank,
        extra={
            "records": result.records,
            "processed_key": key,
            "process_seconds": round(result.seconds, 3),
        },
    )
