"""PostgreSQL connections and migrations.

A connection is made from a DSN (local runs, tests) or from the host settings with either the
credentials of a Secrets Manager secret (the migrate function, as the master user) or an RDS IAM
authentication token (the stages, as droughtwatch_app): a 15-minute password that boto3 signs
locally with the function's role, which RDS accepts over TLS only.

Secrets are fetched once per container and fetched again once when the server rejects them (RDS
rotates managed passwords). A server that is not taking connections yet (a paused Aurora
cluster resuming) is waited for, up to ``database_resume_seconds`` (adapters.resume). No DSN,
password or token is ever logged: errors name the host, the database and the user only.

The migrations themselves run over any executor (adapters.schema): `PsycopgExecutor` here, or
the RDS Data API (adapters.data_api).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from botocore.exceptions import BotoCoreError, ClientError

from droughtwatch_inference.adapters import aws, schema
from droughtwatch_inference.adapters.resume import not_ready, wait_for_database
from droughtwatch_inference.adapters.schema import (
    expected_schema_version,
    migration_files,
    migrations_sha256,
)
from droughtwatch_inference.errors import (
    ConfigurationError,
    DatabaseUnavailable,
    SchemaOutdated,
    SecretUnavailable,
)

__all__ = [
    "PsycopgExecutor",
    "check_schema",
    "connect",
    "expected_schema_version",
    "migrate",
    "migration_files",
    "migrations_sha256",
    "read_secret",
    "set_role_password",
]

_secret_cache: dict[str, dict[str, str]] = {}
RDS_CA_BUNDLE_URL = "https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem"


def read_secret(settings: Any, arn: str, refresh: bool = False) -> dict[str, str]:
    """``{"username", "password"}`` from a Secrets Manager secret (the RDS-managed master
    secret's shape, and the Grafana user's), cached per container."""
    if refresh or arn not in _secret_cache:
        try:
            raw = aws.client("secretsmanager", settings).get_secret_value(SecretId=arn)
            value = json.loads(raw["SecretString"])
            _secret_cache[arn] = {"username": value["username"], "password": value["password"]}
        except (ClientError, BotoCoreError, KeyError, ValueError, TypeError) as exc:
            reason = type(exc).__name__
            if isinstance(exc, ClientError):
                reason = exc.response.get("Error", {}).get("Code", reason)
            raise SecretUnavailable(f"cannot read the database secret {arn} ({reason})") from None
    return _secret_cache[arn]


def auth_token(settings: Any) -> str:
    """An RDS IAM authentication token for ``database_user``: presigned locally with the
    function's credentials (no network call), valid 15 minutes, used as the password."""
    try:
        rds = aws.client("rds", settings)
        return rds.generate_db_auth_token(
            DBHostname=settings.database_host,
            Port=settings.database_port,
            DBUsername=settings.database_user,
            Region=rds.meta.region_name,
        )
    except BotoCoreError as exc:  # no credentials, no region
        raise ConfigurationError(
            f"cannot sign an IAM database token for {settings.database_user} at "
            f"{settings.database_host} ({type(exc).__name__}): the function needs AWS "
            "credentials and a region (DROUGHTWATCH_AWS_REGION or AWS_REGION)"
        ) from None


def _credentials(settings: Any, refresh: bool) -> tuple[str, str]:
    if settings.database_auth == "iam":
        return settings.database_user, auth_token(settings)
    creds = read_secret(settings, settings.database_secret_arn, refresh)
    return creds["username"], creds["password"]


def _tls(settings: Any) -> dict[str, str]:
    """sslmode, and the CA bundle when the mode verifies the server (libpq would otherwise look
    for ~/.postgresql/root.crt)."""
    if not settings.verifies_server:
        return {"sslmode": settings.database_sslmode}
    bundle = settings.database_sslrootcert
    if not Path(bundle).is_file():
        raise ConfigurationError(
            f"DROUGHTWATCH_DATABASE_SSLROOTCERT: no CA bundle at {bundle}, which sslmode="
            f"{settings.database_sslmode} checks the server's certificate against: download "
            f"{RDS_CA_BUNDLE_URL} there (the image does), or point the variable at it"
        )
    return {"sslmode": settings.database_sslmode, "sslrootcert": bundle}


