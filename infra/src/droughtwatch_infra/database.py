"""The ledger and metrics database, of one of two kinds (stack setting ``database.kind``):

- ``aurora-serverless``: an Aurora PostgreSQL Serverless v2 cluster with one ``db.serverless``
  instance that pauses at 0 capacity after ``seconds_until_auto_pause`` without connections
  (storage and backups bill while it is paused, compute does not) and resumes on the next
  connection; its Data API (HTTP endpoint) lets the migrate function run outside the VPC. TLS is
  enforced with a cluster parameter group (Aurora's ``rds.force_ssl`` defaults to off).
- ``instance``: an RDS PostgreSQL instance, billed every hour (PostgreSQL 15 and later enforce
  TLS by default).

Either way: in the private subnets, encrypted, never public, with the master password generated
and rotated by RDS in Secrets Manager (only the migrate function reads it), and IAM database
authentication on (the stages' droughtwatch_app user logs in with a token, not a password).
"""

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
AURORA_ENGINE = "aurora-postgresql"
SERVERLESS_INSTANCE_CLASS = "db.serverless"


def final_snapshot_identifier(namer: Namer, suffix: str) -> str:
    """``<stack>-db-final-<suffix>``: the suffix is new with each database, so that the final
    snapshot of a recreated database does not collide with its predecessor's (RDS refuses to
    delete a database whose final snapshot name is taken)."""
    return f"{namer.name('db-final')}-{suffix}"


