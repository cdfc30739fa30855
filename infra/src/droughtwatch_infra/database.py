"""The ledger and metrics database: RDS PostgreSQL in the private subnets, encrypted, never
public, with the master password generated and rotated by RDS in Secrets Manager (only the
migrate function reads it) and IAM database authentication on (the stages' droughtwatch_app
user logs in with a token, not a password)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_random as random
from droughtwatch_contract.settings import CommonSettings

from droughtwatch_infra.children import ChildNames
from droughtwatch_infra.config import DatabaseConfig
from droughtwatch_infra.naming import Namer

# The service's defaults: the database the handlers connect to, and how.
DATABASE_NAME: str = CommonSettings.model_fields["database_name"].default
DATABASE_PORT: int = CommonSettings.model_fields["database_port"].default
MASTER_USERNAME = "droughtwatch_admin"
ENGINE = "postgres"


def final_snapshot_identifier(namer: Namer, suffix: str) -> str:
    """``<stack>-db-final-<suffix>``: the suffix is new with each database instance, so that the
    final snapshot of a recreated database does not collide with its predecessor's (RDS
    refuses to delete an instance whose final snapshot name is taken)."""
    return f"{namer.name('db-final')}-{suffix}"


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
    resource_id: pulumi.Output[str]

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
        identifier = args.namer.name("db")
        final_snapshot = None
        if config.final_snapshot:
            # Random per instance: replaced with the stack's database (a stack destroyed and
            # created again gets a new one) and whenever an input that makes RDS replace the
            # instance changes (its keepers).
            suffix = random.RandomId(
                child.name("final-snapshot"),
                byte_length=4,
                keepers={
                    "identifier": identifier,
                    "engine": ENGINE,
                    "db_name": DATABASE_NAME,
                    "username": MASTER_USERNAME,
                },
                opts=child.opts("final-snapshot"),
            )
            final_snapshot = suffix.hex.apply(
                lambda hex_: final_snapshot_identifier(args.namer, hex_)
            )
        instance = aws.rds.Instance(
            child.name("postgres"),
            identifier=identifier,
            engine=ENGINE,
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
            # The stages log in as droughtwatch_app with a 15-minute token (rds-db:connect).
            iam_database_authentication_enabled=True,
            db_subnet_group_name=subnets.name,
            vpc_security_group_ids=[args.security_group_id],
            publicly_accessible=False,
            multi_az=config.multi_az,
            backup_retention_period=config.backup_retention_days,
            copy_tags_to_snapshot=True,
            deletion_protection=args.deletion_protection,
            skip_final_snapshot=not config.final_snapshot,
            final_snapshot_identifier=final_snapshot,
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
        self.resource_id = instance.resource_id
        self.register_outputs(
            {
                "address": self.address,
                "port": self.port,
                "endpoint": self.endpoint,
                "secret_arn": self.secret_arn,
                "resource_id": self.resource_id,
            }
        )
