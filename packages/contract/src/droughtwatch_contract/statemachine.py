"""The one Amazon States Language definition of the pipeline, used by the Pulumi program and by
the local runner alike, built from the workflow registry (stages.WORKFLOW):

    Start -> Plan -> Plan succeeded? -> Items to do? -> Items -> Another round? -> Plan -> ...
          -> Items to do? -> Pool days -> Pool days succeeded? -> Done

Plan registers new raw objects and splits the pending files into items (groups of ledger ids,
in its output); Items is a Distributed Map that runs one child workflow per item, at most
``max_concurrency`` at once:

    Processing -> Processing succeeded? -> Inference -> Inference succeeded? -> Observe ->
    Observe succeeded? -> Item done

After each map run the execution goes back to Plan, at most ``max_rounds`` rounds in all, until
Plan finds nothing waiting: what a round left (it hands out at most a round's worth, so that
the items stay well inside the 256 KiB state input), files that arrived meanwhile, files a
child left for lack of time. Then Pool days pools every stale day once.

Each Task invokes its Lambda, retries Lambda service errors with exponential backoff, and
catches anything else into its step's Fail state (through a Pass state that gives the caught
error the handlers' response shape). Each Choice sends a statusCode other than 200 to the same
Fail state, whose Error and Cause come from the response body. A child that fails counts
against the Map's ToleratedFailurePercentage; past it the Map fails, and the execution with it,
with States.ExceedToleratedFailureThreshold.

Only what both AWS and moto's interpreter (which runs the definition locally) accept: items
from ItemsPath (no ItemBatcher, no ItemReader), STANDARD children, the tolerance as a float.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from droughtwatch_contract.stages import WORKFLOW, StageRegistry, Step, Workflow

LAMBDA_SERVICE_ERRORS = [
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
]
DEFAULT_TIMEOUT_SECONDS = 900
# Step Functions waits a little longer than the function may run, so a Lambda timeout surfaces
# as the function's own error rather than as States.Timeout.
TASK_TIMEOUT_MARGIN_SECONDS = 60
# The stack's defaults (infra's config validates a stack's own values).
DEFAULT_MAX_CONCURRENCY = 10
DEFAULT_TOLERATED_FAILURE_PERCENTAGE = 0.0
# Step Functions' limit on a state's input and output (256 KiB), and how much of it Plan's items
# may take: the rest of Plan's output (its counts, the run id, the execution's input) is small.
STATE_LIMIT_BYTES = 256 * 1024
ITEMS_BUDGET_BYTES = 160 * 1024
# Rounds of Plan and Items in one execution: each round hands out at most PlanSettings'
# plan_max_files files; a backlog larger than the rounds' worth is finished by the next one.
MAX_ROUNDS = 10

START = "Start"
ITEMS_TO_DO = "Items to do?"
ITEMS = "Items"
ANOTHER_ROUND = "Another round?"
ITEM_DONE = "Item done"
SUCCEED = "Done"
# The Map's label: the middle of its map runs' ARNs (…:mapRun:<machine>/items:<id>).
MAP_LABEL = "items"


def choice_name(step: Step) -> str:
    return f"{step.title} succeeded?"


def fail_name(step: Step) -> str:
    return f"{step.title} failed"


def caught_name(step: Step) -> str:
    return f"{step.title} error caught"


def success_path(workflow: Workflow = WORKFLOW, rounds: int = 1) -> list[str]:
    """The states of an execution that succeeds with items to do in ``rounds`` rounds, in
    order: the last Plan finds nothing (each item's child passes through `item_path`)."""
    plan, day = workflow.plan, workflow.day
    planned = [plan.title, choice_name(plan), ITEMS_TO_DO]
    return [
        START,
        *[s for _ in range(rounds) for s in (*planned, ITEMS, ANOTHER_ROUND)],
        *planned,
        day.title,
        choice_name(day),
        SUCCEED,
    ]


def idle_path(workflow: Workflow = WORKFLOW) -> list[str]:
    """The states of an execution that finds nothing to do: no Map, the days still pooled."""
    return success_path(workflow, rounds=0)


def item_path(stages: StageRegistry = WORKFLOW.stages) -> list[str]:
    """The states of a child workflow (one item) that succeeds, in order."""
    return [s for stage in stages for s in (stage.title, choice_name(stage))] + [ITEM_DONE]


SUCCESS_PATH = success_path()
IDLE_PATH = idle_path()
ITEM_PATH = item_path()


def billed_transitions(items: int, rounds: int = 1, workflow: Workflow = WORKFLOW) -> int:
    """The state transitions Step Functions bills for an execution that succeeds with
    ``items`` items over ``rounds`` rounds: every state its path enters and every state of each
    item's child (Standard workflows bill the children's too; a Lambda retry adds one)."""
    return len(success_path(workflow, rounds)) + items * len(item_path(workflow.stages))


def invocations(items: int, rounds: int = 1, workflow: Workflow = WORKFLOW) -> int:
    """The Lambda invocations of that execution: each Task its path enters (Plan in each round
    and once more, the day step) and each stage of each item's child (a retry adds one)."""
    tasks = {workflow.plan.title, workflow.day.title}
    parent = sum(state in tasks for state in success_path(workflow, rounds))
    return parent + items * len(workflow.stages)


def lambda_invoke_resource(partition: str = "aws") -> str:
    """The Task resource of Step Functions' optimized Lambda integration in a partition
    (``aws``, ``aws-us-gov``, ``aws-cn``...)."""
    return f"arn:{partition}:states:::lambda:invoke"


LAMBDA_INVOKE = lambda_invoke_resource()


def definition(
    function_arns: Mapping[str, Any],
    timeouts: Mapping[str, int] | None = None,
    *,
    workflow: Workflow = WORKFLOW,
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
    tolerated_failure_percentage: float = DEFAULT_TOLERATED_FAILURE_PERCENTAGE,
    max_rounds: int = MAX_ROUNDS,
    retry_interval_seconds: int = 2,
    retry_max_attempts: int = 3,
    lambda_invoke: Any = LAMBDA_INVOKE,
) -> dict[str, Any]:
    """The state machine definition as a dict. ``function_arns`` maps each step name to its
    Lambda ARN (plain strings locally, Pulumi Outputs in the Pulumi program: this function only
    places them, so `pulumi.Output.json_dumps` resolves them); ``lambda_invoke`` is the
    integration's ARN in the stack's partition (a string or an Output likewise)."""
    missing = [s for s in workflow.names if s not in function_arns]
    if missing:
        raise ValueError(f"function ARNs missing for steps: {missing}")
    if not 1 <= max_concurrency <= 10_000:
        raise ValueError(
            f"max_concurrency must be 1..10000 (Step Functions' limit), got {max_concurrency}"
        )
    if not 0 <= tolerated_failure_percentage <= 100:
        raise ValueError(
            f"tolerated_failure_percentage must be 0..100, got {tolerated_failure_percentage}"
        )
    if max_rounds < 1:
        raise ValueError(f"max_rounds must be at least 1, got {max_rounds}")

    def task(step: Step, payload: dict[str, Any], next_state: str) -> dict[str, Any]:
        timeout = int((timeouts or {}).get(step.name, DEFAULT_TIMEOUT_SECONDS))
        return _checked_task(
            step,
            function_arns[step.name],
            payload,
            next_state,
            timeout_seconds=timeout + TASK_TIMEOUT_MARGIN_SECONDS,
            lambda_invoke=lambda_invoke,
            retry=_retry(retry_interval_seconds, retry_max_attempts),
        )

    plan, day, order = workflow.plan, workflow.day, list(workflow.stages)
    child: dict[str, Any] = {}
    for position, stage in enumerate(order):
        after = order[position + 1].title if position + 1 < len(order) else ITEM_DONE
        child |= task(stage, {"body.$": "$.body"}, after)
    # The child's output is {}: the Map's results stay small (its input's limit holds for
    # them too), and every count a stage reports is in the child's history.
    child[ITEM_DONE] = {"Type": "Succeed", "OutputPath": None}

    states: dict[str, Any] = {
        START: {
            "Type": "Pass",
            "Comment": "Round 0: no round planned yet",
            "Result": {"body": {"plan": {"round": 0}}},
            "Next": plan.title,
        }
    }
    states |= task(
        plan,
        {
            "body": {
                "run_id.$": "$$.Execution.Name",
                "input.$": "$$.Execution.Input",
                "rounds_done.$": "$.body.plan.round",
                # Plan splits the work into at least this many items, so the fan-out is used.
                "concurrency": max_concurrency,
            }
        },
        ITEMS_TO_DO,
    )
    states[ITEMS_TO_DO] = {
        "Type": "Choice",
        "Choices": [{"Variable": "$.body.plan.item_count", "NumericGreaterThan": 0, "Next": ITEMS}],
        "Default": day.title,
    }
    states[ITEMS] = {
        "Type": "Map",
        "Comment": "One child workflow per item of Plan's: the stages on exactly its files",
        "ItemsPath": "$.body.plan.items",
        "ItemSelector": {
            "body": {
                # The parent's name (the Map evaluates this in the parent execution): the
                # children's runs and logs carry the execution's run id.
                "run_id.$": "$$.Execution.Name",
                "round.$": "$.body.plan.round",
                "index.$": "$$.Map.Item.Index",
                "item.$": "$$.Map.Item.Value",
            }
        },
        "ItemProcessor": {
            "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
            "StartAt": order[0].title,
            "States": child,
        },
        "MaxConcurrency": max_concurrency,
        "ToleratedFailurePercentage": float(tolerated_failure_percentage),
        "Label": MAP_LABEL,
        # The Map's output is its input (Plan's output): the children's results are dropped.
        # No Catch: past its tolerance the Map fails the execution with its own error
        # (States.ExceedToleratedFailureThreshold); each failed child's history says why.
        "ResultPath": None,
        "Next": ANOTHER_ROUND,
    }
    states[ANOTHER_ROUND] = {
        "Type": "Choice",
        "Comment": "Back to Plan until it finds nothing waiting, within the rounds' bound",
        "Choices": [
            {"Variable": "$.body.plan.round", "NumericLessThan": max_rounds, "Next": plan.title}
        ],
        "Default": day.title,
    }
    states |= task(
        day,
        {
            "body": {
                "run_id.$": "$$.Execution.Name",
                "input.$": "$$.Execution.Input",
                "rounds.$": "$.body.plan.round",
            }
        },
        SUCCEED,
    )
    states[SUCCEED] = {"Type": "Succeed"}
    titles = " -> ".join(s.title for s in order)
    return {
        "Comment": (
            f"droughtwatch: {plan.title}, then {ITEMS} (per item: {titles}), then {day.title};"
            " each step checked by a Choice"
        ),
        "StartAt": START,
        "States": states,
    }


def _retry(interval_seconds: int, max_attempts: int) -> list[dict[str, Any]]:
    return [
        {
            "ErrorEquals": list(LAMBDA_SERVICE_ERRORS),
            "IntervalSeconds": interval_seconds,
            "MaxAttempts": max_attempts,
            "BackoffRate": 2.0,
            "JitterStrategy": "FULL",
        }
    ]


def _checked_task(
    step: Step,
    function_arn: Any,
    payload: dict[str, Any],
    next_state: str,
    *,
    timeout_seconds: int,
    lambda_invoke: Any,
    retry: list[dict[str, Any]],
) -> dict[str, Any]:
    """A step's four states: its Task, the Choice on its statusCode, the Pass that shapes a
    caught error, and its Fail state."""
    title = step.title
    return {
        title: {
            "Type": "Task",
            "Comment": f"{title}: one Lambda invocation of the shared image",
            "Resource": lambda_invoke,
            "Parameters": {"FunctionName": function_arn, "Payload": payload},
            "ResultSelector": {"statusCode.$": "$.Payload.statusCode", "body.$": "$.Payload.body"},
            "TimeoutSeconds": timeout_seconds,
            "Retry": retry,
            "Catch": [{"ErrorEquals": ["States.ALL"], "Next": caught_name(step)}],
            "Next": choice_name(step),
        },
        choice_name(step): {
            "Type": "Choice",
            "Choices": [
                {
                    "And": [
                        {"Variable": "$.statusCode", "IsPresent": True},
                        {"Variable": "$.statusCode", "NumericEquals": 200},
                    ],
                    "Next": next_state,
                }
            ],
            "Default": fail_name(step),
        },
        caught_name(step): {
            "Type": "Pass",
            "Comment": "Give a caught error the handlers' failure shape",
            "Parameters": {"statusCode": 500, "body": {"error.$": "$.Error", "cause.$": "$.Cause"}},
            "Next": fail_name(step),
        },
        fail_name(step): {
            "Type": "Fail",
            "Comment": f"{title} failed as a whole; the ledger and the runs table say why",
            "ErrorPath": "$.body.error",
            "CausePath": "$.body.cause",
        },
    }


def exceeds_tolerance(failed: int, total: int, tolerated_percentage: float) -> bool:
    """Whether a map run with ``failed`` of ``total`` items failed has failed as a whole: AWS
    fails it when the failed share *exceeds* ToleratedFailurePercentage (so 0 tolerates none,
    100 tolerates all). moto ignores the field; the local runner applies this."""
    return total > 0 and failed * 100 > tolerated_percentage * total
