"""The loop every stage shares: claim a file from the ledger, do the stage's work on it, record
the outcome; a file's own error is recorded on that file and the batch goes on; stop claiming
when the Lambda's remaining time gets short and report what remains for the next run."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from droughtwatch_inference import logs
from droughtwatch_inference.errors import (
    ConfigurationError,
    DatabaseUnavailable,
    DroughtwatchError,
    InvalidModel,
    ModelNotFound,
    ObjectForbidden,
    ObjectMissing,
    ProductExpired,
    SecretUnavailable,
    StorageError,
)
from droughtwatch_inference.logic.ports import LedgerPort
from droughtwatch_inference.records import LedgerEntry, StageReport

# Errors that mean the stage as a whole cannot work: the claimed file is given back untouched
# and the stage fails (the state machine's Choice goes to the Fail state).
STAGE_ERRORS: tuple[type[Exception], ...] = (
    ConfigurationError,
    DatabaseUnavailable,
    SecretUnavailable,
    ModelNotFound,
    InvalidModel,
)


@dataclass
class FileResult:
    """A stage's work on one file: the ledger columns to record, and counts for the report.

    ``outcome`` is ``done`` (the file moves on), or ``skipped``/``duplicate`` (the file ends
    here without products, for the reason in ``note``; a duplicate names the raw key that
    holds its content in ``duplicate_of``)."""

    ledger_values: dict[str, Any]
    images: int = 0
    dropped: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    outcome: str = "done"
    note: str | None = None
    duplicate_of: str | None = None


@dataclass(frozen=True)
class Budget:
    """Time left in this invocation (Lambda's context, or a deadline locally)."""

    remaining_seconds: Callable[[], float]
    margin_seconds: float
    max_files: int = 1_000_000


def is_stage_error(exc: Exception) -> bool:
    """Whether ``exc`` stops the stage as a whole (else it is one file's, or one day's)."""
    if isinstance(exc, STAGE_ERRORS):
        return True
    # A missing or unreadable object is that file's problem; any other storage error (no
    # bucket, no listing, no writing) will hit every file, so it stops the stage.
    return isinstance(exc, StorageError) and not isinstance(exc, ObjectMissing | ObjectForbidden)


def describe(exc: BaseException) -> str:
    if isinstance(exc, DroughtwatchError):
        return f"{exc.code}: {exc.describe()}"
    return f"{type(exc).__name__}: {exc}"


def run_stage(
    stage: str,
    run_id: str,
    ledger: LedgerPort,
    work: Callable[[LedgerEntry], FileResult],
    budget: Budget,
    *,
    max_attempts: int,
    lease_seconds: int,
    report: StageReport | None = None,
) -> StageReport:
    report = report or StageReport(stage=stage, run_id=run_id)
    tried: list[int] = []
    slowest = 0.0
    while len(tried) < budget.max_files:
        # Stop claiming when the next file might not finish in time (the slowest so far, with
        # room to spare): what is left is reported and the next run picks it up.
        if budget.remaining_seconds() < budget.margin_seconds + 1.5 * slowest:
            logs.event("stage.time_budget_reached", stage=stage, run_id=run_id)
            break
        entry = ledger.claim(
            stage, max_attempts=max_attempts, lease_seconds=lease_seconds, exclude=tried
        )
        if entry is None:
            break
        tried.append(entry.id)
        started = time.monotonic()
        try:
            result = work(entry)
        except KeyboardInterrupt:
            ledger.release(entry.id, stage)
            raise
        except Exception as exc:
            if is_stage_error(exc):
                ledger.release(entry.id, stage)
                raise
            message = describe(exc)
            if isinstance(exc, ProductExpired):
                # counted as failed in this run; the file is not stuck: the stage that makes
                # the product takes it again at the next run
                ledger.send_back(entry.id, stage, exc.back_to, message)
            else:
                ledger.fail(entry.id, stage, message)
            report.files_failed += 1
            report.failures.append({"key": entry.raw_key, "error": message})
            logs.event(
                "file.failed",
                logging.WARNING,
                stage=stage,
                run_id=run_id,
                key=entry.raw_key,
                attempt=entry.attempts,
                error=message,
            )
            continue
        if result.outcome != "done":
            ledger.settle(
                entry.id,
                stage,
                result.outcome,
                result.note or result.outcome,
                duplicate_of=result.duplicate_of,
                **result.ledger_values,
            )
            report.not_taken.append(
                {"key": entry.raw_key, "status": result.outcome, "reason": result.note}
            )
            logs.event(
                f"file.{result.outcome}",
                stage=stage,
                run_id=run_id,
                key=entry.raw_key,
                reason=result.note,
            )
            continue
        ledger.complete(entry.id, stage, **result.ledger_values)
        seconds = time.monotonic() - started
        slowest = max(slowest, seconds)
        report.files_done += 1
        report.images += result.images
        report.dropped += result.dropped
        logs.event(
            "file.done",
            stage=stage,
            run_id=run_id,
            key=entry.raw_key,
            images=result.images,
            dropped=result.dropped,
            seconds=round(seconds, 3),
            **result.extra,
        )
    report.remaining = ledger.remaining(stage, max_attempts=max_attempts, exclude=tried)
    return report
