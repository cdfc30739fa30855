"""Fixtures for the service's tests (the root conftest.py holds the database, AWS and model ones):
files that went through Processing and Inference, waiting for Observe."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
from collections.abc import Callable
from typing import Any

import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from droughtwatch_contract.keys import KeyLayout
from droughtwatch_inference.adapters.ledger import Ledger
from droughtwatch_inference.model.manifest import ModelManifest
from droughtwatch_inference.records import RawObject

LAYOUT = KeyLayout()  # the default prefixes, as service_env leaves them


def _rows_in(body: bytes) -> int:
    """How many predictions a predictions file holds."""
    try:
        return pq.ParquetFile(io.BytesIO(body)).metadata.num_rows
    except pa.ArrowInvalid as exc:
        raise ValueError("not a predictions file: pass images= for it") from exc


@pytest.fixture
def ready_for_observe(service_env: dict[str, str], s3: Any) -> Callable[..., dict[str, Any]]:
    """Puts a predictions file in the data bucket and a ledger row that went through Processing
    and Inference (each stage claiming the file, then completing it) for it, as Observe finds
    them. Call it with the file's name, the predictions file's bytes, the model that made them,
    the batch date and, for a file that is not parquet, how many images it stands for. Returns the
    row's id and the file's raw, predictions and report keys."""
    bucket = service_env["DROUGHTWATCH_DATA_BUCKET"]
    dsn = service_env["DROUGHTWATCH_DATABASE_DSN"]
    claim = {"max_attempts": 3, "lease_seconds": 600}

    def seed(
        name: str,
        body: bytes,
        *,
        manifest: ModelManifest,
        day: dt.date,
        images: int | None = None,
    ) -> dict[str, Any]:
        if images is None:
            images = _rows_in(body)
        raw_key = LAYOUT.raw_key(name, day)
        digest = hashlib.sha256(name.encode()).hexdigest()
        predictions_key = LAYOUT.predictions_key(raw_key, digest)
        s3.put_object(Bucket=bucket, Key=predictions_key, Body=body)
        with psycopg.connect(dsn, autocommit=True) as conn:
            ledger = Ledger(conn)
            ledger.register(bucket, [(RawObject(raw_key, f"etag-{name}", 100), day)], "seed")
            (entry_id,) = conn.execute(
                "SELECT id FROM ledger WHERE raw_key = %s", (raw_key,)
            ).fetchone()
            assert ledger.claim("processing", **claim).id == entry_id
            ledger.complete(
                entry_id,
                "processing",
                source_digest=digest,
                processed_key=LAYOUT.processed_key(raw_key, digest),
                records=images,
                images=images,
                dropped=0,
            )
            assert ledger.claim("inference", **claim).id == entry_id
            ledger.complete(
                entry_id,
                "inference",
                predictions_key=predictions_key,
                predicted_images=images,
                model_name=manifest.name,
                model_version=manifest.version,
            )
        return {
            "id": entry_id,
            "raw_key": raw_key,
            "predictions_key": predictions_key,
            "report_key": LAYOUT.report_key(raw_key, digest),
        }

    return seed
