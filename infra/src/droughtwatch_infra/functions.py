"""One function per stage of the registry (Processing, Inference, Observe) from the one service
image: each with its handler command, memory and timeout from config, the DROUGHTWATCH_*
environment its settings model reads, the private subnets, a log group with retention, and its
own role granted only the S3 prefixes, the secret and the log group it uses."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws
from droughtwatch_contract.keys import KeyLayout
from droughtwatch_contract.settings import ENV_PREFIX, CommonSettings
from droughtwatch_contract.stages import STAGES, Stage, StageRegistry
from pydantic import BaseModel

from droughtwatch_infra import policies
from droughtwatch_infra.children import ChildNames
from droughtwatch_infra.config import StageFunctions
from droughtwatch_infra.naming import Namer

# TLS to RDS, without verifying its certificate against a CA bundle (the image carries none):
# the service's own default, stated in the environment so the deployed value is visible.
DATABASE_SSLMODE: str = CommonSettings.model_fields["database_sslmode"].default


def env_name(model: type[BaseModel], field: str) -> str:
    """The environment variable behind a settings field; fails on a field the model lacks."""
    if field not in model.model_fields:
        raise KeyError(f"{model.__name__} has no setting {field!r}")
    return f"{ENV_PREFIX}{field.upper()}"


@dataclass(frozen=True)
class BucketRef:
    name: pulumi.Input[str]
    arn: pulumi.Input[str]


@dataclass(frozen=True)
class DatabaseRef:
    address: pulumi.Input[str]
    port: pulumi.Input[int]
    name: str
    secret_arn: pulumi.Input[str]


@dataclass(frozen=True)
class AccountRef:
    partition: pulumi.Input[str]
    region: str
    account_id: pulumi.Input[str]


@dataclass(frozen=True)
class FunctionsArgs:
    namer: Namer
    image_uri: pulumi.Input[str]
    functions: StageFunctions
    log_retention_days: int
    layout: KeyLayout
    model_prefix: str
    drift_threshold: float
    data_bucket: BucketRef
    model_bucket: BucketRef
    database: DatabaseRef
    subnet_ids: Sequence[pulumi.Input[str]]
    security_group_id: pulumi.Input[str]
    account: AccountRef
    stages: StageRegistry = field(default=STAGES)


def environment(stage: Stage, args: FunctionsArgs) -> dict[str, Any]:
    """The DROUGHTWATCH_* variables of one stage, named from its settings model: what every
    stage reads, plus the stack's values of the fields only some settings models have."""
    layout, database = args.layout, args.database
    values: dict[str, Any] = {
        "data_bucket": args.data_bucket.name,
        "raw_prefix": layout.raw,
        "processed_prefix": layout.processed,
        "predictions_prefix": layout.predictions,
        "reports_prefix": layout.reports,
        "database_secret_arn": database.secret_arn,
        "database_host": database.address,
        "database_port": pulumi.Output.from_input(database.port).apply(str),
        "database_name": database.name,
        "database_sslmode": DATABASE_SSLMODE,
    }
    optional = {
        "model_bucket": args.model_bucket.name,
        "model_prefix": args.model_prefix,
        "drift_threshold": str(args.drift_threshold),
    }
    model = stage.settings
    values.update({name: value for name, value in optional.items() if name in model.model_fields})
    return {env_name(model, name): value for name, value in values.items()}


class Functions(pulumi.ComponentResource):
    arns: dict[str, pulumi.Output[str]]
    names: dict[str, str]

    def __init__(
        self, name: str, args: FunctionsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("droughtwatch:infra:Functions", name, None, opts)
        self.arns = {}
        self.names = {}
        child = ChildNames(self, name)
        for stage in args.stages:
            function = self._function(child, stage, args)
            self.arns[stage.name] = function.arn
            self.names[stage.name] = args.namer.name(stage.name)
        self.register_outputs({"arns": self.arns, "names": self.names})

    def _function(
        self, child: ChildNames, stage: Stage, args: FunctionsArgs
    ) -> aws.lambda_.Function:
        function_name = args.namer.name(stage.name)
        settings = args.functions.for_stage(stage.name)
        log_group = aws.cloudwatch.LogGroup(
            child.name(stage.name),
            name=f"/aws/lambda/{function_name}",
            retention_in_days=args.log_retention_days,
            opts=child.opts(stage.name),
        )
        role = aws.iam.Role(
            child.name(stage.name),
            name=args.namer.name(f"{stage.name}-function"),
            description=f"droughtwatch {stage.name} function: its own prefixes, secret and logs",
            assume_role_policy=pulumi.Output.json_dumps(
                policies.assume_role("lambda.amazonaws.com")
            ),
            opts=child.opts(stage.name),
        )
        grants = policies.FunctionGrants(
            data_bucket_arn=args.data_bucket.arn,
            model_bucket_arn=args.model_bucket.arn,
            secret_arn=args.database.secret_arn,
            log_group_arn=log_group.arn,
            partition=args.account.partition,
            region=args.account.region,
            account_id=args.account.account_id,
        )
        policy = aws.iam.RolePolicy(
            child.name(stage.name),
            name=f"{stage.name}-least-privilege",
            role=role.id,
            policy=pulumi.Output.json_dumps(
                policies.function_policy(stage, grants, args.layout, args.model_prefix)
            ),
            opts=child.opts(stage.name),
        )
        return aws.lambda_.Function(
            child.name(stage.name),
            name=function_name,
            role=role.arn,
            package_type="Image",
            image_uri=args.image_uri,
            image_config={"commands": [stage.handler]},
            architectures=["x86_64"],
            memory_size=settings.memory_mb,
            timeout=settings.timeout_seconds,
            ephemeral_storage={"size": settings.ephemeral_storage_mb},
            environment={"variables": environment(stage, args)},
            vpc_config={
                "subnet_ids": list(args.subnet_ids),
                "security_group_ids": [args.security_group_id],
            },
            logging_config={"log_format": "Text", "log_group": log_group.name},
            # Lambda checks at creation that the role may manage network interfaces.
            opts=child.opts(stage.name, depends_on=[policy, log_group]),
        )
