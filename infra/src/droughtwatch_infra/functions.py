"""One function per step of the workflow registry (Plan, Processing, Inference, Observe, the day
step) from the one service image: each with its handler command, memory and timeout from config,
the DROUGHTWATCH_* environment its settings model reads, the private subnets, a log group with
retention, and its own role granted only the S3 prefixes it uses, `rds-db:connect` as
droughtwatch_app (IAM database authentication: no password, no secret) and its log group."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws
from droughtwatch_contract.database import APP_USER
from droughtwatch_contract.keys import KeyLayout
from droughtwatch_contract.settings import CommonSettings, DatabaseSettings, env_name
from droughtwatch_contract.stages import WORKFLOW, Step, Workflow

from droughtwatch_infra import policies
from droughtwatch_infra.children import ChildNames
from droughtwatch_infra.config import Retention, StageFunctions
from droughtwatch_infra.naming import Namer

# TLS to RDS, the certificate verified against the RDS CA bundle in the image: the service's
# own defaults, stated in the environment so that the deployed values are visible.
DATABASE_SSLMODE: str = CommonSettings.model_fields["database_sslmode"].default
DATABASE_SSLROOTCERT: str = CommonSettings.model_fields["database_sslrootcert"].default


@dataclass(frozen=True)
class BucketRef:
    name: pulumi.Input[str]
    arn: pulumi.Input[str]


@dataclass(frozen=True)
class DatabaseRef:
    address: pulumi.Input[str]
    port: pulumi.Input[int]
    name: str
    # What rds-db:connect names: an instance's DbiResourceId (db-...) or an Aurora cluster's
    # resource id (cluster-...).
    resource_id: pulumi.Input[str]


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
    accuracy_margin: float
    min_daily_images: int
    data_bucket: BucketRef
    model_bucket: BucketRef
    database: DatabaseRef
    subnet_ids: Sequence[pulumi.Input[str]]
    security_group_id: pulumi.Input[str]
    account: AccountRef
    # How long the data bucket keeps each product: the stages record each product's expiry
    # from the same numbers the lifecycle rules use.
    retention: Retention | None = None
    workflow: Workflow = field(default=WORKFLOW)
    # What must happen before the functions are created or updated (the migration run: new code
    # must meet the schema it expects). Children do not inherit a component's depends_on.
    after: Sequence[pulumi.Resource] = ()


def database_environment(
    model: type[DatabaseSettings], database: DatabaseRef, **values: Any
) -> dict[str, Any]:
    """The DROUGHTWATCH_DATABASE_* variables of a function whose settings model is ``model``:
    where the database is and how TLS is checked, plus ``values`` (how it authenticates)."""
    values = {
        "database_host": database.address,
        "database_port": pulumi.Output.from_input(database.port).apply(str),
        "database_name": database.name,
        "database_sslmode": DATABASE_SSLMODE,
        "database_sslrootcert": DATABASE_SSLROOTCERT,
        **values,
    }
    return {env_name(model, name): value for name, value in values.items()}


def environment(stage: Step, args: FunctionsArgs) -> dict[str, Any]:
    """The DROUGHTWATCH_* variables of one stage, named from its settings model: what every
    stage reads, plus the stack's values of the fields only some settings models have. The
    stages connect as droughtwatch_app with an IAM token: no secret ARN."""
    values: dict[str, Any] = {
        "data_bucket": args.data_bucket.name,
        **args.layout.prefix_settings(),
    }
    retention = args.retention
    optional = {
        "model_bucket": args.model_bucket.name,
        "model_prefix": args.model_prefix,
        "drift_threshold": str(args.drift_threshold),
        "accuracy_margin": str(args.accuracy_margin),
        "min_daily_images": str(args.min_daily_images),
    }
    if retention is not None:
        # unset (None): the product is kept, and the stage records no expiry
        kept = {
            "processed_retention_days": retention.processed_days,
            "report_retention_days": retention.report_days,
        }
        optional.update({name: str(days) for name, days in kept.items() if days is not None})
    model = stage.settings
    values.update({name: value for name, value in optional.items() if name in model.model_fields})
    return {
        **{env_name(model, name): value for name, value in values.items()},
        **database_environment(model, args.database, database_auth="iam", database_user=APP_USER),
    }


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
        for stage in args.workflow:
            function = self._function(child, stage, args)
            self.arns[stage.name] = function.arn
            self.names[stage.name] = args.namer.name(stage.name)
        self.register_outputs({"arns": self.arns, "names": self.names})

    def _function(
        self, child: ChildNames, stage: Step, args: FunctionsArgs
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
            description=f"droughtwatch {stage.name} function: its prefixes, database user and logs",
            assume_role_policy=pulumi.Output.json_dumps(
                policies.assume_role("lambda.amazonaws.com")
            ),
            opts=child.opts(stage.name),
        )
        account = args.account
        grants = policies.FunctionGrants(
            log_group_arn=log_group.arn,
            partition=account.partition,
            region=account.region,
            account_id=account.account_id,
            data_bucket_arn=args.data_bucket.arn,
            model_bucket_arn=args.model_bucket.arn,
            database_user_arn=policies.rds_db_user_arn(
                account.partition,
                account.region,
                account.account_id,
                args.database.resource_id,
                APP_USER,
            ),
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
            opts=child.opts(stage.name, depends_on=[policy, log_group, *args.after]),
        )
