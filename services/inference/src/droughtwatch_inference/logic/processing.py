"""Processing: register new raw objects in the ledger, then turn each claimed raw file into a
processed file with the preprocessing package shared with training."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

from droughtwatch_contract.keys import KeyLayout
from droughtwatch_preprocess import PreprocessError, process_file

from droughtwatch_inference.errors import InvalidRawFile
from droughtwatch_inference.logic.ports import LedgerPort, StorePort
from droughtwatch_inference.logic.stage import FileResult
from droughtwatch_inference.records import LedgerEntry, RawObject


def discover(
    store: StorePort,
    ledger: LedgerPort,
    bucket: str,
    layout: KeyLayout,
    run_id: str,
    today: dt.date,
) -> int:
    """Register every raw object version not yet in the ledger; returns how many were new."""
    found: list[tuple[RawObject, dt.date]] = [
        (obj, layout.batch_date(obj.key) or today)
        for obj in store.list(bucket, layout.raw)
        if layout.is_raw_data(obj.key)
    ]
    return ledger.register(bucket, found, run_id)


def process_entry(
    entry: LedgerEntry,
    store: StorePort,
    layout: KeyLayout,
    work_dir: Path,
    chunk_size: int,
) -> FileResult:
    scratch = work_dir / f"processing-{entry.id}"
    scratch.mkdir(parents=True, exist_ok=True)
    try:
        raw = store.download(entry.bucket, entry.raw_key, scratch / "raw.tfrecord", entry.etag)
        out = scratch / "processed.npz"
        try:
            result = process_file(raw, out, chunk_size=chunk_size, source_name=entry.raw_key)
        except PreprocessError as exc:
            raise InvalidRawFile(str(exc)) from exc
        key = layout.processed_key(entry.raw_key, result.source_digest)
        store.upload(out, entry.bucket, key, "application/octet-stream")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return FileResult(
        ledger_values={
            "source_digest": result.source_digest,
            "processed_key": key,
            "records": result.records,
            "images": result.kept,
            "dropped": result.dropped_blank,
        },
        images=result.kept,
        dropped=result.dropped_blank,
        extra={
            "records": result.records,
            "processed_key": key,
            "process_seconds": round(result.seconds, 3),
        },
    )
