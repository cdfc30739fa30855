"""Local runs use the same roles as RDS: the embedded server is migrated by its owner, the
stages get droughtwatch_app and Grafana droughtwatch_grafana; `db migrate` applies what is new."""

from __future__ import annotations

import contextlib
import shutil
import uuid
from pathlib import Path

import psycopg
import pytest
from droughtwatch_inference.adapters.database import expected_schema_version
from droughtwatch_tools.cli import app
from droughtwatch_tools.local.database import open_local_database
from typer.testing import CliRunner


@pytest.fixture
def home(monkeypatch: pytest.MonkeyPatch):
    # not under pytest's tmp_path: as root the server's user must traverse the parents
    root = Path(f"/tmp/droughtwatch-home-test-{uuid.uuid4().hex[:8]}")
    monkeypatch.delenv("DROUGHTWATCH_DATABASE_DSN", raising=False)
    monkeypatch.setenv("DROUGHTWATCH_HOME", str(root))
    yield root
    from droughtwatch_tools.local.postgres import EmbeddedPostgres

    with contextlib.suppress(Exception):
        EmbeddedPostgres(root / "postgres").stop()
    shutil.rmtree(root, ignore_errors=True)


def test_the_embedded_database_gives_each_job_its_role(home: Path) -> None:
    database = open_local_database()
    with psycopg.connect(database.app, autocommit=True) as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("droughtwatch_app",)
        assert conn.execute("SELECT max(version) FROM schema_migrations").fetchone() == (
            expected_schema_version(),
        )
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DROP TABLE ledger")
    with psycopg.connect(database.grafana, autocommit=True) as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("droughtwatch_grafana",)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(
                "INSERT INTO runs (run_id, stage, started_at, status)"
                " VALUES ('r', 'observe', now(), 'succeeded')"
            )
    # a second start keeps the passwords the first one set
    assert open_local_database() == database


def test_db_migrate_applies_what_is_new_then_nothing(postgres, monkeypatch) -> None:
    name = f"dw_fresh_{uuid.uuid4().hex[:8]}"
    dsn = postgres.create(name)
    try:
        monkeypatch.setenv("DROUGHTWATCH_DATABASE_DSN", dsn)
        first = CliRunner().invoke(app, ["db", "migrate"])
        assert first.exit_code == 0, first.output
        assert "applied: 0001_ledger_metrics_runs.sql" in first.output
        second = CliRunner().invoke(app, ["db", "migrate"])
        assert second.exit_code == 0 and "schema is up to date" in second.output
    finally:
        postgres.drop(name)


def test_db_migrate_waits_for_a_database_that_is_resuming(
    postgres, resuming_proxy, droughtwatch_log: list[str]
) -> None:
    """The migrate step, like the stages, waits while a paused database drops connections."""
    from droughtwatch_tools.local.database import migrate_dsn

    name = f"dw_resume_{uuid.uuid4().hex[:10]}"
    dsn, proxy = resuming_proxy(postgres.create(name))
    try:
        proxy.pause(1)
        applied = migrate_dsn(dsn)
        assert applied and proxy.dropped == 1
        assert any("database resuming, waited" in line for line in droughtwatch_log)
    finally:
        postgres.drop(name)
