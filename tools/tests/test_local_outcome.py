"""What a local run tells its user: a file's state in words, its failure and what happens next,
and the exit code, from the ledger's values."""

from __future__ import annotations

import pytest
from droughtwatch_inference.records import FileOutcome
from droughtwatch_tools.errors import ExitCode
from droughtwatch_tools.local.outcome import RunSummary, failure_words, file_line, state_words


def _outcome(**values) -> FileOutcome:
    return FileOutcome(raw_key="raw/2026-11-27/a.tfrecord", etag="e", registered=True, **values)


@pytest.mark.parametrize(
    ("values", "words"),
    [
        ({"stage": "done", "status": "done"}, "done"),
        ({"stage": "inference", "status": "pending"}, "inference: pending"),
        (
            {"stage": "observe", "status": "running", "attempts": 1, "claimed": True},
            "observe: in progress in another run",
        ),
        # a claim whose run was killed (its lock gone, or its lease over): the next run takes it
        ({"stage": "observe", "status": "running", "attempts": 1}, "observe: pending"),
        (
            {"stage": "processing", "status": "failed", "attempts": 1},
            "failed at processing (attempt 1 of 3)",
        ),
        (
            {"stage": "inference", "status": "failed", "attempts": 3},
            "failed at inference, attempts used up (3 of 3)",
        ),
        (
            {"stage": "processing", "status": "skipped", "note": "not a TFRecord file"},
            "skipped: not a TFRecord file",
        ),
        (
            {"stage": "processing", "status": "duplicate", "duplicate_of": "raw/d/b.tfrecord"},
            "duplicate of raw/d/b.tfrecord",
        ),
        (
            {"stage": "inference", "status": "superseded", "note": "replaced by a newer upload"},
            "superseded: replaced by a newer upload",
        ),
    ],
)
def test_state_words(values: dict, words: str) -> None:
    assert state_words(_outcome(**values), max_attempts=3) == words


def test_a_file_the_ledger_does_not_know_is_not_registered() -> None:
    unknown = FileOutcome(raw_key="raw/2026-11-27/a.tfrecord", etag="e")
    assert state_words(unknown, max_attempts=3) == "not registered"


def test_failure_words_say_whether_the_file_is_retried() -> None:
    error = "InvalidRawFile: a.tfrecord record 3: CRC mismatch"
    retried = file_line(
        "a.tfrecord",
        _outcome(stage="processing", status="failed", attempts=1, last_error=error),
        3,
    )
    assert failure_words(retried, 3) == (
        f"a.tfrecord: {error}\n  The next run retries it (2 of its 3 attempts left)."
    )
    used_up = file_line(
        "a.tfrecord",
        _outcome(stage="processing", status="failed", attempts=3, last_error=error),
        3,
    )
    text = failure_words(used_up, 3)
    assert text.startswith(f"a.tfrecord: {error}\n")
    assert "used up its attempts at processing (3 of 3) and is not retried" in text


@pytest.mark.parametrize(
    ("execution", "states", "code"),
    [
        ("SUCCEEDED", ["done", "done"], ExitCode.DONE),
        ("SUCCEEDED", [], ExitCode.DONE),
        # another run is finishing it: not a failure of this one
        ("SUCCEEDED", ["done", "claimed"], ExitCode.DONE),
        ("SUCCEEDED", ["done", "failed"], ExitCode.FILES_FAILED),
        ("SUCCEEDED", ["done", "used up"], ExitCode.FILES_FAILED),
        # ended without products for a recorded reason: neither a failure nor unfinished
        ("SUCCEEDED", ["done", "skipped", "duplicate"], ExitCode.DONE),
        ("FAILED", ["done", "done"], ExitCode.EXECUTION_FAILED),
        ("FAILED", ["failed"], ExitCode.EXECUTION_FAILED),
        ("TIMED_OUT", [], ExitCode.EXECUTION_FAILED),
    ],
)
def test_exit_code(execution: str, states: list[str], code: ExitCode) -> None:
    values = {
        "done": {"stage": "done", "status": "done"},
        "claimed": {"stage": "observe", "status": "running", "claimed": True},
        "failed": {"stage": "inference", "status": "failed", "attempts": 1},
        "used up": {"stage": "inference", "status": "failed", "attempts": 3},
        "skipped": {"stage": "processing", "status": "skipped", "note": "not a TFRecord"},
        "duplicate": {"stage": "processing", "status": "duplicate", "duplicate_of": "raw/x"},
    }
    summary = RunSummary(
        execution, [file_line(f"f{i}", _outcome(**values[s]), 3) for i, s in enumerate(states)]
    )
    assert summary.exit_code() == code
    assert [f.name for f in summary.unfinished] == [
        f"f{i}" for i, s in enumerate(states) if s == "claimed"
    ]
    assert [int(c) for c in ExitCode] == [0, 2, 3, 4]
