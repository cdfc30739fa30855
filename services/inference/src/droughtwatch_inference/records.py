"""Plain values passed between the layers: a raw object, a ledger entry, what each step reports.
(The steps themselves are droughtwatch_contract.stages.)"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class RawObject:
    key: str
    etag: str
    size: int


@dataclass(frozen=True)
class LedgerEntry:
    id: int
    bucket: str
    raw_key: str
    etag: str
    size_bytes: int
    batch_date: dt.date
    stage: str
    status: str
    attempts: int
    source_digest: str | None = None
    processed_key: str | None = None
    predictions_key: str | None = None
    model_name: str | None = None
    model_version: str | None = None
    # when the stack's lifecycle rule deletes the processed file (None: kept)
    processed_expires_at: dt.datetime | None = None


@dataclass(frozen=True)
class Day:
    """One day's files of one model version, the unit of the daily metrics."""

    batch_date: dt.date
    model_name: str
    model_version: str
    last_metrics_id: int  # the newest metrics row of the day when it was found stale


@dataclass(frozen=True)
class LateLabel:
    """A label from a label file (the labels table), matched to a day's images by id."""

    image_id: str
    label: str
    seq: int  # the label's write number (labels_seq): newer labels have larger ones
    received_at: dt.datetime


@dataclass(frozen=True)
class LabelFileOutcome:
    """What became of one label file version: ingested (with its counts), failed (refused with
    its error, nothing loaded; recorded, so not read again), or unreadable (not read this time,
    not recorded: a later run reads it)."""

    key: str
    etag: str
    status: str  # "ingested", "failed" or "unreadable"
    label_rows: int | None = None
    new_labels: int | None = None
    replaced: int | None = None
    unchanged: int | None = None
    unknown_ids: int | None = None
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class StageReport:
    """What a stage did in one invocation; becomes the handler's response body."""

    stage: str
    run_id: str
    files_done: int = 0
    files_failed: int = 0
    images: int = 0
    dropped: int = 0
    remaining: int = 0
    failures: list[dict[str, Any]] = field(default_factory=list)
    # files that ended without products: skipped (not a TFRecord) or duplicate content
    not_taken: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def run_counts(self) -> dict[str, int]:
        """The runs table's counts of this invocation."""
        return {
            "files_done": self.files_done,
            "files_failed": self.files_failed,
            "images": self.images,
            "dropped": self.dropped,
            "remaining": self.remaining,
        }


@dataclass
class PlanReport:
    """What one round of Plan did: the raw objects it registered, and the items it handed to
    the Map, each ``{"ids": [ledger ids], "bytes": raw bytes}``; becomes its response body."""

    stage: str
    run_id: str
    round: int = 1
    registered: int = 0
    files: int = 0  # in this round's items
    bytes: int = 0
    item_count: int = 0
    items: list[dict[str, Any]] = field(default_factory=list)
    left: int = 0  # waiting files left out of this round (its cap), for the next round
    held: int = 0  # files in progress in another run (a live claim): left to it
    failures: list[dict[str, Any]] = field(default_factory=list)
    # the label files this round read (LabelFileOutcome.as_dict each): ingested or failed
    label_files: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def run_counts(self) -> dict[str, int]:
        """In the runs table, Plan's files are those it planned; remaining, those it left."""
        return {"files_done": self.files, "remaining": self.left}


@dataclass
class DayReport:
    """What the day step did: the stale days it pooled, the ones that failed (in
    ``failures``, with their errors), and those still stale after it."""

    stage: str
    run_id: str
    days_done: int = 0
    days_failed: int = 0
    remaining: int = 0
    failures: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def run_counts(self) -> dict[str, int]:
        """In the runs table, the day step's counts are days."""
        return {
            "files_done": self.days_done,
            "files_failed": self.days_failed,
            "remaining": self.remaining,
        }


@dataclass(frozen=True)
class PendingFile:
    """A file waiting for a stage, as Plan splits them: its ledger id and its raw size."""

    id: int
    size_bytes: int


@dataclass(frozen=True)
class PendingWork:
    """The first files waiting for a stage, in claim order; how many wait in all; how many
    other runs hold (in progress there)."""

    files: list[PendingFile]
    total: int
    held: int


@dataclass(frozen=True)
class FileOutcome:
    """Where one raw object version stands in the ledger, with its metrics when observed.
    ``registered`` is False when the ledger has no row for it (the run failed before
    Processing listed it)."""

    raw_key: str
    etag: str
    registered: bool = False
    stage: str | None = None
    status: str | None = None
    attempts: int = 0
    claimed: bool = False  # running, held by a run (its lease not ended, its process alive)
    images: int | None = None
    dropped: int | None = None
    last_error: str | None = None
    note: str | None = None  # why skipped, duplicate or superseded
    duplicate_of: str | None = None
    report_key: str | None = None
    class_shares: dict[str, float] = field(default_factory=dict)
    drift_score: float | None = None
    drift_threshold: float | None = None
    drift_detected: bool | None = None
    # when the stack's lifecycle rule deletes the per-file report (None: kept)
    report_expires_at: dt.datetime | None = None
