"""How the handlers reach the database: the stages with an RDS IAM token as droughtwatch_app
(signed locally by botocore: what psycopg is given is checked), over TLS verified against the
RDS CA bundle; role passwords set without the clear text in the statement."""

from __future__ import annotations

import re
import urllib.parse
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
from droughtwatch_contract.settings import MigrateSettings, ProcessingSettings
from droughtwatch_inference.adapters import database
from droughtwatch_inference.errors import ConfigurationError, DatabaseUnavailable
from psycopg.conninfo import conninfo_to_dict, make_conninfo

HOST = "droughtwatch-dev-db.c0ffee.eu-west-1.rds.amazonaws.com"


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    path = tmp_path / "rds-global-bundle.pem"
    path.write_text("-----BEGIN CERTIFICATE-----\n(a test stand-in)\n-----END CERTIFICATE-----\n")
    return path


def _iam_settings(bundle: Path, **changes: Any) -> ProcessingSettings:
    values: dict[str, Any] = {
        "data_bucket": "dw-test-data",
        "database_host": HOST,
        "database_auth": "iam",
        "database_user": "droughtwatch_app",
        "database_sslrootcert": str(bundle),
        **changes,
    }
    return ProcessingSettings(**values)


@pytest.fixture
def connect_calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """What psycopg.connect is called with (no server is reached)."""
    calls: list[dict[str, Any]] = []

    def fake_connect(*args: Any, **kwargs: Any) -> str:
        calls.append({"args": args, **kwargs})
        return "connection"

    monkeypatch.setattr(psycopg, "connect", fake_connect)
    return calls


def test_the_stages_connect_as_the_app_user_with_an_iam_token_over_verified_tls(
    aws_env: None, bundle: Path, connect_calls: list[dict[str, Any]]
) -> None:
    assert database.connect(_iam_settings(bundle)) == "connection"
    (call,) = connect_calls
    assert (call["host"], call["port"], call["dbname"]) == (HOST, 5432, "droughtwatch")
    assert call["user"] == "droughtwatch_app"
    assert (call["sslmode"], call["sslrootcert"]) == ("verify-full", str(bundle))
    # The token: a SigV4-presigned "connect" request for this user on this host, 15 minutes.
    token = call["password"]
    assert token.startswith(f"{HOST}:5432/?")
    query = urllib.parse.parse_qs(token.split("?", 1)[1])
    assert query["Action"] == ["connect"]
    assert query["DBUser"] == ["droughtwatch_app"]
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    assert query["X-Amz-Expires"] == ["900"]
    assert query["X-Amz-Credential"][0].split("/")[2:4] == ["eu-west-1", "rds-db"]
    assert len(query["X-Amz-Signature"][0]) == 64


def test_a_refused_token_names_the_grant_and_hides_the_token(
    aws_env: None, bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tokens: list[str] = []

    def refuse(**kwargs: Any) -> None:
        tokens.append(kwargs["password"])
        raise psycopg.OperationalError(
            f'connection failed: FATAL:  PAM authentication failed for user "{kwargs["user"]}"'
        )

    monkeypatch.setattr(psycopg, "connect", refuse)
    with pytest.raises(DatabaseUnavailable) as raised:
        database.connect(_iam_settings(bundle))
    message = str(raised.value)
    assert f"at {HOST}:5432/droughtwatch as droughtwatch_app" in message
    assert "rds-db:connect" in message and "rds_iam" in message
    assert len(tokens) == 1  # a token is not retried like a rotated password
    assert tokens[0] not in message and "X-Amz" not in message


def test_verify_full_without_the_ca_bundle_says_where_to_get_it(
    aws_env: None, tmp_path: Path, connect_calls: list[dict[str, Any]]
) -> None:
    settings = _iam_settings(tmp_path / "missing.pem")
    with pytest.raises(ConfigurationError) as raised:
        database.connect(settings)
    message = str(raised.value)
    assert "DROUGHTWATCH_DATABASE_SSLROOTCERT" in message
    assert database.RDS_CA_BUNDLE_URL in message
    assert connect_calls == []


def test_require_passes_no_ca_bundle(
    aws_env: None, tmp_path: Path, connect_calls: list[dict[str, Any]]
) -> None:
    """libpq treats require as verify-ca when a root certificate is given: give none."""
    database.connect(_iam_settings(tmp_path / "missing.pem", database_sslmode="require"))
    (call,) = connect_calls
    assert call["sslmode"] == "require" and "sslrootcert" not in call


def test_the_migrate_settings_connect_with_the_secret_not_a_token(
    aws_env: None,
    bundle: Path,
    connect_calls: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(
        database, "read_secret", lambda settings, arn, refresh=False: {
            "username": "droughtwatch_admin", "password": "from-the-secret"
        }
    )  # fmt: skip
    settings = MigrateSettings(
        database_host=HOST,
        database_secret_arn="arn:aws:secretsmanager:eu-west-1:123456789012:secret:rds!db-1",
        database_sslrootcert=str(bundle),
    )
    database.connect(settings)
    (call,) = connect_calls
    assert (call["user"], call["password"]) == ("droughtwatch_admin", "from-the-secret")


def test_a_role_password_is_stored_as_a_scram_verifier(postgres: Any) -> None:
    role = f"dw_test_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres.admin_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE ROLE "{role}"')
        try:
            database.set_role_password(conn, role, "correct horse battery")
            (stored,) = conn.execute(
                "SELECT rolpassword FROM pg_authid WHERE rolname = %s", (role,)
            ).fetchone()
            assert stored.startswith("SCRAM-SHA-256$4096:")
            assert "correct horse" not in stored
            info = conninfo_to_dict(postgres.admin_dsn)
            tcp = {k: v for k, v in info.items() if k not in {"user", "password"}}
            tcp.setdefault("host", "127.0.0.1")
            dsn = make_conninfo(**tcp, user=role, password="correct horse battery")
            with psycopg.connect(dsn) as as_role:
                assert as_role.execute("SELECT current_user").fetchone() == (role,)
            with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
                psycopg.connect(make_conninfo(dsn, password="wrong")).close()
        finally:
            conn.execute(f'DROP ROLE "{role}"')


def test_a_resuming_database_is_waited_for_and_the_wait_is_logged(
    postgres: Any, test_database: str, resuming_proxy: Any, droughtwatch_log: list[str]
) -> None:
    """A paused cluster drops the first connections while it resumes: connect tries again
    with growing pauses, gets through, and says how long it waited."""
    dsn, proxy = resuming_proxy(postgres.dsn(test_database))
    proxy.pause(2)
    settings = MigrateSettings(database_dsn=dsn)
    with database.connect(settings) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    assert (proxy.dropped, proxy.forwarded) == (2, 1)
    log = "\n".join(droughtwatch_log)
    assert "is not taking connections yet (resuming?); waiting up to 120 s" in log
    # 0.5 s, then 1 s, then through
    assert re.search(r"database resuming, waited \d+ s", log), log


def test_a_database_that_stays_away_fails_after_the_bound(
    postgres: Any, test_database: str, resuming_proxy: Any
) -> None:
    dsn, proxy = resuming_proxy(postgres.dsn(test_database))
    proxy.pause(100)
    settings = MigrateSettings(database_dsn=dsn, database_resume_seconds=2)
    with pytest.raises(DatabaseUnavailable) as raised:
        database.connect(settings)
    assert "still not taking connections after waiting 2 s" in str(raised.value)
    # tried at 0 s, 0.5 s and 1.5 s; a fourth try would start after the bound
    assert 2 <= proxy.dropped <= 3
