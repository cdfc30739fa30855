"""Every IAM and resource policy of the stack as a plain function returning a dict.

The functions only place the ARNs they are given, which may be plain strings (tests) or Pulumi
Outputs (the program, through `pulumi.Output.json_dumps`). Each grants the narrowest actions on
the narrowest resources the code uses; the few ``"*"`` resources are for actions that AWS
authorizes on no narrower resource (listed in WILDCARD_ONLY_ACTIONS).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import pulumi
from droughtwatch_contract.keys import KeyLayout
from droughtwatch_contract.stages import MODEL, Location, Stage

VERSION = "2012-10-17"

# What Step Functions needs to deliver its execution logs to CloudWatch Logs.
LOG_DELIVERY_ACTIONS = (
    "logs:CreateLogDelivery",
    "logs:GetLogDelivery",
    "logs:UpdateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries",
    "logs:PutResourcePolicy",
    "logs:DescribeResourcePolicies",
    "logs:DescribeLogGroups",
)

# Actions that IAM authorizes only on "Resource": "*" (no resource-level permissions).
WILDCARD_ONLY_ACTIONS = frozenset(
    {
        # Lambda's network interfaces in the VPC: Describe* has no resource type.
        "ec2:DescribeNetworkInterfaces",
        "ec2:DescribeSubnets",
        # Step Functions' vended log delivery (CloudWatch Logs requires "*").
        *LOG_DELIVERY_ACTIONS,
        # Session Manager's channels from the bastion's agent.
        "ssmmessages:CreateControlChannel",
        "ssmmessages:CreateDataChannel",
        "ssmmessages:OpenControlChannel",
        "ssmmessages:OpenDataChannel",
    }
)


def join(*parts: Any) -> Any:
    """Concatenate strings, or Outputs and strings into an Output."""
    if all(isinstance(p, str) for p in parts):
        return "".join(parts)
    return pulumi.Output.concat(*parts)


def document(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": VERSION, "Statement": list(statements)}


def allow(actions: Sequence[str], resources: Any, sid: str, **extra: Any) -> dict[str, Any]:
    resource_list = list(resources) if isinstance(resources, (list, tuple)) else [resources]
    return {
        "Sid": sid,
        "Effect": "Allow",
        "Action": sorted(actions),
        "Resource": resource_list,
        **extra,
    }


# --- trust policies ----------------------------------------------------------------------------


def assume_role(service: str, *, source_account: Any = None) -> dict[str, Any]:
    """Trust `service` (e.g. ``lambda.amazonaws.com``); with ``source_account`` only on behalf
    of that account (the confused-deputy guard for services acting for many customers)."""
    statement: dict[str, Any] = {
        "Effect": "Allow",
        "Principal": {"Service": service},
        "Action": "sts:AssumeRole",
    }
    if source_account is not None:
        statement["Condition"] = {"StringEquals": {"aws:SourceAccount": source_account}}
    return {"Version": VERSION, "Statement": [statement]}


# --- the functions -----------------------------------------------------------------------------


@dataclass(frozen=True)
class S3Access:
    bucket: Literal["data", "model"]
    prefix: str
    write: bool = False


def stage_access(stage: Stage, layout: KeyLayout, model_prefix: str) -> tuple[S3Access, ...]:
    """What a stage reads and writes, as the stage registry says: prefixes of the key layout
    (keys.py) in the data bucket, or the model prefix in the model bucket."""

    def access(location: Location, write: bool) -> S3Access:
        if location == MODEL:
            return S3Access("model", model_prefix, write)
        return S3Access("data", getattr(layout, location), write)

    return (
        *(access(location, False) for location in stage.reads),
        *(access(location, True) for location in stage.writes),
    )


@dataclass(frozen=True)
class FunctionGrants:
    """The ARNs a function's role is granted (strings or Outputs)."""

    data_bucket_arn: Any
    model_bucket_arn: Any
    secret_arn: Any
    log_group_arn: Any
    partition: Any
    region: Any
    account_id: Any


