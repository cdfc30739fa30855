"""The ledger and metrics database: RDS PostgreSQL in the private subnets, encrypted, never
public, with the master password generated and rotated by RDS in Secrets Manager."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
from droughtwatch_contract.settings import CommonSettings

from droughtwatch_infra.children import ChildNames
from droughtwatch_infra.config import DatabaseConfig
from droughtwatch_infra.naming import Namer

# The service's defaults: the database the handlers connect to, and how.
DATABASE_NAME: str = CommonSettings.model_fields["database_name"].default
DATABASE_PORT: int = CommonSettings.model_fields["database_port"].default
MASTER_USERNAME = "droughtwatch_admin"


@dataclass(frozen=True)
class DatabaseArgs:
    namer: Namer
    config: DatabaseConfig
    subnet_ids: Sequence[pulumi.Input[str]]
    security_group_id: pulumi.Input[str]
    deletion_protection: bool


class Database(pulumi.ComponentResource):
    address: pulumi.Output[str]
    port: pulumi.Output[int]
    endpoint: pulumi.Output[str]
    name: str
    secret_arn: pulumi.Output[str]

    def __init__(
        self, name: str, args: DatabaseArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("droughtwatch:infra:Database", name, None, opts)
        child = ChildNames(self, name)
        config = args.config
        subnets = aws.rds.SubnetGroup(
            child.name("subnets"),
            name=args.namer.name("db"),
            description="droughtwatch database: private subnets in two zones",
            subnet_ids=list(args.subnet_ids),
            opts=child.opts("subnets"),
        )
        instance = aws.rds.Instance(
            child.name("postgres"),
            identifier=args.namer.name("db"),
            engine="postgres",
            engine_version=config.engine_version,
            instance_class=config.instance_class,
            allocated_storage=config.allocated_storage_gb,
            max_allocated_storage=config.max_allocated_storage_gb,
            storage_type="gp3",
            storage_encrypted=True,
            db_name=DATABASE_NAME,
            port=DATABASE_PORT,
            username=MASTER_USERNAME,
            # RDS creates the password and keeps it in Secrets Manager (and rotates it); the
            # stack never sees it.
            manage_master_user_password=True,
            db_subnet_group_name=subnets.name,
            vpc_security_group_ids=[args.security_group_id],
            publicly_accessible=False,
            multi_az=config.multi_az,
            backup_retention_period=config.backup_retention_days,
            copy_tags_to_snapshot=True,
            deletion_protection=args.deletion_protection,
            skip_final_snapshot=not config.final_snapshot,
            final_snapshot_identifier=(
                args.namer.name("db-final") if config.final_snapshot else None
            ),
            auto_minor_version_upgrade=True,
            # Major upgrades are a deliberate change of engine_version, applied in the
            # maintenance window unless applied by hand.
            allow_major_version_upgrade=True,
            opts=child.opts("postgres"),
        )
        self.address = instance.address
        self.port = instance.port
        self.endpoint = instance.endpoint
        self.name = DATABASE_NAME
        self.secret_arn = instance.master_user_secrets.apply(
            lambda secrets: secrets[0].secret_arn if secrets else None
        )
        self.register_outputs(
            {
                "address": self.address,
                "port": self.port,
                "endpoint": self.endpoint,
                "secret_arn": self.secret_arn,
            }
        )
