"""The database component, of either kind: an RDS PostgreSQL instance, or an Aurora PostgreSQL
Serverless v2 cluster that pauses when idle; both in the private subnets, never public,
encrypted, TLS only, with the master password managed by RDS, IAM authentication and automated
backups; deletion protection and the final snapshot from config."""

from __future__ import annotations

from typing import Any

import pytest
from droughtwatch_contract.settings import CommonSettings
from droughtwatch_infra.config import DatabaseConfig
from droughtwatch_infra.database import Database, DatabaseArgs
from droughtwatch_infra.naming import Namer
from pydantic import ValidationError


def build(config: DatabaseConfig, protected: bool) -> Any:
    def program() -> Any:
        database = Database(
            "database",
            DatabaseArgs(Namer("droughtwatch", "dev"), config, ["subnet-a", "subnet-b"],
                         "sg-database", protected),
        )  # fmt: skip
        return {"secret_arn": database.secret_arn, "endpoint": database.endpoint}

    return program


def test_database_is_private_encrypted_and_backed_up(infra: Any) -> None:
    stack = infra.run(build(DatabaseConfig(), protected=True))
    db = stack.one("aws:rds/instance:Instance").inputs
    assert db["identifier"] == "droughtwatch-dev-db"
    assert db["engine"] == "postgres"
    assert db["engineVersion"] == "17"
    assert db["instanceClass"] == "db.t4g.micro"
    assert db["publiclyAccessible"] is False
    assert db["storageEncrypted"] is True
    assert db["manageMasterUserPassword"] is True
    assert "password" not in db and "passwordWo" not in db
    assert db["backupRetentionPeriod"] == 7
    assert db["deletionProtection"] is True
    assert db["skipFinalSnapshot"] is False
    assert db["vpcSecurityGroupIds"] == ["sg-database"]
    # The database the handlers connect to is the service's default name.
    assert db["dbName"] == CommonSettings.model_fields["database_name"].default
    subnets = stack.one("aws:rds/subnetGroup:SubnetGroup").inputs
    assert subnets["subnetIds"] == ["subnet-a", "subnet-b"]
    assert db["dbSubnetGroupName"] == subnets["name"]


def test_secret_arn_is_the_rds_managed_secret(infra: Any) -> None:
    stack = infra.run(build(DatabaseConfig(), protected=True))
    assert stack.value["secret_arn"].startswith("arn:aws:secretsmanager:eu-west-1:")
    assert "rds!db-droughtwatch-dev-db" in stack.value["secret_arn"]


def test_config_sizes_the_database_and_lifts_protection(infra: Any) -> None:
    config = DatabaseConfig(
        instance_class="db.m7g.large",
        allocated_storage_gb=50,
        max_allocated_storage_gb=0,
        engine_version="16.4",
        backup_retention_days=1,
        final_snapshot=False,
    )
    stack = infra.run(build(config, protected=False))
    db = stack.one("aws:rds/instance:Instance").inputs
    assert db["instanceClass"] == "db.m7g.large"
    assert db["allocatedStorage"] == 50
    assert db["engineVersion"] == "16.4"
    assert db["backupRetentionPeriod"] == 1
    assert db["deletionProtection"] is False
    assert db["skipFinalSnapshot"] is True
    assert "finalSnapshotIdentifier" not in db


# -- Aurora Serverless v2 -------------------------------------------------------------------------

AURORA = DatabaseConfig(kind="aurora-serverless", max_capacity=4, seconds_until_auto_pause=600)