def function_policy(
    stage: Stage, grants: FunctionGrants, layout: KeyLayout, model_prefix: str
) -> dict[str, Any]:
    buckets = {"data": grants.data_bucket_arn, "model": grants.model_bucket_arn}
    access = stage_access(stage, layout, model_prefix)
    statements: list[dict[str, Any]] = []
    for name, bucket_arn in buckets.items():
        readable = [a.prefix for a in access if a.bucket == name and not a.write]
        if readable:
            # Listing lets a missing key read as 404 (not 403), and is limited to the prefixes.
            statements.append(
                allow(
                    ["s3:ListBucket"],
                    bucket_arn,
                    f"List{name.title()}Prefixes",
                    Condition={"StringLike": {"s3:prefix": [f"{p}*" for p in readable]}},
                )
            )
            statements.append(
                allow(
                    ["s3:GetObject"],
                    [join(bucket_arn, "/", p, "*") for p in readable],
                    f"Read{name.title()}Objects",
                )
            )
        writable = [a.prefix for a in access if a.bucket == name and a.write]
        if writable:
            # Large uploads are multipart: PutObject covers the parts, Abort cleans up a failure.
            statements.append(
                allow(
                    ["s3:PutObject", "s3:AbortMultipartUpload"],
                    [join(bucket_arn, "/", p, "*") for p in writable],
                    f"Write{name.title()}Objects",
                )
            )
    statements.append(
        allow(["secretsmanager:GetSecretValue"], grants.secret_arn, "ReadDatabaseSecret")
    )
    statements.append(
        allow(
            ["logs:CreateLogStream", "logs:PutLogEvents"],
            join(grants.log_group_arn, ":*"),
            "WriteOwnLogs",
        )
    )
    # Lambda manages the function's network interfaces with the function's role.
    statements.append(
        allow(["ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets"], "*", "DescribeNetwork")
    )
    statements.append(
        allow(
            [
                "ec2:CreateNetworkInterface",
                "ec2:DeleteNetworkInterface",
                "ec2:AssignPrivateIpAddresses",
                "ec2:UnassignPrivateIpAddresses",
            ],
            join("arn:", grants.partition, ":ec2:", grants.region, ":", grants.account_id, ":*/*"),
            "ManageNetworkInterfaces",
        )
    )
    return document(*statements)


# --- the pipeline, the schedule, the bastion ---------------------------------------------------


def state_machine_policy(function_arns: Mapping[str, Any], *, logging: bool) -> dict[str, Any]:
    statements = [
        allow(["lambda:InvokeFunction"], list(function_arns.values()), "InvokeStageFunctions")
    ]
    if logging:
        statements.append(allow(list(LOG_DELIVERY_ACTIONS), "*", "DeliverExecutionLogs"))
    return document(*statements)


def scheduler_policy(state_machine_arn: Any, dead_letter_queue_arn: Any) -> dict[str, Any]:
    return document(
        allow(["states:StartExecution"], state_machine_arn, "StartPipeline"),
        allow(["sqs:SendMessage"], dead_letter_queue_arn, "DeadLetter"),
    )


def bastion_policy(partition: Any, region: Any, account_id: Any) -> dict[str, Any]:
    """Session Manager only (AWS's documented minimum for sessions): the agent registers the
    instance and opens the session channels. No Run Command, no parameters, no S3."""
    return document(
        allow(
            ["ssm:UpdateInstanceInformation"],
            join("arn:", partition, ":ec2:", region, ":", account_id, ":instance/*"),
            "RegisterWithSessionManager",
        ),
        allow(
            [
                "ssmmessages:CreateControlChannel",
                "ssmmessages:CreateDataChannel",
                "ssmmessages:OpenControlChannel",
                "ssmmessages:OpenDataChannel",
            ],
            "*",
            "SessionChannels",
        ),
    )


# --- resource policies -------------------------------------------------------------------------


def tls_only_bucket_policy(bucket_arn: Any) -> dict[str, Any]:
    """Deny any request to the bucket over plain HTTP or TLS older than 1.2."""
    resources = [bucket_arn, join(bucket_arn, "/*")]
    return document(
        {
            "Sid": "DenyInsecureTransport",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": resources,
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        },
        {
            "Sid": "DenyOldTls",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": resources,
            "Condition": {"NumericLessThan": {"s3:TlsVersion": "1.2"}},
        },
    )


def alert_topic_policy(topic_arn: Any, source_arns: Mapping[str, Any]) -> dict[str, Any]:
    """Let each AWS service publish to the topic only from the named rule or alarm
    (``{"events.amazonaws.com": rule_arn, "cloudwatch.amazonaws.com": alarm_arn}``)."""
    return document(
        *(
            {
                "Sid": f"PublishFrom{service.split('.')[0].title()}",
                "Effect": "Allow",
                "Principal": {"Service": service},
                "Action": "sns:Publish",
                "Resource": topic_arn,
                "Condition": {"ArnEquals": {"aws:SourceArn": source_arn}},
            }
            for service, source_arn in source_arns.items()
        )
    )
