"""The one model of an execution and its history: read from Step Functions page after page (a
recorded page shape, and moto's interpreter), the failed Task state, the one-line error, and the
history file that `droughtwatch local history` prints."""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from droughtwatch_tools.cli import app
from droughtwatch_tools.execution import (
    DETAIL_CHARS,
    Execution,
    ExecutionEvent,
    execution_name,
    read_execution,
    read_history,
)
from typer.testing import CliRunner

REGION = "eu-west-1"
ARN = "arn:aws:states:eu-west-1:123456789012:execution:droughtwatch-dev-pipeline:cli-1"
T0 = dt.datetime(2026, 11, 27, 6, 0, tzinfo=dt.UTC)
CAUSE = "ModelNotFound: no model.json under models/"


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


# Pages as boto3 returns them from get_execution_history: each event's details sit under
# "<type>EventDetails", outputs and inputs are JSON text.
PAGES: list[dict[str, Any]] = [
    {
        "events": [
            {"id": 1, "type": "ExecutionStarted", "timestamp": at(0),
             "executionStartedEventDetails": {"input": '{"trigger": "cli"}'}},
            {"id": 2, "type": "TaskStateEntered", "timestamp": at(1),
             "stateEnteredEventDetails": {"name": "Processing", "input": "{}"}},
            {"id": 3, "type": "TaskStateExited", "timestamp": at(5),
             "stateExitedEventDetails": {"name": "Processing",
                                         "output": '{"body": {"processing": {"images": 240}}}'}},
        ],
        "nextToken": "page-2",
    },
    {
        "events": [
            {"id": 4, "type": "TaskStateEntered", "timestamp": at(6),
             "stateEnteredEventDetails": {"name": "Inference", "input": "{}"}},
            {"id": 5, "type": "TaskFailed", "timestamp": at(9),
             "taskFailedEventDetails": {"error": "ModelNotFound", "cause": CAUSE}},
            {"id": 6, "type": "ChoiceStateEntered", "timestamp": at(9),
             "stateEnteredEventDetails": {"name": "Inference succeeded?", "input": "{}"}},
            {"id": 7, "type": "FailStateEntered", "timestamp": at(9),
             "stateEnteredEventDetails": {"name": "Inference failed", "input": "{}"}},
            {"id": 8, "type": "ExecutionFailed", "timestamp": at(10),
             "executionFailedEventDetails": {"error": "ModelNotFound", "cause": CAUSE}},
        ],
    },
]  # fmt: skip


