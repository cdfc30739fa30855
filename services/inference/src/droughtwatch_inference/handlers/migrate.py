"""Migrate Lambda: applies the migrations as the master user, once per deploy (the Pulumi
program invokes it when the migrations' digest changes), and gives droughtwatch_grafana the
password held in its secret. The stages never migrate: their user has no DDL rights.

On Aurora (DROUGHTWATCH_DATABASE_CLUSTER_ARN set) the SQL goes through the RDS Data API, which
reads the master secret on the service side: the function runs outside the VPC. Otherwise over
a PostgreSQL connection with the master secret's credentials. The same statements either way
(adapters.schema).

Event in: ``{"migrations_sha256": <the deploy's digest>}`` (optional; a mismatch with the
image's own migrations is refused). Response out: the migrations applied now and the schema
version. A failure raises, so that the invocation, and `pulumi up`, fail with its message.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

from droughtwatch_contract.database import GRAFANA_USER
from droughtwatch_contract.settings import MigrateSettings

from droughtwatch_inference import logs
from droughtwatch_inference.adapters import aws, database, schema
from droughtwatch_inference.adapters.data_api import DataApiExecutor
from droughtwatch_inference.errors import DroughtwatchError, MigrationFailed, MigrationMismatch
from droughtwatch_inference.runtime_settings import cached


@contextlib.contextmanager
def open_executor(settings: MigrateSettings) -> Iterator[schema.Executor]:
    """The Data API on Aurora, else a PostgreSQL connection (closed afterwards)."""
    if settings.uses_data_api:
        yield DataApiExecutor(
            aws.client("rds-data", settings),
            str(settings.database_cluster_arn),
            str(settings.database_secret_arn),
            settings.database_name,
            resume_seconds=settings.database_resume_seconds,
        )
        return
    with contextlib.closing(database.connect(settings)) as conn:
        yield database.PsycopgExecutor(conn)


def migrate(settings: MigrateSettings, expected_sha256: str | None) -> dict[str, Any]:
    shipped = database.migrations_sha256()
    if expected_sha256 and expected_sha256 != shipped:
        raise MigrationMismatch(
            f"the deploy expects migrations {expected_sha256[:12]}, the image ships {shipped[:12]}"
        )
    grafana_password = None
    if settings.grafana_secret_arn:
        secret = database.read_secret(settings, settings.grafana_secret_arn, refresh=True)
        grafana_password = secret["password"]
    with open_executor(settings) as executor:
        applied = schema.run_migrations(executor)
        version = schema.schema_version(executor)
        if grafana_password is not None:
            schema.set_role_password(executor, GRAFANA_USER, grafana_password)
    return {
        "applied": applied,
        "schema_version": version,
        "migrations_sha256": shipped,
        "via": "rds-data-api" if settings.uses_data_api else "postgresql",
        "grafana_password": "set" if grafana_password is not None else "not configured",
    }


def handler(event: Any, context: Any) -> dict[str, Any]:
    expected = event.get("migrations_sha256") if isinstance(event, dict) else None
    try:
        result = migrate(cached(MigrateSettings), expected)
    except DroughtwatchError as exc:
        cause = f"{exc.code}: {exc.describe()}"
        logs.event("migrate.failed", logging.ERROR, error=cause)
        raise MigrationFailed(cause) from None
    except Exception as exc:  # a migration's SQL failed: its transaction was rolled back
        logs.event("migrate.failed", logging.ERROR, error=f"{type(exc).__name__}: {exc}")
        raise
    logs.event("migrate.done", **result)
    return result
