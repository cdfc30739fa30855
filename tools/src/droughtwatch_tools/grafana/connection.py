"""Where Grafana's datasource connects: the local demo's embedded database, or RDS through the
bastion tunnel as the read-only droughtwatch_grafana user (its secret read from the stack).

The password travels only in the compose subprocess's environment (:meth:`Connection.environment`),
never in a file or in the printed output. A paused Aurora database resumes on the first
connection: `wait_until_reachable` makes that connection and waits for it (as the stages do)
before Grafana starts, so the dashboard's first panels do not fail."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from droughtwatch_contract.database import GRAFANA_USER
from droughtwatch_contract.outputs import StackOutput
from droughtwatch_contract.settings import CommonSettings, DatabaseSettings

from droughtwatch_tools.cloud.outputs import stack_outputs
from droughtwatch_tools.errors import UserError
from droughtwatch_tools.grafana.datasource import (
    ENV_HOST,
    ENV_NAME,
    ENV_PASSWORD,
    ENV_PORT,
    ENV_SSLMODE,
    ENV_USER,
)

DATABASE_NAME: str = CommonSettings.model_fields["database_name"].default
_OUTPUTS_HINT = "write them with `pulumi stack output --json > outputs.json`"


@dataclass(frozen=True)
class Connection:
    """Where Grafana's datasource connects. Repr hides the password."""

    host: str
    port: int
    database: str
    user: str
    password: str
    sslmode: str

    def __repr__(self) -> str:
        return (
            f"Connection(host={self.host!r}, port={self.port}, database={self.database!r}, "
            f"user={self.user!r}, sslmode={self.sslmode!r})"
        )

    def conninfo(self) -> str:
        """The connection as a libpq string, for a reader that connects itself (the offline
        dashboard page); held in memory only."""
        from psycopg.conninfo import make_conninfo

        return make_conninfo(
            host=self.host,
            port=self.port,
            dbname=self.database,
            user=self.user,
            password=self.password,
            sslmode=self.sslmode,
        )

    def environment(self) -> dict[str, str]:
        """The compose subprocess's extra variables (the datasource file reads them)."""
        return {
            ENV_HOST: self.host,
            ENV_PORT: str(self.port),
            ENV_NAME: self.database,
            ENV_USER: self.user,
            ENV_PASSWORD: self.password,
            ENV_SSLMODE: self.sslmode,
        }


# -- the local demo ---------------------------------------------------------------------------
def default_data_dir() -> Path:
    """Where the demo keeps its embedded PostgreSQL."""
    from droughtwatch_tools.local.state import postgres_root

    return postgres_root()


