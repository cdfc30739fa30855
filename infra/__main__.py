"""droughtwatch on AWS, one stack: the wiring of the components in dependency order, and the
outputs the CLI (`droughtwatch upload | run | tunnel`) reads."""

import shlex
from pathlib import Path

import pulumi
import pulumi_aws as aws
from droughtwatch_contract.keys import KeyLayout
from droughtwatch_contract.outputs import StackOutput as Out
from droughtwatch_contract.outputs import port_forward_command
from droughtwatch_infra import config
from droughtwatch_infra.alerts import Alerts, AlertsArgs
from droughtwatch_infra.bastion import Bastion, BastionArgs
from droughtwatch_infra.database import Database, DatabaseArgs
from droughtwatch_infra.endpoints import Endpoints, EndpointsArgs
from droughtwatch_infra.functions import (
    AccountRef,
    BucketRef,
    DatabaseRef,
    Functions,
    FunctionsArgs,
)
from droughtwatch_infra.image import ImageArgs, ServiceImage
from droughtwatch_infra.migration import (
    Migration,
    MigrationArgs,
    grafana_secret_arn_pattern,
    repository_migrations_digest,
)
from droughtwatch_infra.naming import Namer
from droughtwatch_infra.pipeline import Pipeline, PipelineArgs
from droughtwatch_infra.schedule import Schedule, ScheduleArgs
from droughtwatch_infra.security_groups import SecurityGroups, SecurityGroupsArgs
from droughtwatch_infra.storage import Storage, StorageArgs
from droughtwatch_infra.vpc import Vpc, VpcArgs

REPOSITORY = Path(__file__).resolve().parent.parent

cfg = config.load()
namer = Namer(pulumi.get_project(), pulumi.get_stack())
layout = KeyLayout()
account_id = aws.get_caller_identity_output().account_id
partition = aws.get_partition_output().partition

vpc = Vpc("network", VpcArgs(namer=namer, cidr=cfg.vpc_cidr, public_subnet=cfg.bastion_enabled))
groups = SecurityGroups(
    "security-groups",
    SecurityGroupsArgs(namer=namer, vpc_id=vpc.vpc_id, bastion=cfg.bastion_enabled),
)
storage = Storage(
    "storage",
    StorageArgs(
        namer=namer,
        account_id=account_id,
        force_destroy=not cfg.deletion_protection,
        retention=cfg.retention,
        layout=layout,
    ),
)
database = Database(
    "database",
    DatabaseArgs(
        namer=namer,
        config=cfg.database,
        subnet_ids=vpc.private_subnet_ids,
        security_group_id=groups.database_security_group_id,
        deletion_protection=cfg.deletion_protection,
    ),
)
account = AccountRef(partition=partition, region=cfg.region, account_id=account_id)
endpoints = Endpoints(
    "endpoints",
    EndpointsArgs(
        namer=namer,
        region=cfg.region,
        vpc_id=vpc.vpc_id,
        subnet_ids=vpc.private_subnet_ids,
        route_table_id=vpc.private_route_table_id,
        client_security_group_id=groups.lambda_security_group_id,
        account_id=account_id,
        bucket_arns=[storage.data.arn, storage.models.arn],
        # On Aurora the migrate function uses the Data API from outside the VPC: no endpoint.
        secret_arns=(
            None
            if database.data_api_arn is not None
            else [database.secret_arn, grafana_secret_arn_pattern(namer, account)]
        ),
    ),
)
image = ServiceImage(
    "image",
    ImageArgs(
        namer=namer,
        context=REPOSITORY,
        dockerfile=REPOSITORY / "services" / "inference" / "Dockerfile",
        keep_count=cfg.image_keep_count,
        force_delete=not cfg.deletion_protection,
    ),
)
database_ref = DatabaseRef(database.address, database.port, database.name, database.resource_id)
migration = Migration(
    "migration",
    MigrationArgs(
        namer=namer,
        image_uri=image.uri,
        database=database_ref,
        master_secret_arn=database.secret_arn,
        migrations_sha256=repository_migrations_digest(REPOSITORY),
        log_retention_days=cfg.log_retention_days,
        subnet_ids=vpc.private_subnet_ids,
        security_group_id=groups.lambda_security_group_id,
        account=account,
        network=[groups, endpoints, database.ready],
        data_api_arn=database.data_api_arn,
    ),
)
functions = Functions(
    "functions",
    FunctionsArgs(
        namer=namer,
        image_uri=image.uri,
        functions=cfg.functions,
        log_retention_days=cfg.log_retention_days,
        layout=layout,
        model_prefix=cfg.model_prefix,
        drift_threshold=cfg.drift_threshold,
        accuracy_margin=cfg.accuracy_margin,
        min_daily_images=cfg.min_daily_images,
        data_bucket=BucketRef(storage.data.name, storage.data.arn),
        model_bucket=BucketRef(storage.models.name, storage.models.arn),
        database=database_ref,
        subnet_ids=vpc.private_subnet_ids,
        security_group_id=groups.lambda_security_group_id,
        account=account,
        retention=cfg.retention,
        # New code meets the schema it expects: the stages roll out after the migration ran.
        after=[migration.invocation],
    ),
)
pipeline = Pipeline(
    "pipeline",
    PipelineArgs(
        namer=namer,
        function_arns=functions.arns,
        timeouts=cfg.timeouts,
        account_id=account_id,
        log_retention_days=cfg.log_retention_days,
        log_level=cfg.pipeline_log_level,
        partition=partition,
        max_concurrency=cfg.max_concurrency,
        tolerated_failure_percentage=cfg.tolerated_failure_percentage,
    ),
)
schedule = Schedule(
    "schedule",
    ScheduleArgs(
        namer=namer,
        state_machine_arn=pipeline.arn,
        account_id=account_id,
        expression=cfg.schedule_expression,
        timezone=cfg.schedule_timezone,
        enabled=cfg.schedule_enabled,
        retry_attempts=cfg.schedule_retry_attempts,
        max_event_age_seconds=cfg.schedule_max_event_age_seconds,
    ),
)
alerts = Alerts(
    "alerts",
    AlertsArgs(
        namer=namer,
        region=cfg.region,
        state_machine_arn=pipeline.arn,
        dead_letter_queue_name=schedule.dead_letter_queue_name,
        email=cfg.alert_email,
    ),
)

