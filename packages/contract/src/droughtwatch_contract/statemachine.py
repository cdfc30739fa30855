"""The one Amazon States Language definition of the pipeline, used by the Pulumi program and by
the local runner alike, built from the stage registry:

    Processing -> Processing succeeded? -> Inference -> Inference succeeded? -> Observe ->
    Observe succeeded? -> Done

Each Task invokes its Lambda with the previous stage's body, retries Lambda service errors with
exponential backoff, and catches anything else into that stage's Fail state (through a Pass state
that gives the caught error the handlers' response shape). Each Choice sends a statusCode other
than 200 to the same Fail state, whose Error and Cause come from the response body.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from droughtwatch_contract.stages import STAGES, Stage, StageRegistry

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


def choice_name(stage: Stage) -> str:
    return f"{stage.title} succeeded?"


def fail_name(stage: Stage) -> str:
    return f"{stage.title} failed"


def caught_name(stage: Stage) -> str:
    return f"{stage.title} error caught"


SUCCEED = "Done"


def success_path(stages: StageRegistry = STAGES) -> list[str]:
    """The states an execution that succeeds passes through, in order."""
    return [s for stage in stages for s in (stage.title, choice_name(stage))] + [SUCCEED]


SUCCESS_PATH = success_path()


def lambda_invoke_resource(partition: str = "aws") -> str:
    """The Task resource of Step Functions' optimized Lambda integration in a partition
    (``aws``, ``aws-us-gov``, ``aws-cn``...)."""
    return f"arn:{partition}:states:::lambda:invoke"


LAMBDA_INVOKE = lambda_invoke_resource()


def definition(
    function_arns: Mapping[str, Any],
    timeouts: Mapping[str, int] | None = None,
    *,
    stages: StageRegistry = STAGES,
    retry_interval_seconds: int = 2,
    retry_max_attempts: int = 3,
    lambda_invoke: Any = LAMBDA_INVOKE,
) -> dict[str, Any]:
    """The state machine definition as a dict. ``function_arns`` maps each stage name to its
    Lambda ARN (plain strings locally, Pulumi Outputs in the Pulumi program: this function only
    places them, so `pulumi.Output.json_dumps` resolves them); ``lambda_invoke`` is the
    integration's ARN in the stack's partition (a string or an Output likewise)."""
    missing = [s for s in stages.names if s not in function_arns]
    if missing:
        raise ValueError(f"function ARNs missing for stages: {missing}")
    timeouts = timeouts or {}
    states: dict[str, Any] = {}
    order = list(stages)
    for position, stage in enumerate(order):
        title = stage.title
        is_first = position == 0
        payload: dict[str, Any] = (
            {"run_id.$": "$$.Execution.Name", "input.$": "$"} if is_first else {"body.$": "$.body"}
        )
        timeout = (
            int(timeouts.get(stage.name, DEFAULT_TIMEOUT_SECONDS)) + TASK_TIMEOUT_MARGIN_SECONDS
        )
        next_after_choice = order[position + 1].title if position + 1 < len(order) else SUCCEED
        states[title] = {
            "Type": "Task",
            "Comment": f"{title}: one Lambda invocation of the shared image",
            "Resource": lambda_invoke,
            "Parameters": {"FunctionName": function_arns[stage.name], "Payload": payload},
            "ResultSelector": {"statusCode.$": "$.Payload.statusCode", "body.$": "$.Payload.body"},
            "TimeoutSeconds": timeout,
            "Retry": [
                {
                    "ErrorEquals": list(LAMBDA_SERVICE_ERRORS),
                    "IntervalSeconds": retry_interval_seconds,
                    "MaxAttempts": retry_max_attempts,
                    "BackoffRate": 2.0,
                    "JitterStrategy": "FULL",
                }
            ],
            "Catch": [{"ErrorEquals": ["States.ALL"], "Next": caught_name(stage)}],
            "Next": choice_name(stage),
        }
        states[choice_name(stage)] = {
            "Type": "Choice",
            "Choices": [
                {
                    "And": [
                        {"Variable": "$.statusCode", "IsPresent": True},
                        {"Variable": "$.statusCode", "NumericEquals": 200},
                    ],
                    "Next": next_after_choice,
                }
            ],
            "Default": fail_name(stage),
        }
        states[caught_name(stage)] = {
            "Type": "Pass",
            "Comment": "Give a caught error the handlers' failure shape",
            "Parameters": {"statusCode": 500, "body": {"error.$": "$.Error", "cause.$": "$.Cause"}},
            "Next": fail_name(stage),
        }
        states[fail_name(stage)] = {
            "Type": "Fail",
            "Comment": f"{title} failed as a whole; the ledger and the runs table say why",
            "ErrorPath": "$.body.error",
            "CausePath": "$.body.cause",
        }
    states[SUCCEED] = {"Type": "Succeed"}
    return {
        "Comment": f"droughtwatch: {' -> '.join(s.title for s in order)}, each checked by a Choice",
        "StartAt": order[0].title,
        "States": states,
    }