def _where(settings: Any) -> str:
    if settings.database_dsn is not None:
        info = psycopg.conninfo.conninfo_to_dict(settings.database_dsn.get_secret_value())
        return f"{info.get('host', 'localhost')}:{info.get('port', 5432)}/{info.get('dbname', '')}"
    return f"{settings.database_host}:{settings.database_port}/{settings.database_name}"


def _iam_hint(settings: Any, message: str) -> str:
    if settings.database_auth == "iam" and "PAM authentication failed" in message:
        return (
            f" (IAM authentication refused {settings.database_user}: the function's role needs "
            f"rds-db:connect on dbuser:<the instance's resource id>/{settings.database_user}, "
            "and the user the rds_iam role, which the migration grants: run it)"
        )
    return ""


def connect(settings: Any) -> psycopg.Connection:
    """Open a connection (autocommit; callers open transactions explicitly), waiting for a
    server that is resuming up to ``database_resume_seconds``."""
    timeout = settings.database_connect_timeout_seconds
    tls = _tls(settings) if settings.database_dsn is None else {}

    def attempt() -> psycopg.Connection:
        if settings.database_dsn is not None:
            return psycopg.connect(
                settings.database_dsn.get_secret_value(), autocommit=True, connect_timeout=timeout
            )
        for retry in (False, True):
            user, password = _credentials(settings, refresh=retry)
            try:
                return psycopg.connect(
                    host=settings.database_host,
                    port=settings.database_port,
                    dbname=settings.database_name,
                    user=user,
                    password=password,
                    connect_timeout=timeout,
                    autocommit=True,
                    **tls,
                )
            except psycopg.OperationalError as exc:
                rotated = "password authentication failed" in str(exc)
                if not retry and rotated and settings.database_auth == "secret":
                    continue  # rotated: fetch the secret again, once
                raise
        raise AssertionError("unreachable")

    try:
        return wait_for_database(attempt, settings.database_resume_seconds, _where(settings))
    except psycopg.Error as exc:
        # psycopg's message can echo connection parameters; keep only its first line's gist.
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        first = first.replace(getattr(settings.database_dsn, "get_secret_value", lambda: "")(), "")
        waited = (
            f" (still not taking connections after waiting {settings.database_resume_seconds} s)"
            if not_ready(exc) and settings.database_resume_seconds
            else ""
        )
        raise DatabaseUnavailable(
            f"cannot connect to PostgreSQL at {_where(settings)}{_as_whom(settings)}: {first}"
            + waited
            + _iam_hint(settings, first)
        ) from None


def _as_whom(settings: Any) -> str:
    return f" as {settings.database_user}" if settings.database_auth == "iam" else ""


class PsycopgExecutor:
    """adapters.schema's executor over a psycopg connection in autocommit mode."""

    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn

    @contextmanager
    def transaction(self) -> Iterator[_PsycopgTransaction]:
        with self.conn.transaction():
            yield _PsycopgTransaction(self.conn)


class _PsycopgTransaction:
    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn

    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        cur = self.conn.execute(sql, params)  # type: ignore[arg-type]  # trusted SQL
        return cur.fetchall() if cur.description is not None else []


def migrate(conn: psycopg.Connection) -> list[str]:
    """Apply the migrations not yet applied over a psycopg connection (adapters.schema)."""
    return schema.run_migrations(PsycopgExecutor(conn))


def set_role_password(conn: psycopg.Connection, role: str, password: str) -> None:
    """Give ``role`` a password, as its SCRAM-SHA-256 verifier (adapters.schema)."""
    schema.set_role_password(PsycopgExecutor(conn), role, password)


def check_schema(conn: psycopg.Connection) -> int:
    """The database's schema version, when it is at least the one this code needs. The stages
    run as a role that cannot migrate; a database behind the code is an error saying so."""
    expected = expected_schema_version()
    try:
        row = conn.execute("SELECT max(version) FROM schema_migrations").fetchone()
        found = int(row[0]) if row and row[0] is not None else 0
    except psycopg.errors.UndefinedTable:
        found = 0
    if found < expected:
        raise SchemaOutdated(f"schema {found}, expected {expected}: run the migration")
    return found