pulumi.export(Out.REGION, cfg.region)
pulumi.export(Out.DATA_BUCKET, storage.data.name)
pulumi.export(Out.MODEL_BUCKET, storage.models.name)
pulumi.export(Out.MODEL_PREFIX, cfg.model_prefix)
pulumi.export(Out.STATE_MACHINE_ARN, pipeline.arn)
pulumi.export(Out.DATABASE_ENDPOINT, database.endpoint)
pulumi.export(Out.DATABASE_ADDRESS, database.address)
pulumi.export(Out.DATABASE_PORT, database.port)
pulumi.export(Out.DATABASE_NAME, database.name)
pulumi.export(Out.DATABASE_SECRET_ARN, database.secret_arn)
pulumi.export(Out.GRAFANA_SECRET_ARN, migration.grafana_secret_arn)
pulumi.export(Out.MIGRATE_FUNCTION_NAME, migration.function_name)
pulumi.export(Out.IMAGE_URI, image.uri)
pulumi.export(Out.FUNCTION_NAMES, functions.names)
pulumi.export(Out.ALERT_TOPIC_ARN, alerts.topic_arn)
pulumi.export(Out.SCHEDULE_NAME, schedule.name)
pulumi.export(Out.DEAD_LETTER_QUEUE_URL, schedule.dead_letter_queue_url)

if cfg.bastion_enabled:
    bastion = Bastion(
        "bastion",
        BastionArgs(
            namer=namer,
            instance_type=cfg.bastion_instance_type,
            arm64=cfg.bastion_arm64,
            subnet_id=vpc.public_subnet_id,
            security_group_id=groups.bastion_security_group_id,
            partition=partition,
            region=cfg.region,
            account_id=account_id,
            grafana_secret_arn=migration.grafana_secret_arn,
            mode="always" if cfg.bastion == "always" else "on-demand",
            idle_minutes=cfg.bastion_idle_minutes,
        ),
    )
    pulumi.export(Out.BASTION_INSTANCE_ID, bastion.instance_id)
    pulumi.export(Out.OPERATOR_POLICY, bastion.operator_policy)
    pulumi.export(
        Out.TUNNEL_COMMAND,
        pulumi.Output.all(bastion.instance_id, database.address, database.port).apply(
            lambda v: shlex.join(port_forward_command(v[0], v[1], v[2], v[2], cfg.region))
        ),
    )
