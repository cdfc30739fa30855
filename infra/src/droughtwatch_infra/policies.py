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
from droughtwatch_contract.outputs import PORT_FORWARD_DOCUMENT
from droughtwatch_contract.stages import MODEL, Location, Step

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
        # `droughtwatch tunnel`: the bastion's state, and whether its agent is online.
        "ec2:DescribeInstances",
        "ssm:DescribeInstanceInformation",
    }
)
# What the stages do with objects (and so all the S3 gateway endpoint lets through).
S3_READ_ACTIONS = ("s3:GetObject",)
S3_WRITE_ACTIONS = ("s3:PutObject", "s3:AbortMultipartUpload")
S3_LIST_ACTIONS = ("s3:ListBucket",)
# The RDS Data API calls of one transaction (the migrate function on Aurora).
DATA_API_ACTIONS = (
    "rds-data:BeginTransaction",
    "rds-data:ExecuteStatement",
    "rds-data:CommitTransaction",
    "rds-data:RollbackTransaction",
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
    list_only: bool = False  # the keys under the prefix, not the objects


def stage_access(stage: Step, layout: KeyLayout, model_prefix: str) -> tuple[S3Access, ...]:
    """What a step lists, reads and writes, as the workflow registry says: prefixes of the key
    layout (keys.py) in the data bucket, or the model prefix in the model bucket."""

    def access(location: Location, write: bool, list_only: bool = False) -> S3Access:
        if location == MODEL:
            return S3Access("model", model_prefix, write, list_only)
        return S3Access("data", getattr(layout, location), write, list_only)

    return (
        *(access(location, False, list_only=True) for location in stage.lists),
        *(access(location, False) for location in stage.reads),
        *(access(location, True) for location in stage.writes),
    )


def rds_db_user_arn(
    partition: Any, region: Any, account_id: Any, resource_id: Any, user: str
) -> Any:
    """What ``rds-db:connect`` names: one database user of one instance (by its DbiResourceId,
    ``db-...``, which survives a rename and is never reused)."""
    return join(
        "arn:", partition, ":rds-db:", region, ":", account_id, ":dbuser:", resource_id, "/", user
    )


@dataclass(frozen=True)
class LambdaGrants:
    """What any of the stack's functions needs to run in the VPC and log (strings or Outputs)."""

    log_group_arn: Any
    partition: Any
    region: Any
    account_id: Any


def _lambda_runtime(grants: LambdaGrants, *, in_vpc: bool = True) -> list[dict[str, Any]]:
    """Its own log group, and (``in_vpc``) the network interfaces Lambda manages with the
    function's role."""
    logs = allow(
        ["logs:CreateLogStream", "logs:PutLogEvents"],
        join(grants.log_group_arn, ":*"),
        "WriteOwnLogs",
    )
    if not in_vpc:
        return [logs]
    return [
        logs,
        allow(["ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets"], "*", "DescribeNetwork"),
        allow(
            [
                "ec2:CreateNetworkInterface",
                "ec2:DeleteNetworkInterface",
                "ec2:AssignPrivateIpAddresses",
                "ec2:UnassignPrivateIpAddresses",
            ],
            join("arn:", grants.partition, ":ec2:", grants.region, ":", grants.account_id, ":*/*"),
            "ManageNetworkInterfaces",
        ),
    ]


@dataclass(frozen=True)
class FunctionGrants(LambdaGrants):
    """The ARNs a stage function's role is granted (strings or Outputs)."""

    data_bucket_arn: Any
    model_bucket_arn: Any
    # rds_db_user_arn(...) of the stages' database user (droughtwatch_app).
    database_user_arn: Any


def function_policy(
    stage: Step, grants: FunctionGrants, layout: KeyLayout, model_prefix: str
) -> dict[str, Any]:
    """A step's role: its S3 prefixes, its database user over IAM authentication, its logs.
    No Secrets Manager: the steps hold no password."""
    buckets = {"data": grants.data_bucket_arn, "model": grants.model_bucket_arn}
    access = stage_access(stage, layout, model_prefix)
    statements: list[dict[str, Any]] = []
    for name, bucket_arn in buckets.items():
        listed = [a.prefix for a in access if a.bucket == name and a.list_only]
        readable = [
            a.prefix for a in access if a.bucket == name and not a.write and not a.list_only
        ]
        if listed and not readable:
            # Listing alone (a step that reads no object of this bucket): only under the
            # prefixes it lists. Plan reads the label files too, so it gets the read grant
            # below, whose listing covers raw/.
            statements.append(
                allow(
                    ["s3:ListBucket"],
                    bucket_arn,
                    f"List{name.title()}Prefixes",
                    Condition={"StringLike": {"s3:prefix": [f"{p}*" for p in listed]}},
                )
            )
        if readable:
            # S3 answers a GetObject on a missing key with 404 only to a caller allowed
            # s3:ListBucket on the bucket, else with 403. That check carries no s3:prefix, so a
            # listing limited by an s3:prefix condition does not pass it: the grant is on the
            # bucket without a condition. It shows key names in this bucket, not contents.
            statements.append(allow(list(S3_LIST_ACTIONS), bucket_arn, f"List{name.title()}Bucket"))
            statements.append(
                allow(
                    list(S3_READ_ACTIONS),
                    [join(bucket_arn, "/", p, "*") for p in readable],
                    f"Read{name.title()}Objects",
                )
            )
        writable = [a.prefix for a in access if a.bucket == name and a.write]
        if writable:
            # Large uploads are multipart: PutObject covers the parts, Abort cleans up a failure.
            statements.append(
                allow(
                    list(S3_WRITE_ACTIONS),
                    [join(bucket_arn, "/", p, "*") for p in writable],
                    f"Write{name.title()}Objects",
                )
            )
    statements.append(allow(["rds-db:connect"], grants.database_user_arn, "ConnectAsAppUser"))
    statements.extend(_lambda_runtime(grants))
    return document(*statements)


def migrate_policy(
    grants: LambdaGrants, secret_arns: Sequence[Any], data_api_cluster_arn: Any = None
) -> dict[str, Any]:
    """The migrate function's role: the master secret (to migrate as the owner) and the Grafana
    user's secret (to set its password), its logs. The only role that reads the master secret.

    On Aurora (``data_api_cluster_arn``) it runs outside the VPC and sends its SQL through the
    RDS Data API of that cluster only; the Data API reads the master secret with the caller's
    permission (so GetSecretValue stays), and the role needs no network interfaces."""
    statements = [
        allow(["secretsmanager:GetSecretValue"], list(secret_arns), "ReadDatabaseSecrets")
    ]
    if data_api_cluster_arn is not None:
        statements.append(
            allow(list(DATA_API_ACTIONS), data_api_cluster_arn, "RunSqlThroughDataApi")
        )
    statements.extend(_lambda_runtime(grants, in_vpc=data_api_cluster_arn is None))
    return document(*statements)


# --- the pipeline, the schedule, the bastion ---------------------------------------------------


def state_machine_policy(function_arns: Mapping[str, Any], *, logging: bool) -> dict[str, Any]:
    statements = [
        allow(["lambda:InvokeFunction"], list(function_arns.values()), "InvokeStageFunctions")
    ]
    if logging:
        statements.append(allow(list(LOG_DELIVERY_ACTIONS), "*", "DeliverExecutionLogs"))
    return document(*statements)


def children_executions_arn(state_machine_arn: str) -> str:
    """The ARNs of a state machine's Distributed Map children: each runs as an execution of
    ``<machine>/<map run label>`` (arn:...:execution:<machine>/<label>:<id>)."""
    return state_machine_arn.replace(":stateMachine:", ":execution:", 1) + "/*"


def map_run_policy(state_machine_arn: Any, children_arn: Any) -> dict[str, Any]:
    """What the Distributed Map needs of the state machine's role: to start its children (as
    executions of the machine itself), and to describe and stop them; nothing wider."""
    return document(
        allow(["states:StartExecution"], state_machine_arn, "StartMapChildren"),
        allow(
            ["states:DescribeExecution", "states:StopExecution"],
            children_arn,
            "FollowMapChildren",
        ),
    )


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


def operator_policy(
    partition: Any,
    region: Any,
    account_id: Any,
    instance_id: Any,
    grafana_secret_arn: Any,
    *,
    may_start: bool = False,
) -> dict[str, Any]:
    """What an operator needs for `droughtwatch tunnel` and `droughtwatch grafana --stack`: a
    Session Manager session on the bastion with the port forwarding document only, and the
    read-only Grafana user's secret; to see whether the bastion runs and its agent is online;
    and, for an on-demand bastion (``may_start``), to start that instance (only that one: it
    stops itself when idle, so no one needs to stop it).

    Listing the document beside the instance, with ssm:SessionDocumentAccessCheck, makes Session
    Manager check the document of every session: a session without ``--document-name`` (the
    default shell document, SSM-SessionManagerRunShell) is refused (AWS's "enforce a session
    document permission check"). An operator ends and resumes only their own sessions."""
    ssm = join("arn:", partition, ":ssm:", region, ":")
    own_sessions = join(ssm, account_id, ":session/${aws:userid}-*")
    bastion = join("arn:", partition, ":ec2:", region, ":", account_id, ":instance/", instance_id)
    # AWS's own documents carry no account id in their ARN.
    port_forwarding = join(ssm, ":document/", PORT_FORWARD_DOCUMENT)
    return document(
        allow(
            ["ssm:StartSession"],
            [bastion, port_forwarding],
            "PortForwardThroughTheBastionOnly",
            Condition={"BoolIfExists": {"ssm:SessionDocumentAccessCheck": "true"}},
        ),
        allow(["ssm:TerminateSession", "ssm:ResumeSession"], own_sessions, "OwnSessions"),
        allow(["ssmmessages:OpenDataChannel"], own_sessions, "OwnSessionChannels"),
        allow(["secretsmanager:GetSecretValue"], grafana_secret_arn, "ReadGrafanaSecret"),
        allow(
            ["ec2:DescribeInstances", "ssm:DescribeInstanceInformation"],
            "*",
            "SeeWhetherTheBastionIsUp",
        ),
        *([allow(["ec2:StartInstances"], bastion, "StartTheBastion")] if may_start else []),
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


def s3_endpoint_policy(bucket_arns: Sequence[Any], account_id: Any) -> dict[str, Any]:
    """The S3 gateway endpoint's policy: what the stages do, on this stack's buckets only, by
    this account's principals. A function cannot copy data out to another bucket through it
    (there is no other way out of the private subnets). Lambda itself needs nothing of it: it
    pulls the image and ships the logs outside the VPC."""
    by_account = _this_accounts_principals(account_id)
    return document(
        allow(
            [*S3_READ_ACTIONS, *S3_WRITE_ACTIONS],
            [join(arn, "/*") for arn in bucket_arns],
            "ThisStacksObjects",
            **by_account,
        ),
        allow(list(S3_LIST_ACTIONS), list(bucket_arns), "ListThisStacksBuckets", **by_account),
    )


def _this_accounts_principals(account_id: Any) -> dict[str, Any]:
    """An endpoint policy statement's principal: any, of this account only."""
    return {"Principal": "*", "Condition": {"StringEquals": {"aws:PrincipalAccount": account_id}}}


def secrets_endpoint_policy(secret_arns: Sequence[Any], account_id: Any) -> dict[str, Any]:
    """The Secrets Manager interface endpoint's policy (the ``instance`` database kind only):
    the database secrets the migrate function reads, by this account's principals."""
    return document(
        allow(
            ["secretsmanager:GetSecretValue"],
            list(secret_arns),
            "ThisStacksDatabaseSecrets",
            **_this_accounts_principals(account_id),
        )
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
