"""run_stage, the loop every stage shares: it claims each file once, records a file's own error
on that file and goes on, gives a file back untouched and stops on a stage error, respects the
attempt limit, stops claiming when the time budget runs short, and settles a file that ends
without products.

Every test runs twice: against MemoryLedger (the ledger port over a dict, which also makes the
loop's own behaviour easy to read) and against the real Ledger on PostgreSQL, whose SQL holds
the claim rules; both must behave alike."""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence
from types import SimpleNamespace
from typing import Any

import psycopg
import pytest
from droughtwatch_contract.stages import DONE, STAGES, StageRegistry
from droughtwatch_inference.adapters.ledger import Ledger
from droughtwatch_inference.errors import (
    InvalidRawFile,
    ModelNotFound,
    ObjectForbidden,
    ObjectMissing,
    ProductExpired,
    StorageError,
)
from droughtwatch_inference.logic import stage as stage_module
from droughtwatch_inference.logic.ports import LedgerPort
from droughtwatch_inference.logic.stage import Budget, FileResult, run_stage
from droughtwatch_inference.records import LedgerEntry, RawObject, StageReport

DAY = dt.date(2026, 11, 27)
NO_DEADLINE = Budget(lambda: 1e9, margin_seconds=60)


class MemoryLedger:
    """The ledger port over a dict: the claim rules of adapters.ledger's SQL (pending, a failed
    file under the attempt limit, a running file whose lease expired), oldest batch first."""

    def __init__(self, stages: StageRegistry = STAGES) -> None:
        self.stages = stages
        self.rows: dict[int, LedgerEntry] = {}
        self.leases: dict[int, dt.datetime] = {}
        self.errors: dict[int, str] = {}
        self.notes: dict[int, tuple[str, str | None]] = {}
        self.metrics: dict[str, dict[str, Any]] = {}
        self._ids = itertools.count(1)

    def register(
        self, bucket: str, objects: Iterable[tuple[RawObject, dt.date]], run_id: str
    ) -> int:
        known = {(r.bucket, r.raw_key, r.etag) for r in self.rows.values()}
        new = 0
        for obj, batch_date in objects:
            if (bucket, obj.key, obj.etag) not in known:
                entry_id = next(self._ids)
                self.rows[entry_id] = LedgerEntry(
                    entry_id, bucket, obj.key, obj.etag, obj.size, batch_date,
                    self.stages.names[0], "pending", 0,
                )  # fmt: skip
                new += 1
        return new

    def _claimable(self, stage: str, max_attempts: int, exclude: Sequence[int]) -> list[int]:
        now = dt.datetime.now(dt.UTC)
        return sorted(
            (
                r.id
                for r in self.rows.values()
                if r.stage == stage
                and r.id not in exclude
                and (
                    r.status == "pending"
                    or (r.status == "running" and self.leases[r.id] < now)
                    or (r.status == "failed" and r.attempts < max_attempts)
                )
            ),
            key=lambda i: (self.rows[i].batch_date, i),
        )

    def claim(
        self, stage: str, *, max_attempts: int, lease_seconds: int, exclude: Sequence[int] = ()
    ) -> LedgerEntry | None:
        claimable = self._claimable(stage, max_attempts, exclude)
        if not claimable:
            return None
        row = self.rows[claimable[0]]
        self.rows[row.id] = row = dataclasses.replace(
            row, status="running", attempts=row.attempts + 1
        )
        self.leases[row.id] = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=lease_seconds)
        return row

    def remaining(self, stage: str, *, max_attempts: int, exclude: Sequence[int] = ()) -> int:
        return len(self._claimable(stage, max_attempts, exclude))

    def _check_columns(self, stage: str, values: dict[str, Any]) -> None:
        unknown = set(values) - self.stages[stage].ledger_columns
        if unknown:
            raise ValueError(f"unknown ledger columns for {stage}: {sorted(unknown)}")

    def _claimed(self, entry_id: int, stage: str) -> bool:
        row = self.rows[entry_id]
        return row.stage == stage and row.status == "running"

    def complete(self, entry_id: int, stage: str, **values: Any) -> None:
        self._check_columns(stage, values)
        if not self._claimed(entry_id, stage):
            return
        after = self.stages.next_name(stage)
        self.rows[entry_id] = dataclasses.replace(
            self.rows[entry_id],
            stage=after,
            status="done" if after == DONE else "pending",
            attempts=0,
            **{k: v for k, v in values.items() if hasattr(self.rows[entry_id], k)},
        )
        self.errors.pop(entry_id, None)

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
        if status not in {"skipped", "duplicate"}:
            raise ValueError(f"not a settled status: {status!r}")
        self._check_columns(stage, values)
        if self._claimed(entry_id, stage):
            self.rows[entry_id] = dataclasses.replace(self.rows[entry_id], status=status)
            self.notes[entry_id] = (note, duplicate_of)

    def original_of(self, entry_id: int, source_digest: str) -> str | None:
        for row in sorted(self.rows.values(), key=lambda r: r.id):
            if (
                row.id != entry_id
                and row.source_digest == source_digest
                and row.status not in {"superseded", "duplicate", "skipped"}
            ):
                return row.raw_key
        self.rows[entry_id] = dataclasses.replace(self.rows[entry_id], source_digest=source_digest)
        return None

    def fail(self, entry_id: int, stage: str, error: str) -> None:
        if self._claimed(entry_id, stage):
            self.rows[entry_id] = dataclasses.replace(self.rows[entry_id], status="failed")
            self.errors[entry_id] = error

    def send_back(self, entry_id: int, stage: str, to_stage: str, error: str) -> None:
        if self._claimed(entry_id, stage):
            self.rows[entry_id] = dataclasses.replace(
                self.rows[entry_id], stage=to_stage, status="pending", attempts=0
            )
            self.errors[entry_id] = error

    def release(self, entry_id: int, stage: str) -> None:
        row = self.rows[entry_id]
        if row.status == "running":
            self.rows[entry_id] = dataclasses.replace(
                row,
                status="failed" if row.attempts > 1 else "pending",
                attempts=max(row.attempts - 1, 0),
            )

    def insert_metrics(self, row: dict[str, Any]) -> bool:
        if row["predictions_key"] in self.metrics:
            return False
        self.metrics[row["predictions_key"]] = row
        return True


