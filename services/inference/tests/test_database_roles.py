"""One database role per job: the stages' role reads and writes rows but changes no schema and
deletes nothing; Grafana's role only reads; the stages check the schema instead of migrating."""

from __future__ import annotations

import psycopg
import pytest
from droughtwatch_inference.adapters.database import expected_schema_version, migration_files

PIPELINE_TABLES = ("ledger", "metrics", "runs")


def _denied(dsn: str, statement: str) -> None:
    with (
        psycopg.connect(dsn, autocommit=True) as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege),
    ):
        conn.execute(statement)


@pytest.mark.parametrize(
    "statement",
    [
        "DROP TABLE ledger",
        "ALTER TABLE ledger ADD COLUMN sneaky text",
        "CREATE TABLE sneaky (id int)",
        "DELETE FROM metrics",
        "TRUNCATE runs",
        "DROP TABLE schema_migrations",
    ],
)
def test_the_app_role_cannot_change_the_schema_or_delete(database_dsn, statement) -> None:
    _denied(database_dsn, statement)


def test_the_app_role_reads_and_writes_the_pipeline_rows(database_dsn) -> None:
    with psycopg.connect(database_dsn, autocommit=True) as conn:
        (entry,) = conn.execute(
            "INSERT INTO ledger (bucket, raw_key, etag, size_bytes, batch_date)"
            " VALUES ('b', 'raw/k', 'e', 1, '2026-11-27') RETURNING id"
        ).fetchone()
        conn.execute("UPDATE ledger SET status = 'running' WHERE id = %s", (entry,))
        assert conn.execute("SELECT status FROM ledger").fetchone() == ("running",)
        assert conn.execute("SELECT current_user").fetchone() == ("droughtwatch_app",)


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO runs (run_id, stage, started_at, status) VALUES ('r', 'observe', now(),"
        " 'succeeded')",
        "UPDATE ledger SET status = 'done'",
        "DELETE FROM ledger",
        "DROP TABLE metrics",
    ],
)
def test_the_grafana_role_only_reads(grafana_dsn, statement) -> None:
    _denied(grafana_dsn, statement)


def test_the_grafana_role_reads_every_pipeline_table(grafana_dsn) -> None:
    with psycopg.connect(grafana_dsn) as conn:
        for table in PIPELINE_TABLES:
            assert conn.execute(f"SELECT count(*) FROM {table}").fetchone() == (0,)


def test_every_table_a_migration_adds_is_granted_to_both_roles(admin_dsn) -> None:
    # a later migration that forgets its GRANTs fails here, not in production
    with psycopg.connect(admin_dsn) as conn:
        tables = [
            row[0]
            for row in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
                " AND tablename <> 'schema_migrations'"
            )
        ]
        assert set(PIPELINE_TABLES) <= set(tables)
        for table in tables:
            for role, privileges in (
                ("droughtwatch_app", ("SELECT", "INSERT", "UPDATE")),
                ("droughtwatch_grafana", ("SELECT",)),
            ):
                for privilege in privileges:
                    granted = conn.execute(
                        "SELECT has_table_privilege(%s, %s, %s)", (role, table, privilege)
                    ).fetchone()[0]
                    assert granted, f"{role} lacks {privilege} on {table}"
            assert not conn.execute(
                "SELECT has_table_privilege('droughtwatch_app', %s, 'DELETE')", (table,)
            ).fetchone()[0]


def test_a_stage_on_a_database_behind_the_code_says_to_migrate(
    service_env, admin_dsn, monkeypatch
) -> None:
    from droughtwatch_inference.handlers.observe import handler

    latest = expected_schema_version()
    previous = [version for version, _, _ in migration_files()][-2]
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute("DELETE FROM schema_migrations WHERE version = %s", (latest,))
    response = handler({"run_id": "r"}, None)
    assert response["statusCode"] == 500
    body = response["body"]
    assert body["error"] == "SchemaOutdated"
    assert f"schema {previous}, expected {latest}: run the migration" in body["cause"]
    assert "droughtwatch db migrate" in body["cause"]


def test_migrations_are_numbered_without_gaps() -> None:
    versions = [version for version, _, _ in migration_files()]
    assert versions == list(range(1, len(versions) + 1))
