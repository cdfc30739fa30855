"""Start an execution of a deployed stack's state machine and follow it to its end."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from typing import Any

from droughtwatch_contract.outputs import StackOutput

from droughtwatch_tools.errors import UserError
from droughtwatch_tools.execution import (
    TERMINAL,
    Execution,
    ExecutionEvent,
    execution_name,
    read_execution,
)

CLI_TRIGGER = "cli"
CLI_INPUT = {"trigger": CLI_TRIGGER}


def console_url(execution_arn: str, outputs: Mapping[str, Any]) -> str:
    """The execution's page in the AWS console."""
    region = outputs.get(StackOutput.REGION) or execution_arn.split(":")[3]
    return (
        f"https://{region}.console.aws.amazon.com/states/home?region={region}"
        f"#/v2/executions/details/{execution_arn}"
    )


def start_and_follow(
    outputs: Mapping[str, Any],
    on_event: Callable[[ExecutionEvent], None] | None = None,
    *,
    sfn: Any = None,
    payload: Mapping[str, Any] | None = None,
    name: str | None = None,
    poll_seconds: float = 2.0,
    timeout_seconds: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Execution:
    """Start an execution of the stack's state machine and poll it until it ends, passing each
    new history event to ``on_event``, once and in order. On failure the execution names the
    failed state and carries its error and cause."""
    if sfn is None:
        import boto3

        sfn = boto3.client("stepfunctions", region_name=outputs.get(StackOutput.REGION))
    name = name or execution_name(CLI_TRIGGER)
    arn = sfn.start_execution(
        stateMachineArn=outputs[StackOutput.STATE_MACHINE_ARN],
        name=name,
        input=json.dumps(dict(payload) if payload is not None else CLI_INPUT),
    )["executionArn"]
    started = time.monotonic()
    seen = 0
    while True:
        execution = read_execution(sfn, arn)
        for event in execution.events[seen:]:
            if on_event is not None:
                on_event(event)
        seen = len(execution.events)
        if execution.status in TERMINAL:
            return execution
        if timeout_seconds is not None and time.monotonic() - started > timeout_seconds:
            raise UserError(
                f"execution {name} is still {execution.status} after {timeout_seconds:.0f} s",
                f"it goes on running; follow it in the console ({console_url(arn, outputs)})",
            )
        sleep(poll_seconds)
