"""The migrations over the RDS Data API (Aurora), as the migrate function runs them outside the
VPC: the same statements as over psycopg, in one Data API transaction, under the advisory lock.

Two doubles of the ``rds-data`` client: `PostgresDataApi`, which executes each call on a real
PostgreSQL connection (so the migrations really run, statement by statement, and a failure
really rolls back), and botocore's Stubber on a real client, which pins the requests' shapes.
A paused cluster's DatabaseResumingException is waited for."""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import psycopg
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber
from droughtwatch_contract.database import GRAFANA_USER
from droughtwatch_inference.adapters import aws, database, schema
from droughtwatch_inference.adapters.data_api import DataApiExecutor, field
from droughtwatch_inference.handlers.migrate import handler
from droughtwatch_inference.runtime_settings import cached
from psycopg.conninfo import make_conninfo

CLUSTER = "arn:aws:rds:eu-west-1:123456789012:cluster:droughtwatch-dev-db"
SECRET = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:rds!cluster-1234-AbCdEf"
_PARAMETER = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


class PostgresDataApi:
    """The ``rds-data`` calls the executor makes, executed on a real PostgreSQL: one connection
    per transaction, parameters and results in the Data API's typed shapes. The first
    ``resuming`` BeginTransaction calls answer DatabaseResumingException, as a paused cluster
    does."""

    def __init__(self, dsn: str, resuming: int = 0) -> None:
        self.dsn = dsn
        self.resuming = resuming
        self.transactions: dict[str, psycopg.Connection] = {}
        self.calls: list[str] = []
        self.statements: list[str] = []

    def begin_transaction(self, *, resourceArn: str, secretArn: str, database: str) -> dict:
        self.calls.append("BeginTransaction")
        assert (resourceArn, secretArn, database) == (CLUSTER, SECRET, "droughtwatch")
        if self.resuming:
            self.resuming -= 1
            raise ClientError(
                {"Error": {"Code": "DatabaseResumingException", "Message": "resuming"}},
                "BeginTransaction",
            )
        transaction_id = uuid.uuid4().hex
        self.transactions[transaction_id] = psycopg.connect(self.dsn)  # not autocommit
        return {"transactionId": transaction_id}

    def execute_statement(self, **request: Any) -> dict:
        self.calls.append("ExecuteStatement")
        conn = self.transactions[request["transactionId"]]
        sql, parameters = request["sql"], request.get("parameters")
        self.statements.append(sql)
        try:
            if parameters:
                values = {p["name"]: _python(p["value"]) for p in parameters}
                cur = conn.execute(_PARAMETER.sub(r"%(\1)s", sql), values)  # type: ignore[arg-type]
            else:
                cur = conn.execute(sql)  # type: ignore[arg-type]
        except psycopg.Error as exc:
            raise ClientError(
                {"Error": {"Code": "BadRequestException", "Message": str(exc)}},
                "ExecuteStatement",
            ) from None
        response: dict[str, Any] = {"numberOfRecordsUpdated": max(cur.rowcount, 0)}
        if cur.description is not None:
            response["records"] = [[field(v) for v in row] for row in cur.fetchall()]
        return response

    def commit_transaction(self, *, resourceArn: str, secretArn: str, transactionId: str):
        self.calls.append("CommitTransaction")
        with self.transactions.pop(transactionId) as conn:
            conn.commit()
        return {"transactionStatus": "Transaction Committed"}

    def rollback_transaction(self, *, resourceArn: str, secretArn: str, transactionId: str):
        self.calls.append("RollbackTransaction")
        conn = self.transactions.pop(transactionId)
        conn.rollback()
        conn.close()
        return {"transactionStatus": "Rollback Complete"}


def _python(value: dict[str, Any]) -> Any:
    return None if value.get("isNull") else next(iter(value.values()))


@pytest.fixture
def empty_database(postgres: Any) -> Iterator[str]:
    name = f"dw_dataapi_{uuid.uuid4().hex[:12]}"
    dsn = postgres.create(name)
    yield dsn
    postgres.drop(name)
    postgres.set_role_passwords()  # roles belong to the server: restore the session's


def executor(api: Any) -> DataApiExecutor:
    return DataApiExecutor(api, CLUSTER, SECRET, "droughtwatch", resume_seconds=30)


def test_the_migrations_run_over_the_data_api_statement_by_statement(empty_database: str) -> None:
    api = PostgresDataApi(empty_database)
    applied = schema.run_migrations(executor(api))
    assert applied == [name for _, name, _ in database.migration_files()]
    # one transaction: begun once, committed once, every statement in it
    assert api.calls[0] == "BeginTransaction" and api.calls[-1] == "CommitTransaction"
    assert api.calls.count("BeginTransaction") == api.calls.count("CommitTransaction") == 1
    assert api.statements[0].startswith("SELECT count(*) FROM (SELECT pg_advisory_xact_lock(")
    assert any(s.startswith("DO $$") for s in api.statements)  # 0003's block, whole
    assert schema.schema_version(executor(api)) == database.expected_schema_version()
    # the same database over psycopg: nothing left to apply, and the stages' check passes
    with psycopg.connect(empty_database, autocommit=True) as conn:
        assert database.migrate(conn) == []
        assert database.check_schema(conn) == database.expected_schema_version()
    assert schema.run_migrations(executor(api)) == []


