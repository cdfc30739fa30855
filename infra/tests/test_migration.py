"""The migration component: the migrate function from the service image with its own command,
in the VPC, with a role that alone reads the master secret; the Grafana user's generated
password in its own secret; and one invocation keyed on the migrations' digest."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from droughtwatch_contract.database import GRAFANA_USER, MIGRATE_HANDLER, MIGRATIONS_DIR
from droughtwatch_contract.settings import RDS_CA_BUNDLE, MigrateSettings
from droughtwatch_infra.functions import AccountRef, DatabaseRef
from droughtwatch_infra.migration import (
    GRAFANA_PASSWORD_LENGTH,
    Migration,
    MigrationArgs,
    repository_migrations_digest,
)
from droughtwatch_infra.naming import Namer

IMAGE = (
    "123456789012.dkr.ecr.eu-west-1.amazonaws.com/droughtwatch-dev-inference@sha256:" + "cd" * 32
)
HOST = "droughtwatch-dev-db.c0ffee.eu-west-1.rds.amazonaws.com"
MASTER = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:rds!db-1234-AbCdEf"
GRAFANA = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:droughtwatch-dev-grafana-db-AbCdEf"
DIGEST = "ab" * 32


CLUSTER = "arn:aws:rds:eu-west-1:123456789012:cluster:droughtwatch-dev-db"


def build(data_api_arn: str | None = None) -> Any:
    def program() -> Any:
        migration = Migration(
            "migration",
            MigrationArgs(
                namer=Namer("droughtwatch", "dev"),
                image_uri=IMAGE,
                database=DatabaseRef(HOST, 5432, "droughtwatch", "db-ABC"),
                master_secret_arn=MASTER,
                migrations_sha256=DIGEST,
                log_retention_days=14,
                subnet_ids=["subnet-a", "subnet-b"],
                security_group_id="sg-lambda",
                account=AccountRef(partition="aws", region="eu-west-1", account_id="123456789012"),
                data_api_arn=data_api_arn,
            ),
        )
        return {"function": migration.function_name, "secret": migration.grafana_secret_arn}

    return program


@pytest.fixture(scope="module")
def stack(infra: Any) -> Any:
    return infra.run(build())


def test_the_migrate_function_runs_the_image_with_its_own_command_in_the_vpc(stack: Any) -> None:
    fn = stack.one("aws:lambda/function:Function").inputs
    assert fn["name"] == "droughtwatch-dev-migrate"
    assert fn["imageUri"] == IMAGE
    assert fn["imageConfig"] == {"commands": [MIGRATE_HANDLER]}
    assert fn["role"] == "arn:aws:iam::123456789012:role/droughtwatch-dev-migrate-function"
    assert fn["vpcConfig"] == {"subnetIds": ["subnet-a", "subnet-b"], "securityGroupIds": [
        "sg-lambda"
    ]}  # fmt: skip
    assert fn["loggingConfig"]["logGroup"] == "/aws/lambda/droughtwatch-dev-migrate"
    assert stack.value == {"function": "droughtwatch-dev-migrate", "secret": GRAFANA}


def test_the_environment_builds_the_migrate_settings(
    stack: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    variables = stack.one("aws:lambda/function:Function").inputs["environment"]["variables"]
    for name in [n for n in os.environ if n.startswith("DROUGHTWATCH_")]:
        monkeypatch.delenv(name)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    settings = MigrateSettings()
    assert (settings.database_auth, settings.database_secret_arn) == ("secret", MASTER)
    assert (settings.database_host, settings.database_port) == (HOST, 5432)
    assert settings.grafana_secret_arn == GRAFANA
    assert (settings.database_sslmode, settings.database_sslrootcert) == (
        "verify-full",
        RDS_CA_BUNDLE,
    )
    assert "DROUGHTWATCH_DATA_BUCKET" not in variables


def test_the_migrate_role_reads_the_master_and_grafana_secrets_and_nothing_else(
    stack: Any,
) -> None:
    document = stack.one("aws:iam/rolePolicy:RolePolicy").json("policy")
    reads = [s for s in document["Statement"] if "secretsmanager:GetSecretValue" in s["Action"]]
    assert [(s["Action"], s["Resource"]) for s in reads] == [
        (["secretsmanager:GetSecretValue"], [MASTER, GRAFANA])
    ]
    actions = {a for s in document["Statement"] for a in s["Action"]}
    assert not any(a.startswith(("s3:", "rds-db:", "lambda:")) for a in actions)


def test_the_grafana_secret_holds_a_generated_password_kept_secret(stack: Any) -> None:
    password = stack.one("random:index/randomPassword:RandomPassword").inputs
    assert password == {"length": GRAFANA_PASSWORD_LENGTH, "special": False}
    secret = stack.one("aws:secretsmanager/secret:Secret").inputs
    assert secret["name"] == "droughtwatch-dev-grafana-db"
    assert secret["recoveryWindowInDays"] == 0
    version = stack.one("aws:secretsmanager/secretVersion:SecretVersion")
    assert "secretString" in version.secrets  # encrypted in the state, never shown
    value = version.json("secretString")
    assert value["username"] == GRAFANA_USER
    generated = stack.one("random:index/randomPassword:RandomPassword").outputs["result"]
    assert value["password"] == generated


def test_one_invocation_keyed_on_the_digest_and_the_grafana_password(stack: Any) -> None:
    invocation = stack.one("aws:lambda/invocation:Invocation")
    assert invocation.inputs["functionName"] == "droughtwatch-dev-migrate"
    assert invocation.json("input") == {"migrations_sha256": DIGEST}
    version = stack.one("aws:secretsmanager/secretVersion:SecretVersion").outputs["versionId"]
    assert invocation.inputs["triggers"] == {
        "migrations_sha256": DIGEST,
        "grafana_secret_version": version,
    }
    waits = stack.waits_for("aws:lambda/invocation:Invocation", "migration")
    assert ("aws:lambda/function:Function", "migration") in waits
    assert ("aws:secretsmanager/secretVersion:SecretVersion", "migration-grafana") in waits


def _copy_migrations(infra: Any, root: Path) -> Path:
    folder = root / MIGRATIONS_DIR
    folder.mkdir(parents=True)
    for path in (infra.REPOSITORY / MIGRATIONS_DIR).glob("*.sql"):
        (folder / path.name).write_bytes(path.read_bytes())
    return folder


def test_the_digest_changes_with_a_migration_and_with_nothing_else(
    infra: Any, tmp_path: Path
) -> None:
    folder = _copy_migrations(infra, tmp_path)
    before = repository_migrations_digest(tmp_path)
    assert before == repository_migrations_digest(infra.REPOSITORY)
    (folder / "README.txt").write_text("not a migration")
    (folder / "__init__.py").write_text("")
    assert repository_migrations_digest(tmp_path) == before
    first = sorted(folder.glob("*.sql"))[0]
    first.write_text(first.read_text() + "\n-- edited\n")
    edited = repository_migrations_digest(tmp_path)
    assert edited != before
    (folder / "9999_more.sql").write_text("SELECT 1;")
    assert repository_migrations_digest(tmp_path) not in {before, edited}


def test_a_program_run_outside_the_repository_says_so(tmp_path: Path) -> None:
    (tmp_path / MIGRATIONS_DIR).mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="no migrations in"):
        repository_migrations_digest(tmp_path)


# -- on Aurora: the RDS Data API, outside the VPC ------------------------------------------------


@pytest.fixture(scope="module")
def aurora(infra: Any) -> Any:
    return infra.run(build(data_api_arn=CLUSTER))


def test_on_aurora_the_function_runs_outside_the_vpc_through_the_data_api(
    aurora: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    fn = aurora.one("aws:lambda/function:Function").inputs
    assert "vpcConfig" not in fn
    for name in [n for n in os.environ if n.startswith("DROUGHTWATCH_")]:
        monkeypatch.delenv(name)
    for name, value in fn["environment"]["variables"].items():
        monkeypatch.setenv(name, value)
    settings = MigrateSettings()
    assert settings.uses_data_api
    assert (settings.database_cluster_arn, settings.database_secret_arn) == (CLUSTER, MASTER)
    assert settings.database_name == "droughtwatch"
    assert settings.grafana_secret_arn == GRAFANA
    assert settings.database_host is None  # no connection of its own


def test_on_aurora_the_role_runs_sql_on_that_cluster_only_and_manages_no_network(
    aurora: Any,
) -> None:
    document = aurora.one("aws:iam/rolePolicy:RolePolicy").json("policy")
    by_sid = {s["Sid"]: s for s in document["Statement"]}
    assert by_sid["RunSqlThroughDataApi"]["Action"] == [
        "rds-data:BeginTransaction",
        "rds-data:CommitTransaction",
        "rds-data:ExecuteStatement",
        "rds-data:RollbackTransaction",
    ]
    assert by_sid["RunSqlThroughDataApi"]["Resource"] == [CLUSTER]
    # the Data API reads the master secret with the caller's permission
    assert by_sid["ReadDatabaseSecrets"]["Resource"] == [MASTER, GRAFANA]
    actions = {a for s in document["Statement"] for a in s["Action"]}
    assert not any(a.startswith("ec2:") for a in actions)
    assert set(by_sid) == {"ReadDatabaseSecrets", "RunSqlThroughDataApi", "WriteOwnLogs"}
