"""`droughtwatch dashboard`: the Grafana dashboard as one HTML page that opens offline, from the
local database or (with --stack or --stack-outputs) from RDS through the bastion tunnel, read
as Grafana reads them (the read-only role)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from droughtwatch_tools import printer
from droughtwatch_tools.cloud.outputs import find_project_dir
from droughtwatch_tools.commands.options import (
    DatabaseStackOption,
    DataDirOption,
    StackOutputsOption,
    TunnelPortOption,
    reads_a_stack,
)
from droughtwatch_tools.errors import UserError
from droughtwatch_tools.grafana.connection import (
    cloud_connection,
    local_connection,
    read_stack_outputs,
    tunnel_hint,
    tunnel_open,
)
from droughtwatch_tools.local.database import DSN_VARIABLE
from droughtwatch_tools.printer import reports_errors

DEFAULT_DAYS = 30
LOCAL_RUN_HINT = (
    "run `droughtwatch demo` (or `droughtwatch local run DIR` on your raw files) first, then "
    "this command again"
)
STACK_RUN_HINT = (
    "upload raw files (`droughtwatch upload FILES --date D`) and run the pipeline "
    "(`droughtwatch run`), or wait for its schedule; then run this command again"
)


def _local_source(data_dir: Path | None) -> tuple[str, str]:
    """(conninfo, what it is): DROUGHTWATCH_DATABASE_DSN as the local commands use it, else
    the demo's embedded database as its read-only Grafana role."""
    dsn = os.environ.get(DSN_VARIABLE)
    if dsn and data_dir is None:
        return dsn, f"the database of {DSN_VARIABLE}"
    connection = local_connection(data_dir)
    return connection.conninfo(), f"the local database (127.0.0.1:{connection.port})"


def _stack_source(stack: str | None, stack_outputs: Path | None, db_port: int) -> tuple[str, str]:
    """(conninfo, what it is): RDS through the tunnel as the read-only Grafana user. The tunnel
    is looked for before any secret is read."""
    project = find_project_dir() or find_project_dir(Path(__file__).parent)
    outputs = read_stack_outputs(stack_outputs, stack, project)
    if not tunnel_open(db_port):
        raise UserError(
            f"nothing listens on 127.0.0.1:{db_port}: the tunnel to the stack's database is "
            "not open",
            f"{tunnel_hint(stack, db_port)}, then run this command again",
        )
    connection = cloud_connection(outputs, db_port)
    name = f"stack {stack}" if stack else f"the stack of {stack_outputs}"
    return connection.conninfo(), f"{name} (through the tunnel on 127.0.0.1:{db_port})"


@reports_errors
def dashboard(
    out: Annotated[
        Path, typer.Option("--out", "-o", dir_okay=False, help="The page to write.")
    ] = Path("dashboard.html"),
    days: Annotated[
        int,
        typer.Option(min=1, max=3660, help="Days shown, up to the newest batch."),
    ] = DEFAULT_DAYS,
    stack: DatabaseStackOption = None,
    stack_outputs: StackOutputsOption = None,
    db_port: TunnelPortOption = 5432,
    data_dir: DataDirOption = None,
) -> None:
    """Write the "Model observability" dashboard as one HTML page that opens offline (no Docker,
    no network): the Grafana dashboard's panels and SQL, over the newest batches of the local
    database or, with --stack / --stack-outputs, of RDS through the bastion tunnel."""
    import psycopg

    from droughtwatch_tools.dashboard_page.page import write_page

    in_cloud = reads_a_stack(stack, stack_outputs, data_dir)
    if in_cloud:
        conninfo, source = _stack_source(stack, stack_outputs, db_port)
    else:
        conninfo, source = _local_source(data_dir)
    try:
        with printer.err.status(f"reading the panels' data from {source}"):
            page = write_page(conninfo, out, source=source, days=days)
    except psycopg.OperationalError as exc:
        raise UserError(
            f"cannot read {source}: {str(exc).strip().splitlines()[-1]}",
            tunnel_hint(stack, db_port)
            if in_cloud
            else "check that the database runs (`droughtwatch demo` starts the embedded one) or "
            "that DROUGHTWATCH_DATABASE_DSN is right",
        ) from None
    except psycopg.errors.UndefinedTable as exc:
        raise UserError(
            f"{source} has no droughtwatch schema yet ({str(exc).splitlines()[0]})",
            "run `droughtwatch db migrate` (on a stack, `pulumi up` migrates it)",
        ) from None
    if page is None:
        raise UserError(
            f"no runs yet: the ledger of {source} has no batch; nothing written",
            STACK_RUN_HINT if in_cloud else LOCAL_RUN_HINT,
        )
    shown = page.shown
    printer.console.print(
        f"dashboard: {shown.first_day} to {shown.last_day}, {len(page.panels)} panels; "
        f"open {out.resolve()} in a browser",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    for line in page.alerts:
        printer.console.print(line, markup=False, highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Add `dashboard` to the CLI."""
    app.command("dashboard")(dashboard)