def test_a_failing_statement_rolls_the_transaction_back(empty_database: str) -> None:
    api = PostgresDataApi(empty_database)
    with (
        pytest.raises(ClientError, match="BadRequestException"),
        executor(api).transaction() as tx,
    ):
        tx.execute("CREATE TABLE half_done (id int)")
        tx.execute("SELECT no_such_column FROM half_done")
    assert api.calls[-1] == "RollbackTransaction"
    with psycopg.connect(empty_database) as conn:
        assert conn.execute("SELECT to_regclass('half_done')").fetchone() == (None,)


def test_a_resuming_cluster_is_waited_for(empty_database: str, droughtwatch_log: list[str]) -> None:
    api = PostgresDataApi(empty_database, resuming=2)
    assert schema.run_migrations(executor(api))
    assert api.calls[:3] == ["BeginTransaction"] * 3
    assert any("database resuming, waited" in line for line in droughtwatch_log)


def test_a_role_password_set_over_the_data_api_logs_in(empty_database: str, postgres: Any) -> None:
    api = PostgresDataApi(empty_database)
    schema.run_migrations(executor(api))
    schema.set_role_password(executor(api), GRAFANA_USER, "set-over-the-data-api")
    (statement,) = [s for s in api.statements if s.startswith("ALTER ROLE")]
    assert "set-over-the-data-api" not in statement and "SCRAM-SHA-256$4096:" in statement
    dsn = make_conninfo(empty_database, user=GRAFANA_USER, password="set-over-the-data-api")
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT count(*) FROM ledger").fetchone() == (0,)


# -- the requests, on a real boto3 client ------------------------------------------------------


def test_the_requests_have_the_data_api_s_shapes(aws_env: None) -> None:
    client = boto3.client("rds-data", region_name="eu-west-1")
    target = {"resourceArn": CLUSTER, "secretArn": SECRET}
    with Stubber(client) as stub:
        stub.add_client_error(
            "begin_transaction",
            service_error_code="DatabaseResumingException",
            expected_params={**target, "database": "droughtwatch"},
        )
        stub.add_response(
            "begin_transaction", {"transactionId": "tx-1"}, {**target, "database": "droughtwatch"}
        )
        stub.add_response(
            "execute_statement",
            {"records": [[{"longValue": 7}, {"stringValue": "0007"}, {"isNull": True}]]},
            {
                **target,
                "database": "droughtwatch",
                "transactionId": "tx-1",
                "sql": "SELECT :version, :name, :missing",
                "parameters": [
                    {"name": "version", "value": {"longValue": 7}},
                    {"name": "name", "value": {"stringValue": "0007"}},
                    {"name": "missing", "value": {"isNull": True}},
                ],
            },
        )
        stub.add_response(
            "commit_transaction",
            {"transactionStatus": "Transaction Committed"},
            {**target, "transactionId": "tx-1"},
        )
        with executor(client).transaction() as tx:
            rows = tx.execute(
                "SELECT %(version)s, %(name)s, %(missing)s",
                {"version": 7, "name": "0007", "missing": None},
            )
        stub.assert_no_pending_responses()
    assert rows == [(7, "0007", None)]


# -- the migrate function on Aurora ------------------------------------------------------------


def test_the_migrate_function_uses_the_data_api_when_given_the_cluster(
    empty_database: str, aws_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No DSN, no host: the cluster's ARN and the master secret's. The function reads only the
    Grafana secret itself (moto); the master secret is the Data API's to read."""
    from moto import mock_aws

    api = PostgresDataApi(empty_database)
    for name in [n for n in os.environ if n.startswith("DROUGHTWATCH_")]:
        if name != "DROUGHTWATCH_TEST_DSN":
            monkeypatch.delenv(name)
    with mock_aws():
        grafana = boto3.client("secretsmanager").create_secret(
            Name="droughtwatch-dev-grafana-db",
            SecretString=json.dumps({"username": GRAFANA_USER, "password": "grafana-pw-123"}),
        )["ARN"]
        real_client = aws.client

        def client(service: str, settings: Any) -> Any:
            return api if service == "rds-data" else real_client(service, settings)

        monkeypatch.setattr(aws, "client", client)
        monkeypatch.setenv("DROUGHTWATCH_DATABASE_CLUSTER_ARN", CLUSTER)
        monkeypatch.setenv("DROUGHTWATCH_DATABASE_SECRET_ARN", SECRET)
        monkeypatch.setenv("DROUGHTWATCH_GRAFANA_SECRET_ARN", grafana)
        cached.cache_clear()
        try:
            result = handler({"migrations_sha256": database.migrations_sha256()}, None)
        finally:
            cached.cache_clear()
    assert result["via"] == "rds-data-api"
    assert result["applied"] == [name for _, name, _ in database.migration_files()]
    assert result["schema_version"] == database.expected_schema_version()
    assert result["grafana_password"] == "set"
    dsn = make_conninfo(empty_database, user=GRAFANA_USER, password="grafana-pw-123")
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT count(*) FROM ledger").fetchone() == (0,)
