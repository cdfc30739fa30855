"""What the stage logic needs from the outside, declared once: the object store
(adapters.storage.ObjectStore; MemoryStore in the tests), the ledger (adapters.ledger.Ledger;
MemoryLedger in the tests; Plan's part of it, PlanPort), the daily rows
(adapters.daily_metrics.DailyMetrics; MemoryDaily in the tests), the late labels
(adapters.labels.Labels) and the model Inference runs (adapters.models.LoadedModel; a stub in
the tests). The logic takes these and never imports boto3, psycopg, torch or onnxruntime."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from droughtwatch_inference.metrics_row import DayMetrics, FileMetrics
from droughtwatch_inference.records import (
    Day,
    LabelFileOutcome,
    LateLabel,
    LedgerEntry,
    PendingWork,
    RawObject,
)

if TYPE_CHECKING:  # annotations only: the steps that need no model import no numpy for it
    from droughtwatch_inference.model.manifest import ModelManifest
    from droughtwatch_inference.model.predictor import Predictor


@runtime_checkable
class StorePort(Protocol):
    def list(self, bucket: str, prefix: str) -> Iterable[RawObject]: ...
    def download(self, bucket: str, key: str, dest: Path, etag: str | None = None) -> Path: ...
    def upload(
        self, path: Path, bucket: str, key: str, content_type: str | None = None
    ) -> None: ...
    def get_bytes(self, bucket: str, key: str) -> tuple[bytes, str]: ...


@runtime_checkable
class LedgerPort(Protocol):
    def register(
        self, bucket: str, objects: Iterable[tuple[RawObject, dt.date]], run_id: str
    ) -> int: ...
    def claim(
        self, stage: str, *, max_attempts: int, lease_seconds: int, exclude: Sequence[int] = ()
    ) -> LedgerEntry | None: ...
    def complete(self, entry_id: int, stage: str, **values: Any) -> None: ...
    def fail(self, entry_id: int, stage: str, error: str) -> None: ...
    def send_back(self, entry_id: int, stage: str, to_stage: str, error: str) -> None: ...
    def settle(
        self,
        entry_id: int,
        stage: str,
        status: str,
        note: str,
        *,
        duplicate_of: str | None = None,
        **values: Any,
    ) -> None: ...
    def original_of(self, entry_id: int, source_digest: str) -> str | None: ...
    def release(self, entry_id: int, stage: str) -> None: ...
    def remaining(self, stage: str, *, max_attempts: int, exclude: Sequence[int] = ()) -> int: ...
    def insert_metrics(self, row: FileMetrics) -> bool: ...


@runtime_checkable
class PlanPort(Protocol):
    """What Plan needs of the ledger: registering raw objects, and the files waiting."""

    def register(
        self, bucket: str, objects: Iterable[tuple[RawObject, dt.date]], run_id: str
    ) -> int: ...
    def pending_files(
        self, *, max_attempts: int, retry_failed: bool, limit: int
    ) -> PendingWork: ...


@runtime_checkable
class DailyPort(Protocol):
    """The daily rows: which days are stale, their files, and the day's row."""

    def stale_days(self) -> list[Day]: ...
    def day_files(self, day: Day) -> list[tuple[int, str]]: ...
    def day_labels(self, day: Day) -> list[LateLabel]: ...
    def upsert(self, row: DayMetrics) -> bool: ...


@runtime_checkable
class LabelsPort(Protocol):
    """The once-only record of label files and the labels they bring."""

    def known_files(self, bucket: str) -> set[tuple[str, str]]: ...
    def ingest(
        self, bucket: str, key: str, etag: str, size: int, run_id: str, labels: Mapping[str, str]
    ) -> LabelFileOutcome | None: ...
    def record_failed(
        self, bucket: str, key: str, etag: str, size: int, run_id: str, error: str
    ) -> LabelFileOutcome | None: ...


@runtime_checkable
class LoadedModelPort(Protocol):
    """The model Inference runs: its model.json and its loaded weights."""

    @property
    def manifest(self) -> ModelManifest: ...
    @property
    def predictor(self) -> Predictor: ...