@pytest.fixture(params=["memory", "postgres"])
def ledger(request: pytest.FixtureRequest) -> Iterator[LedgerPort]:
    if request.param == "memory":
        yield MemoryLedger()
        return
    with psycopg.connect(request.getfixturevalue("database_dsn"), autocommit=True) as conn:
        yield Ledger(conn)


def register(ledger: LedgerPort, *days: int) -> list[str]:
    """One raw file per day offset (batch dates DAY + offset), in that order; their keys."""
    objects = [
        (RawObject(f"raw/file-{n}", f"etag-{n}", 10), DAY + dt.timedelta(days=offset))
        for n, offset in enumerate(days)
    ]
    assert ledger.register("data", objects, "run-0") == len(objects)
    return [obj.key for obj, _ in objects]


def processed(entry: LedgerEntry) -> FileResult:
    return FileResult({"processed_key": f"processed/{entry.raw_key}"}, images=10, dropped=1)


def run(ledger: LedgerPort, work: Callable[[LedgerEntry], FileResult], **limits: Any):
    budget = limits.pop("budget", NO_DEADLINE)
    return run_stage(
        "processing", "run-1", ledger, work, budget, max_attempts=3, lease_seconds=60, **limits
    )


def test_the_test_double_and_the_adapter_implement_the_ledger_port() -> None:
    assert isinstance(MemoryLedger(), LedgerPort)
    assert isinstance(Ledger(None), LedgerPort)  # type: ignore[arg-type]


def test_each_claimable_file_is_worked_once_oldest_batch_first(ledger: LedgerPort) -> None:
    keys = register(ledger, 2, 0, 1)
    seen: list[str] = []
    report = run(ledger, lambda e: (seen.append(e.raw_key), processed(e))[1])
    assert seen == [keys[1], keys[2], keys[0]]
    assert (report.files_done, report.images, report.dropped) == (3, 30, 3)
    assert (report.files_failed, report.remaining) == (0, 0)
    # Each went on to the next stage; a second run has nothing to do.
    assert ledger.remaining("inference", max_attempts=3) == 3
    again = run(ledger, processed)
    assert (again.files_done, again.files_failed, again.remaining) == (0, 0, 0)