def test_aurora_pauses_when_idle_and_keeps_the_instance_s_guarantees(infra: Any) -> None:
    stack = infra.run(build(AURORA, protected=True))
    assert stack.of_type("aws:rds/instance:Instance") == []
    cluster = stack.one("aws:rds/cluster:Cluster").inputs
    assert cluster["clusterIdentifier"] == "droughtwatch-dev-db"
    assert (cluster["engine"], cluster["engineMode"]) == ("aurora-postgresql", "provisioned")
    assert cluster["engineVersion"] == "16.6"
    assert cluster["serverlessv2ScalingConfiguration"] == {
        "minCapacity": 0,
        "maxCapacity": 4,
        "secondsUntilAutoPause": 600,
    }
    assert cluster["storageEncrypted"] is True
    assert cluster["manageMasterUserPassword"] is True
    assert "masterPassword" not in cluster and "masterPasswordWo" not in cluster
    assert cluster["iamDatabaseAuthenticationEnabled"] is True
    assert cluster["enableHttpEndpoint"] is True  # the migrate function's Data API
    assert cluster["vpcSecurityGroupIds"] == ["sg-database"]
    assert cluster["databaseName"] == CommonSettings.model_fields["database_name"].default
    assert cluster["deletionProtection"] is True
    assert cluster["skipFinalSnapshot"] is False
    suffix = stack.one("random:index/randomId:RandomId").outputs["hex"]
    assert cluster["finalSnapshotIdentifier"] == f"droughtwatch-dev-db-final-{suffix}"
    writer = stack.one("aws:rds/clusterInstance:ClusterInstance").inputs
    assert writer["instanceClass"] == "db.serverless"
    assert writer["clusterIdentifier"] == "droughtwatch-dev-db"
    assert writer["publiclyAccessible"] is False
    subnets = stack.one("aws:rds/subnetGroup:SubnetGroup").inputs
    assert cluster["dbSubnetGroupName"] == writer["dbSubnetGroupName"] == subnets["name"]


def test_aurora_refuses_plain_connections(infra: Any) -> None:
    """Aurora PostgreSQL's rds.force_ssl defaults to 0: the cluster's parameter group sets 1."""
    stack = infra.run(build(AURORA, protected=True))
    group = stack.one("aws:rds/clusterParameterGroup:ClusterParameterGroup").inputs
    assert group["family"] == "aurora-postgresql16"
    assert group["parameters"] == [{"name": "rds.force_ssl", "value": "1"}]
    cluster = stack.one("aws:rds/cluster:Cluster").inputs
    assert cluster["dbClusterParameterGroupName"] == group["name"]


def test_aurora_exposes_what_iam_auth_and_the_data_api_name(infra: Any) -> None:
    def program() -> Any:
        database = Database(
            "database",
            DatabaseArgs(Namer("droughtwatch", "dev"), AURORA, ["subnet-a", "subnet-b"],
                         "sg-database", False),
        )  # fmt: skip
        return {
            "resource_id": database.resource_id,
            "data_api_arn": database.data_api_arn,
            "endpoint": database.endpoint,
            "secret_arn": database.secret_arn,
        }

    stack = infra.run(program)
    assert stack.value["resource_id"] == infra.CLUSTER_RESOURCE_ID  # cluster-..., rds-db:connect
    assert (
        stack.value["data_api_arn"]
        == "arn:aws:rds:eu-west-1:123456789012:cluster:droughtwatch-dev-db"
    )
    assert stack.value["endpoint"].endswith(".rds.amazonaws.com:5432")
    assert "rds!cluster-droughtwatch-dev-db" in stack.value["secret_arn"]
    cluster = stack.one("aws:rds/cluster:Cluster").inputs
    assert cluster["deletionProtection"] is False  # as the stack says


def test_a_minimum_above_zero_never_pauses_and_sets_no_pause_delay(infra: Any) -> None:
    config = DatabaseConfig(kind="aurora-serverless", min_capacity=0.5)
    cluster = infra.run(build(config, protected=True)).one("aws:rds/cluster:Cluster").inputs
    assert cluster["serverlessv2ScalingConfiguration"] == {"minCapacity": 0.5, "maxCapacity": 2}


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"kind": "aurora-serverless", "engine_version": "16.2"},
         "min_capacity 0 (pausing) needs Aurora PostgreSQL 16.3 or later (got 16.2)"),
        ({"kind": "aurora-serverless", "engine_version": "16"},
         "Aurora needs a major.minor engine_version"),
        ({"kind": "aurora-serverless", "instance_class": "db.t4g.small"},
         "instance_class applies only to kind instance, not aurora-serverless"),
        ({"kind": "instance", "min_capacity": 0},
         "min_capacity applies only to kind aurora-serverless, not instance"),
        ({"kind": "aurora-serverless", "max_capacity": 2.2},
         "max_capacity must be a multiple of 0.5"),
        ({"kind": "aurora-serverless", "min_capacity": 4, "max_capacity": 2},
         "max_capacity must be at least min_capacity"),
        ({"kind": "aurora-serverless", "seconds_until_auto_pause": 60},
         "greater than or equal to 300"),
    ],
)  # fmt: skip
def test_database_settings_that_cannot_work_are_refused(
    values: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError) as raised:
        DatabaseConfig(**values)
    assert message in str(raised.value)
