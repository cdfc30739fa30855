"""Start an execution of a deployed stack's state machine and follow it to its end."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from typing import Any

from droughtwatch_contract.outputs import StackOutput
from droughtwatch_contract.stages import WORKFLOW

from droughtwatch_tools.errors import UserError
from droughtwatch_tools.execution import (
    TERMINAL,
    Execution,
    ExecutionEvent,
    MapRun,
    PlanSummary,
    describe_map_run,
    execution_name,
    map_run_arns,
    read_execution,
    read_failed_children,
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
    on_map_run: Callable[[MapRun, PlanSummary | None], None] | None = None,
) -> Execution:
    """Start an execution of the stack's state machine and poll it until it ends, passing each
    new history event to ``on_event``, once and in order, and while the Map runs its counts to
    ``on_map_run``. The execution comes back with its map runs; when it failed, with their
    failed children (whose errors say why) and its failed state, error and cause."""
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
    plan: PlanSummary | None = None
    plans: dict[str, PlanSummary | None] = {}  # each map run's round of Plan
    while True:
        execution = read_execution(sfn, arn)
        for event in execution.events[seen:]:
            if on_event is not None:
                on_event(event)
            plan = _plan_of(event) or plan
            if event.map_run_arn:
                plans[event.map_run_arn] = plan
        seen = len(execution.events)
        runs = map_run_arns(execution.events)
        if runs and on_map_run is not None:
            on_map_run(describe_map_run(sfn, runs[-1]), plans.get(runs[-1]))
        if execution.status in TERMINAL:
            return _with_map_runs(sfn, execution, runs)
        if timeout_seconds is not None and time.monotonic() - started > timeout_seconds:
            raise UserError(
                f"execution {name} is still {execution.status} after {timeout_seconds:.0f} s",
                f"it goes on running; follow it in the console ({console_url(arn, outputs)})",
            )
        sleep(poll_seconds)


def _plan_of(event: ExecutionEvent) -> PlanSummary | None:
    """What a round of Plan handed out, from its Task's exit event."""
    plan = event.step_report(WORKFLOW.plan)
    return PlanSummary.from_report(plan) if plan is not None else None


def _with_map_runs(sfn: Any, execution: Execution, arns: list[str]) -> Execution:
    """The ended execution with its map runs, and the failed children of each."""
    from botocore.exceptions import BotoCoreError, ClientError

    execution.map_runs = [describe_map_run(sfn, arn) for arn in arns]
    for run in execution.map_runs:
        if run.failed:
            try:
                run.children = read_failed_children(sfn, run.arn)
            except (BotoCoreError, ClientError):
                # the run's counts stand; its children are in the console
                run.children = []
    return execution
