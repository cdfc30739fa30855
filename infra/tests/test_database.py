"""The database component: PostgreSQL in the private subnets, never public, encrypted, with the
master password managed by RDS and automated backups; deletion protection from config."""

from __future__ import annotations

from typing import Any

from droughtwatch_contract.settings import CommonSettings
from droughtwatch_infra.config import DatabaseConfig
from droughtwatch_infra.database import Database, DatabaseArgs
from droughtwatch_infra.naming import Namer


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
