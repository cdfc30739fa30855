"""The alerts component: failed or timed-out executions of this state machine, and schedule
starts that reached the dead-letter queue, publish to one topic; e-mail when configured."""

from __future__ import annotations

import json
from typing import Any

from droughtwatch_infra.alerts import Alerts, AlertsArgs
from droughtwatch_infra.naming import Namer

MACHINE = "arn:aws:states:eu-west-1:123456789012:stateMachine:droughtwatch-dev-pipeline"


def build(email: str | None = None) -> Any:
    return lambda: Alerts(
        "alerts",
        AlertsArgs(Namer("droughtwatch", "dev"), "eu-west-1", MACHINE,
                   "droughtwatch-dev-schedule-dlq", email),
    )  # fmt: skip


def test_failed_and_timed_out_executions_publish_to_the_topic(infra: Any) -> None:
    stack = infra.run(build())
    topic = stack.one("aws:sns/topic:Topic")
    rule = stack.one("aws:cloudwatch/eventRule:EventRule").inputs
    assert json.loads(rule["eventPattern"]) == {
        "source": ["aws.states"],
        "detail-type": ["Step Functions Execution Status Change"],
        "detail": {"status": ["FAILED", "TIMED_OUT"], "stateMachineArn": [MACHINE]},
    }
    target = stack.one("aws:cloudwatch/eventTarget:EventTarget").inputs
    assert target["arn"] == topic.outputs["arn"]
    assert target["rule"] == rule["name"]
    message = json.loads(target["inputTransformer"]["inputTemplate"])
    assert "<execution>" in message and "<status>" in message


def test_dead_letters_raise_an_alarm_on_the_topic(infra: Any) -> None:
    stack = infra.run(build())
    alarm = stack.one("aws:cloudwatch/metricAlarm:MetricAlarm").inputs
    assert alarm["dimensions"] == {"QueueName": "droughtwatch-dev-schedule-dlq"}
    assert alarm["metricName"] == "ApproximateNumberOfMessagesVisible"
    assert alarm["comparisonOperator"] == "GreaterThanThreshold" and alarm["threshold"] == 0
    assert alarm["alarmActions"] == [stack.one("aws:sns/topic:Topic").outputs["arn"]]


def test_only_the_rule_and_the_alarm_may_publish(infra: Any) -> None:
    stack = infra.run(build())
    topic_arn = stack.one("aws:sns/topic:Topic").outputs["arn"]
    rule_arn = stack.one("aws:cloudwatch/eventRule:EventRule").outputs["arn"]
    alarm_arn = stack.one("aws:cloudwatch/metricAlarm:MetricAlarm").outputs["arn"]
    statements = stack.one("aws:sns/topicPolicy:TopicPolicy").json("policy")["Statement"]
    assert [
        (s["Principal"]["Service"], s["Action"], s["Resource"], s["Condition"]) for s in statements
    ] == [
        ("events.amazonaws.com", "sns:Publish", topic_arn,
         {"ArnEquals": {"aws:SourceArn": rule_arn}}),
        ("cloudwatch.amazonaws.com", "sns:Publish", topic_arn,
         {"ArnEquals": {"aws:SourceArn": alarm_arn}}),
    ]  # fmt: skip


def test_email_subscription_only_when_configured(infra: Any) -> None:
    assert infra.run(build()).of_type("aws:sns/topicSubscription:TopicSubscription") == []
    stack = infra.run(build("oncall@example.org"))
    subscription = stack.one("aws:sns/topicSubscription:TopicSubscription").inputs
    assert (subscription["protocol"], subscription["endpoint"]) == ("email", "oncall@example.org")
