"""The local database as three connections, one per job, as on RDS: the owner runs the
migrations (and the demo's reset), the stages connect as ``droughtwatch_app``, Grafana as
``droughtwatch_grafana`` (see migration 0003).

With DROUGHTWATCH_DATABASE_DSN set, the user's own server is used as given for all three
(the DSN's user must own the database: local commands migrate it)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from droughtwatch_contract.database import APP_USER, GRAFANA_USER
from droughtwatch_contract.settings import DatabaseSettings, env_name

# The user's own PostgreSQL, used as given instead of the embedded server.
DSN_VARIABLE = env_name(DatabaseSettings, "database_dsn")


@dataclass(frozen=True)
class LocalDatabase:
    admin: str
    app: str
    grafana: str


def migrate_dsn(dsn: str) -> list[str]:
    """Apply the migrations at ``dsn`` as its user (the owner), waiting as the stages do for a
    database that is resuming (a paused Aurora cluster behind a tunnel)."""
    import psycopg
    from droughtwatch_inference.adapters.database import migrate
    from droughtwatch_inference.adapters.resume import wait_for_database
    from psycopg.conninfo import conninfo_to_dict

    info = conninfo_to_dict(dsn)
    where = f"{info.get('host', 'localhost')}:{info.get('port', 5432)}/{info.get('dbname', '')}"
    bound = DatabaseSettings.model_fields["database_resume_seconds"].default
    conn = wait_for_database(lambda: psycopg.connect(dsn, autocommit=True), bound, where)
    with conn:
        return migrate(conn)


def open_local_database() -> LocalDatabase:
    """Migrated and ready: the user's DSN, or the embedded PostgreSQL (started if needed)."""
    dsn = os.environ.get(DSN_VARIABLE)
    if dsn:
        migrate_dsn(dsn)
        return LocalDatabase(dsn, dsn, dsn)
    from droughtwatch_tools.local.postgres import EmbeddedPostgres
    from droughtwatch_tools.local.state import postgres_root

    server = EmbeddedPostgres(postgres_root())
    admin = server.start()
    migrate_dsn(admin)
    return LocalDatabase(admin, server.role_dsn(APP_USER), server.role_dsn(GRAFANA_USER))
