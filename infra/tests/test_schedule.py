"""The schedule component: EventBridge Scheduler starts the pipeline with the configured
expression and time zone and the input it expects, retries, and dead-letters; its role may start
only this state machine."""

from __future__ import annotations

import json
from typing import Any

from droughtwatch_infra.naming import Namer
from droughtwatch_infra.schedule import SCHEDULE_INPUT, Schedule, ScheduleArgs

MACHINE = "arn:aws:states:eu-west-1:123456789012:stateMachine:droughtwatch-dev-pipeline"


def build(expression: str = "rate(24 hours)", timezone: str = "UTC", enabled: bool = True) -> Any:
    return lambda: Schedule(
        "schedule",
        ScheduleArgs(
            namer=Namer("droughtwatch", "dev"),
            state_machine_arn=MACHINE,
            account_id="123456789012",
            expression=expression,
            timezone=timezone,
            enabled=enabled,
            retry_attempts=4,
            max_event_age_seconds=1800,
        ),
    )


def test_schedule_starts_the_pipeline_with_retries_and_a_dead_letter_queue(infra: Any) -> None:
    stack = infra.run(build())
    schedule = stack.one("aws:scheduler/schedule:Schedule").inputs
    queue = stack.one("aws:sqs/queue:Queue")
    assert schedule["name"] == "droughtwatch-dev-schedule"
    assert schedule["scheduleExpression"] == "rate(24 hours)"
    assert schedule["scheduleExpressionTimezone"] == "UTC"
    assert schedule["state"] == "ENABLED"
    assert schedule["flexibleTimeWindow"] == {"mode": "OFF"}
    target = schedule["target"]
    assert target["arn"] == MACHINE
    assert json.loads(target["input"]) == SCHEDULE_INPUT
    assert target["retryPolicy"] == {"maximumRetryAttempts": 4, "maximumEventAgeInSeconds": 1800}
    assert target["deadLetterConfig"] == {"arn": queue.outputs["arn"]}
    assert target["roleArn"] == "arn:aws:iam::123456789012:role/droughtwatch-dev-schedule"
    assert queue.inputs["name"] == "droughtwatch-dev-schedule-dlq"
    assert queue.inputs["sqsManagedSseEnabled"] is True


def test_expression_timezone_and_state_follow_the_arguments(infra: Any) -> None:
    stack = infra.run(build("cron(0 6 * * ? *)", "Europe/Paris", enabled=False))
    schedule = stack.one("aws:scheduler/schedule:Schedule").inputs
    assert schedule["scheduleExpression"] == "cron(0 6 * * ? *)"
    assert schedule["scheduleExpressionTimezone"] == "Europe/Paris"
    assert schedule["state"] == "DISABLED"


def test_role_may_start_only_this_state_machine(infra: Any) -> None:
    stack = infra.run(build())
    queue_arn = stack.one("aws:sqs/queue:Queue").outputs["arn"]
    statements = stack.one("aws:iam/rolePolicy:RolePolicy").json("policy")["Statement"]
    assert [(s["Action"], s["Resource"]) for s in statements] == [
        (["states:StartExecution"], [MACHINE]),
        (["sqs:SendMessage"], [queue_arn]),
    ]
    trust = stack.one("aws:iam/role:Role").json("assumeRolePolicy")["Statement"][0]
    assert trust["Principal"] == {"Service": "scheduler.amazonaws.com"}
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": "123456789012"}}
