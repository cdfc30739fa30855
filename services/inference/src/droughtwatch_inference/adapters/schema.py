"""The schema migrations and the database users' passwords, over any SQL executor: a psycopg
connection (local runs, the `instance` database kind) or the RDS Data API (the migrate function
on Aurora, adapters.data_api). The same statements, in the same order, in one transaction, under
one advisory lock, whichever runs them.

An executor opens transactions; a transaction runs one statement at a time with named
parameters (``%(name)s``) and returns the rows. Migration files are split into statements
(sql_statements.py), because the Data API takes one statement per call.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Mapping
from contextlib import AbstractContextManager
from importlib import resources
from typing import Any, Protocol

from droughtwatch_contract.database import MIGRATIONS_PACKAGE, is_migration, migrations_digest

from droughtwatch_inference.sql_statements import split_statements

# pg_advisory_xact_lock key for migrations: any constant, the same in every process.
MIGRATION_LOCK = 0x64726F75676874  # "drought"
# PostgreSQL's own choice for password_encryption = scram-sha-256 (scram_iterations).
SCRAM_ITERATIONS = 4096

# Which migrations ran: made before the first one (which grants on it, see 0003).
SCHEMA_MIGRATIONS_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    " version integer PRIMARY KEY, name text NOT NULL,"
    " applied_at timestamptz NOT NULL DEFAULT now())"
)

Row = tuple[Any, ...]


class Transaction(Protocol):
    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> list[Row]:
        """Run one statement (named parameters ``%(name)s``); the rows it returns, if any."""
        ...


class Executor(Protocol):
    def transaction(self) -> AbstractContextManager[Transaction]:
        """A transaction: committed when the block ends, rolled back when it raises."""
        ...


def _shipped_migrations() -> list[tuple[str, bytes]]:
    return [
        (entry.name, entry.read_bytes())
        for entry in resources.files(MIGRATIONS_PACKAGE).iterdir()
        if is_migration(entry.name)
    ]


def migrations_sha256() -> str:
    """The digest of the migrations this package ships: what the deploy keys its migration run
    on (computed there from the repository's files, by the same function)."""
    return migrations_digest(_shipped_migrations())


def migration_files() -> list[tuple[int, str, str]]:
    """(version, name, sql) of every migration shipped with the package, in order."""
    found = []
    for name, content in _shipped_migrations():
        version = int(name.split("_", 1)[0])
        found.append((version, name, content.decode()))
    found.sort()
    versions = [v for v, _, _ in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"duplicate migration versions: {versions}")
    return found


def expected_schema_version() -> int:
    """The newest migration this code ships."""
    return migration_files()[-1][0]


def run_migrations(executor: Executor) -> list[str]:
    """Apply the migrations not yet applied, in order, in one transaction under an advisory
    lock (two runs at once apply each migration once). Returns the names applied now."""
    applied_now = []
    with executor.transaction() as tx:
        # Counted, so that the statement returns an ordinary value on every executor (the lock
        # function returns void).
        tx.execute(
            "SELECT count(*) FROM (SELECT pg_advisory_xact_lock(%(lock)s)) AS locked",
            {"lock": MIGRATION_LOCK},
        )
        tx.execute(SCHEMA_MIGRATIONS_TABLE)
        done = {row[0] for row in tx.execute("SELECT version FROM schema_migrations")}
        for version, name, script in migration_files():
            if version in done:
                continue
            for statement in split_statements(script):
                tx.execute(statement)  # trusted files shipped with the package
            tx.execute(
                "INSERT INTO schema_migrations (version, name) VALUES (%(version)s, %(name)s)",
                {"version": version, "name": name},
            )
            applied_now.append(name)
    return applied_now


def schema_version(executor: Executor) -> int:
    """The newest migration applied (after run_migrations: the table exists)."""
    with executor.transaction() as tx:
        rows = tx.execute("SELECT coalesce(max(version), 0) FROM schema_migrations")
    return int(rows[0][0])


def scram_verifier(password: str, *, salt: bytes | None = None) -> str:
    """The SCRAM-SHA-256 verifier PostgreSQL stores for ``password`` (RFC 5802/7677, as psql's
    \\password and libpq compute it), so that the clear password never travels in a statement
    the server might log. ASCII passwords only: the ones droughtwatch generates are, and
    SASLprep (which PostgreSQL applies first) leaves ASCII unchanged."""
    if not password.isascii():
        raise ValueError("only ASCII passwords are supported (SASLprep is not implemented)")
    salt = salt if salt is not None else secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, SCRAM_ITERATIONS)
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    return f"SCRAM-SHA-256${SCRAM_ITERATIONS}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


def quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    """A standard-conforming string literal (ALTER ROLE takes no parameters)."""
    return "'" + value.replace("'", "''") + "'"


def set_role_password(executor: Executor, role: str, password: str) -> None:
    """Give ``role`` a password (as its SCRAM verifier) and the right to log in."""
    with executor.transaction() as tx:
        tx.execute(
            f"ALTER ROLE {quote_identifier(role)} WITH LOGIN PASSWORD "
            f"{quote_literal(scram_verifier(password))}"
        )
