"""What the stage logic needs from the outside, declared once: the object store
(adapters.storage.ObjectStore; MemoryStore in the tests) and the ledger
(adapters.ledger.Ledger; MemoryLedger in the tests). The logic takes these and never imports
boto3 or psycopg."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from droughtwatch_inference.records import LedgerEntry, RawObject


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
    def insert_metrics(self, row: dict[str, Any]) -> bool: ...
