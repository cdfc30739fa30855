"""What the local runner adds to moto's Distributed Map (local/map_runs.py), on the pipeline's
definition with canned Lambda answers: each child's own history, and the tolerance applied as
AWS applies it (moto ignores ToleratedFailurePercentage)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from droughtwatch_tools.execution import map_run_arns, read_execution
from droughtwatch_tools.local.map_runs import EXCEEDED, ChildRecorder
from droughtwatch_tools.local.runner import create_state_machine

REGION = "eu-west-1"
CANNED = "http://motoapi.amazonaws.com/moto-api/static/lambda-simple/response"


@pytest.fixture
def recorder(aws_env: None) -> Iterator[ChildRecorder]:
    from moto import mock_aws

    recorder = ChildRecorder()
    with (
        mock_aws(
            config={
                "stepfunctions": {"execute_state_machine": True},
                "lambda": {"use_docker": False},
            }
        ),
        recorder.patches(),
    ):
        yield recorder


def answer(*responses: dict[str, Any]) -> None:
    import requests

    requests.post(
        CANNED, json={"results": [json.dumps(r) for r in responses], "region": REGION}, timeout=5
    )


def ok(step: str) -> dict[str, Any]:
    return {"statusCode": 200, "body": {"run_id": "r", step: {"files_done": 1}}}


def plan(round: int, items: int) -> dict[str, Any]:
    values = [{"ids": [i + 1], "bytes": 10} for i in range(items)]
    report = {"round": round, "files": items, "item_count": items, "items": values}
    return {"statusCode": 200, "body": {"run_id": "r", "plan": report}}


BROKEN = {"statusCode": 500, "body": {"error": "ModelNotFound", "cause": "no model.json"}}


def _run(recorder: ChildRecorder, tolerated: float) -> Any:
    """Two items, one at a time: the first child's Inference cannot work, the second's
    stages all succeed."""
    import boto3

    machine = create_state_machine(
        f"dw-{int(tolerated)}",
        max_concurrency=1,
        tolerated_failure_percentage=tolerated,
        retry_max_attempts=1,
        retry_interval_seconds=1,
    )
    answer(
        plan(1, 2),
        ok("processing"), BROKEN,  # item 0
        ok("processing"), ok("inference"), ok("observe"),  # item 1
        plan(2, 0), ok("day"),
    )  # fmt: skip
    sfn = boto3.client("stepfunctions", region_name=REGION)
    arn = sfn.start_execution(stateMachineArn=machine, name="run", input="{}")["executionArn"]
    deadline = time.monotonic() + 60
    while sfn.describe_execution(executionArn=arn)["status"] == "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    execution = read_execution(sfn, arn)
    execution.map_runs = recorder.map_runs(sfn, arn, map_run_arns(execution.events))
    return execution


def test_a_failed_item_past_the_tolerance_fails_the_map_and_the_execution(recorder) -> None:
    execution = _run(recorder, tolerated=0.0)
    assert execution.status == "FAILED"
    assert execution.error == EXCEEDED == "States.ExceedToleratedFailureThreshold"
    assert "1 of 2 items failed" in execution.cause
    assert execution.failed_state == "Items"
    (run,) = execution.map_runs
    assert (run.status, run.total, run.failed) == ("FAILED", 2, 1)
    assert [e.type for e in execution.events if e.type.startswith("MapRun")] == [
        "MapRunStarted",
        "MapRunFailed",
    ]
    # each child has its own history, framed as AWS frames a child's
    failed, succeeded = run.children
    assert (failed.name, failed.status, failed.item) == ("item-0", "FAILED", 0)
    assert (failed.error, failed.cause) == ("ModelNotFound", "no model.json")
    assert failed.states_entered()[-1] == "Inference failed"
    assert failed.events[0].type == "ExecutionStarted" and '"ids": [1]' in failed.events[0].detail
    assert failed.events[-1].type == "ExecutionFailed"
    assert [e.id for e in failed.events] == list(range(1, len(failed.events) + 1))
    assert succeeded.succeeded and succeeded.states_entered()[-1] == "Item done"
    assert succeeded.events[-1].type == "ExecutionSucceeded"
    # the first failed item's error leads, then where it failed and the parent's error
    assert execution.error_line == (
        "ModelNotFound: no model.json (item-0 failed in Inference;"
        " States.ExceedToleratedFailureThreshold: 1 of 2 items failed, more than the tolerated 0%)"
    )


def test_within_the_tolerance_the_execution_goes_on(recorder) -> None:
    execution = _run(recorder, tolerated=50.0)  # 1 of 2 failed: 50 %, not past it
    assert execution.status == "SUCCEEDED", execution.error_line
    (run,) = execution.map_runs
    assert (run.status, run.failed, run.done) == ("SUCCEEDED", 1, 2)
    assert [c.status for c in run.children] == ["FAILED", "SUCCEEDED"]
    assert execution.states_entered()[-3:] == ["Pool days", "Pool days succeeded?", "Done"]
