"""`droughtwatch grafana`: Grafana in Docker on the local demo's database, or (with --stack or
--stack-outputs) on RDS through the bastion tunnel."""

from __future__ import annotations

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
from droughtwatch_tools.grafana.compose import compose_command, find_compose_file, run_grafana
from droughtwatch_tools.grafana.connection import (
    cloud_connection,
    local_connection,
    read_stack_outputs,
    tunnel_hint,
    tunnel_open,
    wait_until_reachable,
)
from droughtwatch_tools.printer import reports_errors, warning


@reports_errors
def grafana(
    stack_outputs: StackOutputsOption = None,
    stack: DatabaseStackOption = None,
    data_dir: DataDirOption = None,
    port: Annotated[
        int, typer.Option("--port", min=1, max=65535, help="Grafana's HTTP port.")
    ] = 3000,
    db_port: TunnelPortOption = 5432,
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
    in_cloud = reads_a_stack(stack, stack_outputs, data_dir)
    compose_path = compose_file or find_compose_file()
    compose = compose_command()  # fail on a missing Docker before fetching any secret
    if in_cloud:
        project = find_project_dir() or compose_path.parent.parent
        outputs = read_stack_outputs(stack_outputs, stack, project)
        connection = cloud_connection(outputs, db_port)
        if not tunnel_open(db_port):
            warning(
                f"nothing listens on 127.0.0.1:{db_port}: {tunnel_hint(stack, db_port)}, or "
                "the panels will show connection errors"
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
