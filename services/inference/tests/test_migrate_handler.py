"""The migrate function: the owner applies the migrations once (a second run applies nothing),
gives droughtwatch_grafana the password of its secret, refuses a deploy that expects other
migrations than the image ships, and fails loudly (so that `pulumi up` does)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import psycopg
import pytest
from droughtwatch_contract.database import GRAFANA_USER
from droughtwatch_inference.adapters import database
from droughtwatch_inference.errors import MigrationFailed
from droughtwatch_inference.handlers.migrate import handler
from droughtwatch_inference.runtime_settings import cached
from psycopg.conninfo import make_conninfo


@pytest.fixture
def empty_database(postgres: Any) -> Iterator[str]:
    """A new database with no schema, as its owner."""
    name = f"dw_migrate_{uuid.uuid4().hex[:12]}"
    dsn = postgres.create(name)
    yield dsn
    postgres.drop(name)


@pytest.fixture
def migrate_env(
    monkeypatch: pytest.MonkeyPatch,
    aws_env: None,
    no_settings_env: None,
    empty_database: str,
    postgres: Any,
    migrated_template: str,
) -> Iterator[dict[str, str]]:
    """The migrate function's environment: the owner's DSN (the master secret's stand-in) and
    the Grafana secret in moto. Roles belong to the server: the session's role passwords are
    set again afterwards for the other tests (the migrated template made the roles, also when
    the test refuses to migrate and is the first of its worker to use the server)."""
    from moto import mock_aws

    with mock_aws():
        password = f"grafana-{uuid.uuid4().hex}"
        arn = boto3.client("secretsmanager").create_secret(
            Name="droughtwatch-test-grafana-db",
            SecretString=json.dumps({"username": GRAFANA_USER, "password": password}),
        )["ARN"]
        monkeypatch.setenv("DROUGHTWATCH_DATABASE_DSN", empty_database)
        monkeypatch.setenv("DROUGHTWATCH_GRAFANA_SECRET_ARN", arn)
        cached.cache_clear()
        try:
            yield {"dsn": empty_database, "grafana_password": password}
        finally:
            cached.cache_clear()
            postgres.set_role_passwords()


def test_the_migration_runs_once_and_sets_the_grafana_password(
    migrate_env: dict[str, str],
) -> None:
    result = handler({"migrations_sha256": database.migrations_sha256()}, None)
    assert result["applied"] == [name for _, name, _ in database.migration_files()]
    assert result["schema_version"] == database.expected_schema_version()
    assert result["grafana_password"] == "set"
    assert migrate_env["grafana_password"] not in json.dumps(result)

    grafana = make_conninfo(
        migrate_env["dsn"], user=GRAFANA_USER, password=migrate_env["grafana_password"]
    )
    with psycopg.connect(grafana) as conn:
        assert conn.execute("SELECT count(*) FROM ledger").fetchone() == (0,)

    again = handler({"migrations_sha256": database.migrations_sha256()}, None)
    assert again["applied"] == []


def test_a_deploy_expecting_other_migrations_is_refused_before_any_change(
    migrate_env: dict[str, str],
) -> None:
    with pytest.raises(MigrationFailed) as raised:
        handler({"migrations_sha256": "0" * 64}, None)
    message = str(raised.value)
    assert message.startswith("MigrationMismatch: the deploy expects migrations 000000000000")
    assert "pulumi up" in message
    with psycopg.connect(migrate_env["dsn"]) as conn:
        assert conn.execute("SELECT to_regclass('schema_migrations')").fetchone() == (None,)


def test_an_unreadable_grafana_secret_fails_the_migration_with_its_cause(
    migrate_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DROUGHTWATCH_GRAFANA_SECRET_ARN", "arn:aws:secretsmanager:eu-west-1:"
                       "123456789012:secret:missing-AbCdEf")  # fmt: skip
    cached.cache_clear()
    with pytest.raises(MigrationFailed, match="SecretUnavailable: cannot read the database secret"):
        handler({}, None)
