"""PostgreSQL connections (DSN, or the RDS-managed secret plus host settings) and migrations.

Credentials are fetched from Secrets Manager once per container and fetched again once when the
server rejects them (RDS rotates managed passwords). No DSN or password is ever logged: errors
name the host and database only.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import psycopg
from botocore.exceptions import BotoCoreError, ClientError

from droughtwatch_inference.adapters import aws
from droughtwatch_inference.errors import DatabaseUnavailable, SchemaOutdated, SecretUnavailable

# pg_advisory_xact_lock key for migrations: any constant, the same in every process.
_MIGRATION_LOCK = 0x64726F75676874  # "drought"
_secret_cache: dict[str, dict[str, str]] = {}


def _secret(settings: Any, refresh: bool = False) -> dict[str, str]:
    arn = settings.database_secret_arn
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


def _where(settings: Any) -> str:
    if settings.database_dsn is not None:
        info = psycopg.conninfo.conninfo_to_dict(settings.database_dsn.get_secret_value())
        return f"{info.get('host', 'localhost')}:{info.get('port', 5432)}/{info.get('dbname', '')}"
    return f"{settings.database_host}:{settings.database_port}/{settings.database_name}"


def connect(settings: Any) -> psycopg.Connection:
    """Open a connection (autocommit; callers open transactions explicitly)."""
    timeout = settings.database_connect_timeout_seconds
    try:
        if settings.database_dsn is not None:
            return psycopg.connect(
                settings.database_dsn.get_secret_value(), autocommit=True, connect_timeout=timeout
            )
        for attempt in (0, 1):
            creds = _secret(settings, refresh=attempt == 1)
            try:
                return psycopg.connect(
                    host=settings.database_host,
                    port=settings.database_port,
                    dbname=settings.database_name,
                    user=creds["username"],
                    password=creds["password"],
                    sslmode=settings.database_sslmode,
                    connect_timeout=timeout,
                    autocommit=True,
                )
            except psycopg.OperationalError as exc:
                if attempt == 0 and "password authentication failed" in str(exc):
                    continue  # rotated: fetch the secret again, once
                raise
    except psycopg.Error as exc:
        # psycopg's message can echo connection parameters; keep only its first line's gist.
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        first = first.replace(getattr(settings.database_dsn, "get_secret_value", lambda: "")(), "")
        raise DatabaseUnavailable(
            f"cannot connect to PostgreSQL at {_where(settings)}: {first}"
        ) from None
    raise DatabaseUnavailable(f"cannot connect to PostgreSQL at {_where(settings)}")


def migration_files() -> list[tuple[int, str, str]]:
    """(version, name, sql) of every migration shipped with the package, in order."""
    found = []
    for entry in resources.files("droughtwatch_inference.migrations").iterdir():
        if entry.name.endswith(".sql"):
            version = int(entry.name.split("_", 1)[0])
            found.append((version, entry.name, entry.read_text()))
    found.sort()
    versions = [v for v, _, _ in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"duplicate migration versions: {versions}")
    return found


def migrate(conn: psycopg.Connection) -> list[str]:
    """Apply the migrations not yet applied, in order, under an advisory lock so that
    concurrent cold starts are safe. Returns the names applied now."""
    applied_now = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
        for version, name, sql in migration_files():
            if version in done:
                continue
            conn.execute(sql)  # type: ignore[arg-type]  # trusted file shipped with the package
            conn.execute(
                "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)", (version, name)
            )
            applied_now.append(name)
    return applied_now


def expected_schema_version() -> int:
    """The newest migration this code ships."""
    return migration_files()[-1][0]


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