def local_connection(data_dir: Path | None = None) -> Connection:
    """The demo's embedded database, started if its files exist but the server is stopped."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    from droughtwatch_tools.local.postgres import (
        DATABASE,
        EmbeddedPostgres,
        EmbeddedPostgresError,
    )

    root = Path(data_dir) if data_dir is not None else default_data_dir()
    if not (root / "pgdata" / "PG_VERSION").exists():
        raise UserError(
            f"no demo database in {root}",
            "run `droughtwatch demo` first, or pass --data-dir with the folder that holds it",
        )
    pg = EmbeddedPostgres(root)
    try:
        if not pg.is_running():
            pg.start()
        # Grafana reads through its read-only role, as on RDS (migration 0003)
        info = conninfo_to_dict(pg.role_dsn(GRAFANA_USER, DATABASE))
    except EmbeddedPostgresError as exc:
        raise UserError(
            f"cannot start the demo database in {root}: {exc}",
            f"see the server's log ({pg.log}); if the folder is past repair, remove it and run "
            "`droughtwatch demo` again",
        ) from None
    except psycopg.Error as exc:
        raise UserError(
            f"the demo database in {root} has no Grafana role yet ({type(exc).__name__})",
            "run `droughtwatch db migrate` or `droughtwatch demo` first",
        ) from None
    return Connection("127.0.0.1", pg.port, DATABASE, GRAFANA_USER, info["password"], "disable")


# -- a deployed stack -------------------------------------------------------------------------
def read_stack_outputs(path: Path | None, stack: str | None, cwd: Path | None) -> dict[str, Any]:
    """The stack's outputs, from a file written by `pulumi stack output --json` or from the
    Pulumi CLI itself (run in ``cwd``, the directory of Pulumi.yaml)."""
    if path is not None:
        try:
            outputs = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise UserError(
                f"cannot read stack outputs from {path} ({type(exc).__name__})", _OUTPUTS_HINT
            ) from None
        if not isinstance(outputs, dict):
            raise UserError(f"{path} holds no JSON object of stack outputs", _OUTPUTS_HINT)
        return outputs
    try:
        return stack_outputs(stack, cwd)
    except UserError as exc:
        raise UserError(
            str(exc),
            "pass --stack-outputs with a file from `pulumi stack output --json` instead",
        ) from None


def fetch_database_credentials(secret_arn: str, region: str | None) -> tuple[str, str]:
    """(username, password) from the read-only Grafana user's secret, read by the service's
    secret reader (the migrate function gives the user the same password)."""
    from droughtwatch_inference.adapters.database import read_secret
    from droughtwatch_inference.errors import SecretUnavailable

    try:
        # the reader takes the AWS settings of a handler: here, the stack's region only
        secret = read_secret(SimpleNamespace(aws_region=region), secret_arn, refresh=True)
    except SecretUnavailable as exc:
        raise UserError(
            f"cannot read the Grafana database secret: {exc}",
            "check your AWS credentials (AWS_PROFILE) and that they may call "
            "secretsmanager:GetSecretValue on it (the stack's "
            f"{StackOutput.OPERATOR_POLICY.value} output grants it)",
        ) from None
    return secret["username"], secret["password"]


def cloud_connection(
    outputs: Mapping[str, Any],
    port: int,
    fetch: Callable[[str, str | None], tuple[str, str]] = fetch_database_credentials,
) -> Connection:
    """RDS through the tunnel at 127.0.0.1:port, as the read-only droughtwatch_grafana user
    (its secret's ARN is a stack output; the master secret is never read here)."""
    arn = outputs.get(StackOutput.GRAFANA_SECRET_ARN)
    if not arn:
        raise UserError(
            f"the stack outputs have no {StackOutput.GRAFANA_SECRET_ARN.value}",
            "check that this is a droughtwatch stack, and deploy it with this version "
            "(`pulumi up`)",
        )
    user, password = fetch(str(arn), outputs.get(StackOutput.REGION))
    database = str(outputs.get(StackOutput.DATABASE_NAME) or DATABASE_NAME)
    # Through the tunnel the certificate names the RDS host, not 127.0.0.1, so verify-full
    # cannot pass: require TLS without verifying the name.
    return Connection("127.0.0.1", port, database, user, password, "require")


# As long as the stages wait for a resuming database.
RESUME_SECONDS: float = DatabaseSettings.model_fields["database_resume_seconds"].default


def wait_until_reachable(
    connection: Connection,
    say: Callable[[str], None],
    bound_seconds: float = RESUME_SECONDS,
) -> str | None:
    """Connect through the tunnel as Grafana will, waiting while the database resumes (the
    service's own rule: adapters.resume). Returns why it is still unreachable, or None."""
    import psycopg
    from droughtwatch_inference.adapters.resume import wait_for_database

    def attempt() -> None:
        psycopg.connect(connection.conninfo(), connect_timeout=10).close()

    where = f"{connection.host}:{connection.port}/{connection.database}"
    try:
        wait_for_database(attempt, bound_seconds, where, report=lambda message, **_: say(message))
    except psycopg.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return first.replace(connection.password, "***")
    return None


def tunnel_open(port: int) -> bool:
    """Whether something listens on 127.0.0.1:``port``, where the tunnel's local end is."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def tunnel_hint(stack: str | None, port: int) -> str:
    """How to open the tunnel to the stack's database on that local port."""
    flag = f" --stack {stack}" if stack else ""
    return (
        f"open the tunnel with `droughtwatch tunnel{flag} --local-port {port}` in another "
        "terminal and keep it open (grafana/README.md)"
    )
