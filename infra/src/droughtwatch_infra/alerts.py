"""Alerts: an SNS topic that hears of every failed or timed-out pipeline execution (through an
EventBridge rule) and of schedule starts that landed in the dead-letter queue (through an alarm),
with an e-mail subscription when the stack sets one."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from droughtwatch_infra import policies
from droughtwatch_infra.children import ChildNames
from droughtwatch_infra.naming import Namer

ALERT_STATUSES = ["FAILED", "TIMED_OUT"]


def execution_event_pattern(state_machine_arn: Any) -> dict[str, Any]:
    return {
        "source": ["aws.states"],
        "detail-type": ["Step Functions Execution Status Change"],
        "detail": {"status": ALERT_STATUSES, "stateMachineArn": [state_machine_arn]},
    }


@dataclass(frozen=True)
class AlertsArgs:
    namer: Namer
    region: str
    state_machine_arn: pulumi.Input[str]
    dead_letter_queue_name: pulumi.Input[str]
    email: str | None


class Alerts(pulumi.ComponentResource):
    topic_arn: pulumi.Output[str]

    def __init__(
        self, name: str, args: AlertsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("droughtwatch:infra:Alerts", name, None, opts)
        child = ChildNames(self, name)
        namer = args.namer
        # Not encrypted with the AWS-managed SNS key: EventBridge cannot publish to it. The
        # messages carry execution names and statuses only.
        topic = aws.sns.Topic(child.name(), name=namer.name("alerts"), opts=child.opts())
        rule = aws.cloudwatch.EventRule(
            child.name("execution-failed"),
            name=namer.name("execution-failed"),
            description="droughtwatch: a pipeline execution failed or timed out",
            event_pattern=pulumi.Output.json_dumps(execution_event_pattern(args.state_machine_arn)),
            opts=child.opts("execution-failed"),
        )
        console = (
            f"https://{args.region}.console.aws.amazon.com/states/home?region={args.region}"
            "#/v2/executions/details/<arn>"
        )
        aws.cloudwatch.EventTarget(
            child.name("execution-failed"),
            rule=rule.name,
            arn=topic.arn,
            input_transformer={
                "input_paths": {
                    "execution": "$.detail.name",
                    "status": "$.detail.status",
                    "arn": "$.detail.executionArn",
                },
                "input_template": json.dumps(
                    f"droughtwatch {namer.stack}: execution <execution> ended <status>. "
                    f"Failed state and cause: `droughtwatch run` prints them, or {console}"
                ),
            },
            opts=child.opts("execution-failed"),
        )
        alarm = aws.cloudwatch.MetricAlarm(
            child.name("schedule-dead-letters"),
            name=namer.name("schedule-dead-letters"),
            alarm_description=(
                "droughtwatch: the schedule could not start the pipeline; the attempts are in "
                "the dead-letter queue"
            ),
            namespace="AWS/SQS",
            metric_name="ApproximateNumberOfMessagesVisible",
            dimensions={"QueueName": args.dead_letter_queue_name},
            statistic="Maximum",
            period=300,
            evaluation_periods=1,
            threshold=0,
            comparison_operator="GreaterThanThreshold",
            treat_missing_data="notBreaching",
            alarm_actions=[topic.arn],
            opts=child.opts("schedule-dead-letters"),
        )
        aws.sns.TopicPolicy(
            child.name(),
            arn=topic.arn,
            policy=pulumi.Output.json_dumps(
                policies.alert_topic_policy(
                    topic.arn,
                    {"events.amazonaws.com": rule.arn, "cloudwatch.amazonaws.com": alarm.arn},
                )
            ),
            opts=child.opts(),
        )
        if args.email:
            aws.sns.TopicSubscription(
                child.name("email"),
                topic=topic.arn,
                protocol="email",
                endpoint=args.email,
                opts=child.opts("email"),
            )
        self.topic_arn = topic.arn
        self.register_outputs({"topic_arn": self.topic_arn})