def parameter_group_family(version: str) -> str:
    """The cluster parameter group family of an Aurora PostgreSQL version (16.6 -> ...16)."""
    return f"{AURORA_ENGINE}{version.split('.', 1)[0]}"


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
    # What rds-db:connect names: the instance's DbiResourceId (db-...) or the cluster's
    # resource id (cluster-...).
    resource_id: pulumi.Output[str]
    # The Aurora cluster's ARN, which the RDS Data API takes; None for an instance.
    data_api_arn: pulumi.Output[str] | None
    # What takes connections (the instance, or the cluster's writer): the migration waits for it.
    ready: pulumi.Resource

    def __init__(
        self, name: str, args: DatabaseArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("droughtwatch:infra:Database", name, None, opts)
        child = ChildNames(self, name)
        subnets = aws.rds.SubnetGroup(
            child.name("subnets"),
            name=args.namer.name("db"),
            description="droughtwatch database: private subnets in two zones",
            subnet_ids=list(args.subnet_ids),
            opts=child.opts("subnets"),
        )
        self.name = DATABASE_NAME
        if args.config.aurora:
            self._cluster(child, args, subnets)
        else:
            self._instance(child, args, subnets)
        self.register_outputs(
            {
                "address": self.address,
                "port": self.port,
                "endpoint": self.endpoint,
                "secret_arn": self.secret_arn,
                "resource_id": self.resource_id,
                "data_api_arn": self.data_api_arn,
            }
        )

    def _final_snapshot(
        self, child: ChildNames, args: DatabaseArgs, identifier: str, engine: str
    ) -> pulumi.Output[str] | None:
        if not args.config.final_snapshot:
            return None
        # Random per database: replaced with the stack's database (a stack destroyed and
        # created again gets a new one) and whenever an input that makes RDS replace the
        # database changes (its keepers).
        suffix = random.RandomId(
            child.name("final-snapshot"),
            byte_length=4,
            keepers={
                "identifier": identifier,
                "engine": engine,
                "db_name": DATABASE_NAME,
                "username": MASTER_USERNAME,
            },
            opts=child.opts("final-snapshot"),
        )
        return suffix.hex.apply(lambda hex_: final_snapshot_identifier(args.namer, hex_))

    def _instance(
        self, child: ChildNames, args: DatabaseArgs, subnets: aws.rds.SubnetGroup
    ) -> None:
        config = args.config
        identifier = args.namer.name("db")
        instance = aws.rds.Instance(
            child.name("postgres"),
            identifier=identifier,
            engine=ENGINE,
            engine_version=config.version,
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
            final_snapshot_identifier=self._final_snapshot(child, args, identifier, ENGINE),
            auto_minor_version_upgrade=True,
            # Major upgrades are a deliberate change of engine_version, applied in the
            # maintenance window unless applied by hand.
            allow_major_version_upgrade=True,
            opts=child.opts("postgres"),
        )
        self.address = instance.address
        self.port = instance.port
        self.endpoint = instance.endpoint
        self.secret_arn = _managed_secret_arn(instance)
        self.resource_id = instance.resource_id
        self.data_api_arn = None
        self.ready = instance

    def _cluster(self, child: ChildNames, args: DatabaseArgs, subnets: aws.rds.SubnetGroup) -> None:
        config = args.config
        identifier = args.namer.name("db")
        parameters = aws.rds.ClusterParameterGroup(
            child.name("cluster-parameters"),
            name=args.namer.name("db-cluster"),
            family=parameter_group_family(config.version),
            description="droughtwatch database: TLS required",
            # Aurora PostgreSQL accepts plain connections unless told otherwise.
            parameters=[{"name": "rds.force_ssl", "value": "1"}],
            opts=child.opts("cluster-parameters"),
        )
        cluster = aws.rds.Cluster(
            child.name("cluster"),
            cluster_identifier=identifier,
            engine=AURORA_ENGINE,
            engine_mode="provisioned",  # Serverless v2 is a provisioned cluster's db.serverless
            engine_version=config.version,
            serverlessv2_scaling_configuration={
                "min_capacity": config.min_capacity,
                "max_capacity": config.max_capacity,
                # only meaningful (and only accepted) with a minimum of 0
                "seconds_until_auto_pause": (
                    config.seconds_until_auto_pause if config.min_capacity == 0 else None
                ),
            },
            database_name=DATABASE_NAME,
            port=DATABASE_PORT,
            master_username=MASTER_USERNAME,
            manage_master_user_password=True,
            iam_database_authentication_enabled=True,
            # The RDS Data API: the migrate function's way in, outside the VPC.
            enable_http_endpoint=True,
            db_cluster_parameter_group_name=parameters.name,
            db_subnet_group_name=subnets.name,
            vpc_security_group_ids=[args.security_group_id],
            storage_encrypted=True,
            backup_retention_period=config.backup_retention_days,
            copy_tags_to_snapshot=True,
            deletion_protection=args.deletion_protection,
            skip_final_snapshot=not config.final_snapshot,
            final_snapshot_identifier=self._final_snapshot(child, args, identifier, AURORA_ENGINE),
            allow_major_version_upgrade=True,
            opts=child.opts("cluster"),
        )
        writer = aws.rds.ClusterInstance(
            child.name("cluster-writer"),
            identifier=args.namer.name("db-writer"),
            cluster_identifier=cluster.id,
            instance_class=SERVERLESS_INSTANCE_CLASS,
            engine=AURORA_ENGINE,
            engine_version=cluster.engine_version,
            db_subnet_group_name=subnets.name,
            publicly_accessible=False,
            auto_minor_version_upgrade=True,
            opts=child.opts("cluster-writer"),
        )
        self.address = cluster.endpoint  # the writer endpoint's host name
        self.port = cluster.port
        self.endpoint = pulumi.Output.concat(cluster.endpoint, ":", cluster.port.apply(str))
        self.secret_arn = _managed_secret_arn(cluster)
        self.resource_id = cluster.cluster_resource_id
        self.data_api_arn = cluster.arn
        self.ready = writer


def _managed_secret_arn(database: aws.rds.Instance | aws.rds.Cluster) -> pulumi.Output[str | None]:
    """The ARN of the master user's secret that RDS manages for ``database``."""
    return database.master_user_secrets.apply(
        lambda secrets: secrets[0].secret_arn if secrets else None
    )
