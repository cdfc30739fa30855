"""`droughtwatch grafana`: Grafana in Docker on the local demo's database, or (with --stack or
--stack-outputs) on RDS through the bastion tunnel."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Annotated

import typer

from droughtwatch_tools import printer
from droughtwatch_tools.cloud.outputs import find_project_dir
from droughtwatch_tools.errors import UserError
from droughtwatch_tools.grafana.compose import compose_command, find_compose_file, run_grafana
from droughtwatch_tools.grafana.connection import (
    cloud_connection,
    local_connection,
    read_stack_outputs,
    wait_until_reachable,
)
from droughtwatch_tools.printer import reports_errors, warning


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@reports_errors
def grafana(
    stack_outputs: Annotated[
        Path | None,
        typer.Option(
            "--stack-outputs",
            help="Cloud: JSON from `pulumi stack output --json`.",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    stack: Annotated[
        str | None,
        typer.Option("--stack", help="Cloud: read the outputs of this Pulumi stack."),
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir",
            help="Local: the demo's database folder "
            "(default: $DROUGHTWATCH_HOME/postgres, e.g. ~/.local/share/droughtwatch/postgres).",
        ),
    ] = None,
    port: Annotated[
        int, typer.Option("--port", min=1, max=65535, help="Grafana's HTTP port.")
    ] = 3000,
    db_port: Annotated[
        int, typer.Option("--db-port", min=1, max=65535, help="Cloud: the tunnel's local port.")
    ] = 5432,
    detach: Annotated[bool, typer.Option("--detach", "-d", help="Run in the background.")] = False,
    compose_file: Annotated[
        Path | None,
        typer.Option(
            "--compose-file",
            help="Default: grafana/docker-compose.yaml.",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
) -> None:
    """Open the "Model observability" dashboard: Grafana in Docker, pointed at the local demo's
    database, or (with --stack / --stack-outputs) at RDS through the bastion tunnel."""
    if stack_outputs is not None and stack is not None:
        raise UserError(
            "pass either --stack or --stack-outputs, not both",
            "--stack asks Pulumi for the outputs, --stack-outputs reads them from a file: keep one",
        )
    in_cloud = stack_outputs is not None or stack is not None
    if in_cloud and data_dir is not None:
        raise UserError(
            "--data-dir is for the local demo, not a stack",
            "drop --data-dir to open the stack's database (or drop --stack to open the demo's)",
        )
    compose_path = compose_file or find_compose_file()
    compose = compose_command()  # fail on a missing Docker before fetching any secret
    if in_cloud:
        project = find_project_dir() or compose_path.parent.parent
        outputs = read_stack_outputs(stack_outputs, stack, project)
        connection = cloud_connection(outputs, db_port)
        if not _port_open(db_port):
            warning(
                f"nothing listens on 127.0.0.1:{db_port}: open the tunnel with "
                f"`droughtwatch tunnel{f' --stack {stack}' if stack else ''} --local-port "
                f"{db_port}` (grafana/README.md), or the panels will show connection errors"
            )
        else:
            # a paused database resumes on this first connection: wait for it, as the stages do
            problem = wait_until_reachable(
                connection, lambda message: printer.err.print(message, highlight=False)
            )
            if problem:
                warning(
                    f"the database behind the tunnel does not answer ({problem}): the panels "
                    "will show connection errors until it does"
                )
    else:
        connection = local_connection(data_dir)
    code = run_grafana(connection, compose, compose_path, port, detach)
    if code != 0:
        raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    """Add `grafana` to the CLI."""
    app.command("grafana")(grafana)
