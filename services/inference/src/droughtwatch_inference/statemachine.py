"""The one Amazon States Language definition of the pipeline, used by the Pulumi program and by
the local runner alike.

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

from droughtwatch_inference.entries import STAGES

TITLES = {"processing": "Processing", "inference": "Inference", "observe": "Observe"}
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


def choice_name(stage: str) -> str:
    return f"{TITLES[stage]} succeeded?"


def fail_name(stage: str) -> str:
    return f"{TITLES[stage]} failed"


def caught_name(stage: str) -> str:
    return f"{TITLES[stage]} error caught"


SUCCEED = "Done"
SUCCESS_PATH = [s for stage in STAGES for s in (TITLES[stage], choice_name(stage))] + [SUCCEED]


def definition(
    function_arns: Mapping[str, Any],
    timeouts: Mapping[str, int] | None = None,
    *,
    retry_interval_seconds: int = 2,
    retry_max_attempts: int = 3,
) -> dict[str, Any]:
    """The state machine definition as a dict. ``function_arns`` maps each stage name to its
    Lambda ARN (plain strings locally, Pulumi Outputs in the Pulumi program: this function only
    places them, so `pulumi.Output.json_dumps` resolves them)."""
    missing = [s for s in STAGES if s not in function_arns]
    if missing:
        raise ValueError(f"function ARNs missing for stages: {missing}")
    timeouts = timeouts or {}
    states: dict[str, Any] = {}
    for position, stage in enumerate(STAGES):
        title = TITLES[stage]
        is_first = position == 0
        payload: dict[str, Any] = (
            {"run_id.$": "$$.Execution.Name", "input.$": "$"} if is_first else {"body.$": "$.body"}
        )
        timeout = int(timeouts.get(stage, DEFAULT_TIMEOUT_SECONDS)) + TASK_TIMEOUT_MARGIN_SECONDS
        next_after_choice = TITLES[STAGES[position + 1]] if position + 1 < len(STAGES) else SUCCEED
        states[title] = {
            "Type": "Task",
            "Comment": f"{title}: one Lambda invocation of the shared image",
            "Resource": "arn:aws:states:::lambda:invoke",
            "Parameters": {"FunctionName": function_arns[stage], "Payload": payload},
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
        "Comment": "droughtwatch: Processing -> Inference -> Observe, each checked by a Choice",
        "StartAt": TITLES[STAGES[0]],
        "States": states,
    }
