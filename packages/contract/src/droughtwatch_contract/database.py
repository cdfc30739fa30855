"""The database facts the service and the Pulumi program share: the database users of each job
(created by the service's migration 0003), the migrate function's entry point, and the digest
of the migration files that keys the deploy's migration run.

The migrations are SQL files in the service package
(services/inference/src/droughtwatch_inference/migrations/NNNN_name.sql). The service digests
them from its installed package; the Pulumi program from the repository's files, without
importing the service; both through `migrations_digest`, so the two agree on the same files.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import PurePosixPath

# The stage functions' user: rows only (SELECT, INSERT, UPDATE), no DDL, no DELETE; on RDS it
# logs in with IAM database authentication (rds-db:connect on this user name).
APP_USER = "droughtwatch_app"
# Grafana's datasource user: SELECT only; its password lives in a Secrets Manager secret that
# the migrate function applies.
GRAFANA_USER = "droughtwatch_grafana"

# The migrate function's command in the service image: applies the migrations as the master
# user and sets droughtwatch_grafana's password.
MIGRATE_HANDLER = "droughtwatch_inference.handlers.migrate.handler"

# Where the migrations live, relative to the repository root (the Pulumi program reads them
# from there) and as a package (the service reads them from there).
MIGRATIONS_DIR = PurePosixPath("services/inference/src/droughtwatch_inference/migrations")
MIGRATIONS_PACKAGE = "droughtwatch_inference.migrations"


def is_migration(name: str) -> bool:
    """A migration file: ``NNNN_name.sql``."""
    stem, _, suffix = name.rpartition(".")
    return suffix == "sql" and stem.split("_", 1)[0].isdigit()


def migrations_digest(files: Iterable[tuple[str, bytes]]) -> str:
    """sha256 over the migrations' names and contents, in name order: it changes when a
    migration is added, renamed or edited, and with nothing else. Files that are not
    migrations are left out."""
    digest = hashlib.sha256()
    for name, content in sorted((n, c) for n, c in files if is_migration(n)):
        digest.update(name.encode())
        digest.update(b"\0")
        digest.update(hashlib.sha256(content).digest())
    return digest.hexdigest()
