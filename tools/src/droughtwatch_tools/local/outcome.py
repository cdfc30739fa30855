"""What a local run tells its user: each of its files' state in words (from the ledger), the
failed files with their errors, the label files it read and the days it recomputed, and the
exit code that cron and CI read."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, fields
from pathlib import Path

from droughtwatch_contract.retention import is_expired
from droughtwatch_contract.stages import DONE, DUPLICATE, FAILED, SUPERSEDED
from droughtwatch_inference.adapters.ledger import SETTLED
from droughtwatch_inference.records import FileOutcome, LabelFileOutcome

from droughtwatch_tools.errors import ExitCode

# Where a file's way ends without products: settled by a stage (skipped, a duplicate), or
# superseded by a newer version of its key (see migration 0002).
NO_PRODUCTS = SETTLED | {SUPERSEDED}


@dataclass(frozen=True)
class FileLine:
    """One of the run's files as the table shows it."""

    name: str
    outcome: FileOutcome
    state: str
    report_path: Path | None = None
    # when the report expired (the ledger's record) and it is gone: shown as expired
    report_expired: dt.datetime | None = None

    @property
    def done(self) -> bool:
        return self.outcome.stage == DONE

    @property
    def failed(self) -> bool:
        return self.outcome.status == FAILED

    @property
    def settled(self) -> bool:
        """Ended without products, for a reason the ledger notes."""
        return self.outcome.status in NO_PRODUCTS


def file_line(
    name: str, outcome: FileOutcome, max_attempts: int, report_path: Path | None = None
) -> FileLine:
    """The file's line; a report that the ledger says has expired and that is gone is shown as
    expired, not as a path to nothing."""
    expired = None
    now = dt.datetime.now(dt.UTC)
    gone = report_path is not None and not report_path.exists()
    if gone and is_expired(outcome.report_expires_at, now):
        report_path, expired = None, outcome.report_expires_at
    return FileLine(name, outcome, state_words(outcome, max_attempts), report_path, expired)


def used_up(outcome: FileOutcome, max_attempts: int) -> bool:
    """A failed file that no run claims again (the ledger's claim needs attempts < max)."""
    return outcome.status == FAILED and outcome.attempts >= max_attempts


def state_words(outcome: FileOutcome, max_attempts: int) -> str:
    if not outcome.registered:
        return "not registered"
    stage = outcome.stage
    if stage == DONE:
        return DONE
    if outcome.status == DUPLICATE:
        return f"duplicate of {outcome.duplicate_of}"
    if outcome.status in NO_PRODUCTS:
        return f"{outcome.status}: {outcome.note}" if outcome.note else str(outcome.status)
    if outcome.status == FAILED:
        if used_up(outcome, max_attempts):
            return f"failed at {stage}, attempts used up ({outcome.attempts} of {max_attempts})"
        return f"failed at {stage} (attempt {outcome.attempts} of {max_attempts})"
    if outcome.claimed:
        return f"{stage}: in progress in another run"
    return f"{stage}: pending"


def failure_words(line: FileLine, max_attempts: int) -> str:
    """A failed file's error from the ledger and what happens to it next."""
    error = line.outcome.last_error or "(no error recorded)"
    if used_up(line.outcome, max_attempts):
        return (
            f"{line.name}: {error}\n  It has used up its attempts at {line.outcome.stage} "
            f"({line.outcome.attempts} of {max_attempts}) and is not retried: fix the file and "
            "copy it in again (new content is a new version)."
        )
    left = max_attempts - line.outcome.attempts
    return (
        f"{line.name}: {error}\n  The next run retries it "
        f"({left} of its {max_attempts} attempts left)."
    )


@dataclass(frozen=True)
class DayLine:
    """A day the run recomputed, as its daily row says (each field named as its daily_metrics
    column, metrics_row.DayMetrics): what the dashboard charts for it."""

    batch_date: dt.date
    model_name: str
    model_version: str
    images: int
    min_images: int
    labelled_images: int | None
    accuracy: float | None
    accuracy_alert: bool | None
    late_labels: int
    labels_received_at: dt.datetime | None
    notes: list[str] = field(default_factory=list)

    @property
    def labelled_share(self) -> float | None:
        """Labelled images / predicted images."""
        return (self.labelled_images or 0) / self.images if self.images else None

    @property
    def label_lag_days(self) -> int | None:
        """Days from the images' date to the arrival of the newest late label used."""
        if self.labels_received_at is None:
            return None
        return (self.labels_received_at.astimezone(dt.UTC).date() - self.batch_date).days


# The daily row's columns a DayLine reads.
DAY_COLUMNS = tuple(f.name for f in fields(DayLine))


@dataclass
class RunSummary:
    """The run's execution status, its files, the label files it read and the days it
    recomputed, for the tables and the exit code."""

    execution_status: str
    files: list[FileLine] = field(default_factory=list)
    max_attempts: int = 3
    label_files: list[LabelFileOutcome] = field(default_factory=list)
    days: list[DayLine] = field(default_factory=list)

    @property
    def failed(self) -> list[FileLine]:
        return [f for f in self.files if f.failed]

    @property
    def failed_label_files(self) -> list[LabelFileOutcome]:
        return [f for f in self.label_files if f.status == "failed"]

    @property
    def unfinished(self) -> list[FileLine]:
        """Neither done, failed nor settled: pending for a later run, or in another run's
        hands."""
        return [f for f in self.files if not (f.done or f.failed or f.settled)]

    def exit_code(self) -> ExitCode:
        if self.execution_status != "SUCCEEDED":
            return ExitCode.EXECUTION_FAILED
        if self.failed or self.failed_label_files:
            return ExitCode.FILES_FAILED
        return ExitCode.DONE