class RecordedStepFunctions:
    """A Step Functions client that answers with the recorded pages and notes each call."""

    def __init__(self, described: dict[str, Any]) -> None:
        self.described = described
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def describe_execution(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(("describe_execution", kwargs))
        return self.described

    def get_execution_history(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(("get_execution_history", kwargs))
        return PAGES[1] if kwargs.get("nextToken") == "page-2" else PAGES[0]


FAILED = {
    "executionArn": ARN,
    "name": "cli-1",
    "status": "FAILED",
    "startDate": at(0),
    "stopDate": at(10),
    "error": "ModelNotFound",
    "cause": CAUSE,
}


def test_the_history_is_read_page_after_page_in_order() -> None:
    sfn = RecordedStepFunctions(FAILED)
    events = read_history(sfn, ARN)
    assert [e.id for e in events] == [1, 2, 3, 4, 5, 6, 7, 8]
    assert [kwargs.get("nextToken") for _, kwargs in sfn.calls] == [None, "page-2"]
    assert all(kwargs["executionArn"] == ARN for _, kwargs in sfn.calls)
    exited = events[2]
    assert (exited.state, exited.output) == (
        "Processing",
        {"body": {"processing": {"images": 240}}},
    )
    failed = events[4]
    assert (failed.state, failed.error, failed.cause) == (None, "ModelNotFound", CAUSE)
    assert failed.detail == f"error=ModelNotFound; cause={CAUSE}"


def test_an_execution_is_described_before_its_history_is_read() -> None:
    sfn = RecordedStepFunctions(FAILED)
    execution = read_execution(sfn, ARN)
    # a terminal status read first means the history after it is whole
    assert [name for name, _ in sfn.calls] == [
        "describe_execution",
        "get_execution_history",
        "get_execution_history",
    ]
    assert (execution.name, execution.arn, execution.status) == ("cli-1", ARN, "FAILED")
    assert not execution.succeeded
    assert execution.seconds == 10.0
    assert len(execution.events) == 8
    assert execution.states_entered() == [
        "Processing",
        "Inference",
        "Inference succeeded?",
        "Inference failed",
    ]


def test_the_failed_state_is_the_last_task_entered_not_the_states_that_route_it() -> None:
    execution = read_execution(RecordedStepFunctions(FAILED), ARN)
    assert execution.failed_state == "Inference"
    # without a Task state, the last state entered
    routing = [e for e in execution.events if e.type in ("ChoiceStateEntered", "FailStateEntered")]
    assert Execution("x", "FAILED", events=routing).failed_state == "Inference failed"
    assert Execution("x", "FAILED").failed_state is None
    succeeded = Execution("x", "SUCCEEDED", events=execution.events)
    assert succeeded.failed_state is None


def test_a_succeeded_execution_parses_its_output() -> None:
    described = {
        **FAILED,
        "status": "SUCCEEDED",
        "error": None,
        "cause": None,
        "output": '{"statusCode": 200, "body": {"observe": {"files_done": 1}}}',
    }
    execution = read_execution(RecordedStepFunctions(described), ARN)
    assert execution.succeeded
    assert execution.output == {"statusCode": 200, "body": {"observe": {"files_done": 1}}}


@pytest.mark.parametrize(
    ("error", "cause", "line"),
    [
        # the handlers' causes start with the error code: it is not repeated
        ("InvalidModel", "InvalidModel: channels differ", "InvalidModel: channels differ"),
        ("States.Timeout", "Lambda timed out", "States.Timeout: Lambda timed out"),
        ("States.Runtime", None, "States.Runtime"),
        (None, "the stage crashed", "the stage crashed"),
        (None, None, "the execution failed"),
    ],
)
def test_the_error_line_names_the_error_once(
    error: str | None, cause: str | None, line: str
) -> None:
    assert Execution("x", "FAILED", error=error, cause=cause).error_line == line


def test_an_event_detail_cuts_each_long_value() -> None:
    long = "x" * (DETAIL_CHARS + 50)
    raw = {
        "id": 3,
        "type": "TaskFailed",
        "timestamp": T0,
        "taskFailedEventDetails": {"error": "E", "cause": long, "output": ""},
    }
    event = ExecutionEvent.from_api(raw)
    assert event.detail == f"error=E; cause={'x' * DETAIL_CHARS}…"
    assert event.failed and event.cause == long
    assert not ExecutionEvent(4, "TaskStateEntered", T0, "Inference").failed


def test_the_history_file_reads_back_as_written() -> None:
    execution = read_execution(RecordedStepFunctions(FAILED), ARN)
    again = Execution.from_dict(json.loads(json.dumps(execution.as_dict())))
    # the events' outputs live in their detail only; the rest comes back as it was
    assert again == Execution(
        **{
            **vars(execution),
            "events": [ExecutionEvent(**{**vars(e), "output": None}) for e in execution.events],
        }
    )


def test_a_history_file_written_before_events_had_ids_still_reads() -> None:
    raw = {
        "name": "demo-2026-11-27",
        "status": "SUCCEEDED",
        "error": None,
        "cause": None,
        "output": {"body": {}},
        "seconds": 1.25,
        "events": [
            {"timestamp": at(0).isoformat(), "type": "ExecutionStarted", "state": None,
             "detail": "input={}"},
            {"timestamp": at(1).isoformat(), "type": "PassStateEntered", "state": "Done",
             "detail": ""},
        ],
    }  # fmt: skip
    execution = Execution.from_dict(raw)
    assert execution.arn is None and execution.seconds == 1.25
    assert [(e.id, e.type, e.state, e.detail) for e in execution.events] == [
        (1, "ExecutionStarted", None, "input={}"),
        (2, "PassStateEntered", "Done", ""),
    ]


def test_local_history_prints_the_events_and_the_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    execution = read_execution(RecordedStepFunctions(FAILED), ARN)
    path = tmp_path / "cli-1.json"
    path.write_text(json.dumps(execution.as_dict()))
    result = CliRunner().invoke(app, ["local", "history", str(path)])
    assert result.exit_code == 0, result.output
    assert "execution cli-1: FAILED" in result.output
    (failed,) = [line for line in result.output.splitlines() if " TaskFailed " in line]
    assert "error=ModelNotFound; cause=ModelNotFound: no model.json" in failed
    (entered,) = [line for line in result.output.splitlines() if " Inference succeeded? " in line]
    assert "input=" not in entered  # only the failures show their detail


def test_local_history_of_another_file_is_a_user_error(tmp_path: Path) -> None:
    path = tmp_path / "notes.json"
    path.write_text('{"hello": "world"}')
    result = CliRunner().invoke(app, ["local", "history", str(path)])
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"error: cannot read {path}: 'name'",
        "next: pass a file from <out>/executions/",
    ]


# -- the same reading against moto's Step Functions interpreter ---------------------------------


@pytest.fixture
def sfn(aws_env: None) -> Iterator[Any]:
    import boto3
    from moto import mock_aws

    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        yield boto3.client("stepfunctions", region_name=REGION)


def _run(sfn: Any, states: dict[str, Any], start: str) -> str:
    machine = sfn.create_state_machine(
        name=f"machine-{start}",
        definition=json.dumps({"StartAt": start, "States": states}),
        roleArn="arn:aws:iam::123456789012:role/test",
    )["stateMachineArn"]
    arn = sfn.start_execution(stateMachineArn=machine, name=f"run-{start}", input="{}")[
        "executionArn"
    ]
    deadline = time.monotonic() + 30
    while sfn.describe_execution(executionArn=arn)["status"] == "RUNNING":
        assert time.monotonic() < deadline, "moto's execution did not end"
        time.sleep(0.02)
    return arn


def test_moto_history_reads_into_a_failed_execution(sfn: Any) -> None:
    states = {
        "Count": {"Type": "Pass", "Result": {"images": 3}, "ResultPath": "$.counts",
                  "Next": "Stop"},
        "Stop": {"Type": "Fail", "Error": "ModelNotFound", "Cause": CAUSE},
    }  # fmt: skip
    execution = read_execution(sfn, _run(sfn, states, "Count"))
    assert (execution.name, execution.status) == ("run-Count", "FAILED")
    assert execution.states_entered() == ["Count", "Stop"]
    assert execution.failed_state == "Stop"  # no Task state: the last state entered
    assert execution.error_line == CAUSE
    assert execution.events[0].type == "ExecutionStarted"
    assert execution.events[-1].type == "ExecutionFailed"
    assert [e.id for e in execution.events] == sorted({e.id for e in execution.events})
    (exited,) = [e for e in execution.events if e.type == "PassStateExited"]
    assert exited.output == {"counts": {"images": 3}}


def test_moto_history_reads_into_a_succeeded_execution(sfn: Any) -> None:
    states = {
        "Wait": {"Type": "Wait", "Seconds": 1, "Next": "Done"},
        "Done": {"Type": "Pass", "Result": {"files_done": 1}, "End": True},
    }
    execution = read_execution(sfn, _run(sfn, states, "Wait"))
    assert execution.succeeded and execution.failed_state is None
    assert execution.output == {"files_done": 1}
    assert (execution.error, execution.cause) == (None, None)
    # from its start to its stop, as Step Functions dates them
    assert 1 <= execution.seconds < 10


def test_an_execution_name_says_what_started_it_and_when_and_is_new_each_time() -> None:
    at = dt.datetime(2026, 11, 27, 6, 0, 5, tzinfo=dt.UTC)
    first, second = execution_name("local", at), execution_name("local", at)
    assert first.startswith("local-20261127T060005-") and first != second
    assert re.fullmatch(r"cli-\d{8}T\d{6}-[0-9a-f]{6}", execution_name("cli"))