@pytest.mark.parametrize(
    "error",
    [
        InvalidRawFile("record 3 is truncated"),
        ObjectMissing("gone"),
        ObjectForbidden("access denied reading s3://b/k (AccessDenied)"),
        ValueError("bad value"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_a_file_error_is_recorded_on_that_file_and_the_batch_goes_on(
    ledger: LedgerPort, error: Exception
) -> None:
    keys = register(ledger, 0, 0, 0)

    def work(entry: LedgerEntry) -> FileResult:
        if entry.raw_key == keys[1]:
            raise error
        return processed(entry)

    report = run(ledger, work)
    assert (report.files_done, report.files_failed) == (2, 1)
    (failure,) = report.failures
    assert failure["key"] == keys[1]
    assert failure["error"].startswith(f"{type(error).__name__}: {error}")
    # Tried once in this run (not again after failing), and claimable by the next run.
    assert report.remaining == 0
    assert ledger.remaining("processing", max_attempts=3) == 1


def test_a_file_whose_input_expired_goes_back_to_the_stage_that_makes_it(
    ledger: LedgerPort,
) -> None:
    """Its processed file expired before Inference took it: failed in this run with the
    reason, then pending at Processing with fresh attempts, which takes it at the next run."""
    (key,) = register(ledger, 0)
    run(ledger, processed)

    def expired(entry: LedgerEntry) -> FileResult:
        raise ProductExpired(f"processed/{entry.raw_key} expired on 2026-12-01", "processing")

    report = run_stage(
        "inference", "run-2", ledger, expired, NO_DEADLINE, max_attempts=3, lease_seconds=60
    )
    assert (report.files_done, report.files_failed) == (0, 1)
    assert report.failures[0]["error"].startswith("ProductExpired: processed/raw/file-0 expired")
    assert ledger.remaining("inference", max_attempts=3) == 0
    again = run(ledger, processed)
    assert (again.files_done, again.files_failed) == (1, 0)
    assert ledger.remaining("inference", max_attempts=3) == 1
    assert key == "raw/file-0"


def test_a_failing_file_is_retried_up_to_the_attempt_limit_then_left(ledger: LedgerPort) -> None:
    register(ledger, 0)
    attempts = []

    def work(entry: LedgerEntry) -> FileResult:
        attempts.append(entry.attempts)
        raise InvalidRawFile("corrupt")

    reports = [run(ledger, work) for _ in range(4)]
    assert attempts == [1, 2, 3]
    assert [r.files_failed for r in reports] == [1, 1, 1, 0]
    assert ledger.remaining("processing", max_attempts=3) == 0
    # A higher limit makes it claimable again: the file is left failed, not lost.
    assert ledger.remaining("processing", max_attempts=4) == 1


@pytest.mark.parametrize(
    "error",
    [ModelNotFound("no model.json"), StorageError("bucket 'x' does not exist")],
    ids=lambda e: type(e).__name__,
)
def test_a_stage_error_gives_the_file_back_untouched_and_stops_the_stage(
    ledger: LedgerPort, error: Exception
) -> None:
    register(ledger, 0, 0)
    calls = []

    def work(entry: LedgerEntry) -> FileResult:
        calls.append(entry.raw_key)
        raise error

    with pytest.raises(type(error)):
        run(ledger, work)
    assert len(calls) == 1  # the second file was never claimed
    # Both files are as before the run: pending, no attempt counted.
    claimed = ledger.claim("processing", max_attempts=1, lease_seconds=60)
    assert claimed is not None and claimed.attempts == 1
    assert ledger.remaining("processing", max_attempts=1, exclude=[claimed.id]) == 1


def test_claiming_stops_when_the_next_file_might_not_finish_in_time(
    ledger: LedgerPort, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With 100 s left, a 60 s margin and files of 15 s each: the first file is claimed (100 >=
    60), the second too (85 >= 60 + 1.5 x 15), the third not (70 < 82.5)."""
    register(ledger, 0, 0, 0, 0, 0)
    clock = SimpleNamespace(now=0.0)
    monkeypatch.setattr(stage_module, "time", SimpleNamespace(monotonic=lambda: clock.now))

    def work(entry: LedgerEntry) -> FileResult:
        clock.now += 15.0
        return processed(entry)

    budget = Budget(lambda: 100.0 - clock.now, margin_seconds=60)
    report = run(ledger, work, budget=budget)
    assert (report.files_done, report.remaining) == (2, 3)
    assert ledger.remaining("inference", max_attempts=3) == 2


def test_at_most_max_files_are_tried_per_run(ledger: LedgerPort) -> None:
    register(ledger, 0, 0, 0)
    report = run(ledger, processed, budget=Budget(lambda: 1e9, 60, max_files=2))
    assert (report.files_done, report.remaining) == (2, 1)


def test_an_interrupt_gives_the_file_back_and_propagates(ledger: LedgerPort) -> None:
    register(ledger, 0)

    def work(entry: LedgerEntry) -> FileResult:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(ledger, work)
    entry = ledger.claim("processing", max_attempts=1, lease_seconds=60)
    assert entry is not None and entry.attempts == 1


def test_the_counts_add_to_the_report_given(ledger: LedgerPort) -> None:
    register(ledger, 0)
    report = StageReport(stage="processing", run_id="run-1", files_failed=1)
    assert run(ledger, processed, report=report) is report
    assert (report.files_failed, report.files_done, report.images) == (1, 1, 10)


def test_a_file_without_products_is_settled_and_reported_not_taken(ledger: LedgerPort) -> None:
    keys = register(ledger, 0, 0)

    def work(entry: LedgerEntry) -> FileResult:
        if entry.raw_key == keys[0]:
            return FileResult({}, outcome="skipped", note="not a TFRecord")
        return processed(entry)

    report = run(ledger, work)
    assert report.not_taken == [{"key": keys[0], "status": "skipped", "reason": "not a TFRecord"}]
    assert (report.files_done, report.files_failed, report.remaining) == (1, 0, 0)
    # Ended: neither claimable again in this stage nor passed on.
    assert ledger.remaining("processing", max_attempts=10) == 0
    assert ledger.remaining("inference", max_attempts=3) == 1
