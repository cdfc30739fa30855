"""The cadence: an EventBridge Scheduler schedule that starts the pipeline with the configured
expression and time zone, retries a failed start, and sends what it could not start to a
dead-letter queue. Its role may start only this state machine."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from droughtwatch_infra import policies
from droughtwatch_infra.children import ChildNames
from droughtwatch_infra.naming import Namer

# The execution input: the first stage passes it through as the run's "input".
SCHEDULE_INPUT = {"trigger": "schedule"}
DLQ_RETENTION_SECONDS = 14 * 24 * 3600  # SQS maximum: two weeks to notice and replay


@dataclass(frozen=True)
class ScheduleArgs:
    namer: Namer
    state_machine_arn: pulumi.Input[str]
    account_id: pulumi.Input[str]
    expression: str
    timezone: str
    enabled: bool
    retry_attempts: int
    max_event_age_seconds: int


class Schedule(pulumi.ComponentResource):
    name: str
    dead_letter_queue_arn: pulumi.Output[str]
    dead_letter_queue_name: pulumi.Output[str]
    dead_letter_queue_url: pulumi.Output[str]

    def __init__(
        self, name: str, args: ScheduleArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("droughtwatch:infra:Schedule", name, None, opts)
        child = ChildNames(self, name)
        dead_letters = aws.sqs.Queue(
            child.name("dead-letters"),
            name=args.namer.name("schedule-dlq"),
            message_retention_seconds=DLQ_RETENTION_SECONDS,
            sqs_managed_sse_enabled=True,
            opts=child.opts("dead-letters"),
        )
        role = aws.iam.Role(
            child.name("scheduler"),
            name=args.namer.name("schedule"),
            description="droughtwatch schedule: starts the pipeline, dead-letters failures",
            assume_role_policy=pulumi.Output.json_dumps(
                policies.assume_role("scheduler.amazonaws.com", source_account=args.account_id)
            ),
            opts=child.opts("scheduler"),
        )
        policy = aws.iam.RolePolicy(
            child.name("scheduler"),
            name="start-pipeline",
            role=role.id,
            policy=pulumi.Output.json_dumps(
                policies.scheduler_policy(args.state_machine_arn, dead_letters.arn)
            ),
            opts=child.opts("scheduler"),
        )
        schedule_name = args.namer.name("schedule")
        aws.scheduler.Schedule(
            child.name(),
            name=schedule_name,
            group_name="default",
            description="droughtwatch: run the pipeline on the configured cadence",
            schedule_expression=args.expression,
            schedule_expression_timezone=args.timezone,
            state="ENABLED" if args.enabled else "DISABLED",
            flexible_time_window={"mode": "OFF"},
            target={
                "arn": args.state_machine_arn,
                "role_arn": role.arn,
                "input": json.dumps(SCHEDULE_INPUT),
                "retry_policy": {
                    "maximum_retry_attempts": args.retry_attempts,
                    "maximum_event_age_in_seconds": args.max_event_age_seconds,
                },
                "dead_letter_config": {"arn": dead_letters.arn},
            },
            opts=child.opts(depends_on=[policy]),
        )
        self.name = schedule_name
        self.dead_letter_queue_arn = dead_letters.arn
        self.dead_letter_queue_name = dead_letters.name
        self.dead_letter_queue_url = dead_letters.url
        self.register_outputs(
            {"dead_letter_queue_arn": self.dead_letter_queue_arn, "name": schedule_name}
        )
