"""The options that name a deployed stack, shared by the commands that read its outputs, and the
options of the commands that read the pipeline's database as Grafana does."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from droughtwatch_tools.errors import UserError

StackOption = Annotated[
    str | None, typer.Option("--stack", "-s", help="Pulumi stack (default: the selected one).")
]
CwdOption = Annotated[
    Path | None,
    typer.Option("--cwd", help="Directory of Pulumi.yaml (default: found from here upwards)."),
]
RegionOption = Annotated[
    str | None, typer.Option("--region", help="AWS region (default: the stack's).")
]

# The commands that read the pipeline's database as Grafana does (`grafana`, `dashboard`): the
# local one by default, a stack's through the tunnel with --stack or --stack-outputs.
DatabaseStackOption = Annotated[
    str | None, typer.Option("--stack", help="Cloud: read the outputs of this Pulumi stack.")
]
StackOutputsOption = Annotated[
    Path | None,
    typer.Option(
        "--stack-outputs",
        help="Cloud: JSON from `pulumi stack output --json`.",
        exists=True,
        dir_okay=False,
    ),
]
TunnelPortOption = Annotated[
    int, typer.Option("--db-port", min=1, max=65535, help="Cloud: the tunnel's local port.")
]
DataDirOption = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="Local: the demo's database folder "
        "(default: $DROUGHTWATCH_HOME/postgres, e.g. ~/.local/share/droughtwatch/postgres).",
    ),
]


def reads_a_stack(stack: str | None, stack_outputs: Path | None, data_dir: Path | None) -> bool:
    """Whether those options name a stack's database (else the local one); a UserError for
    options that contradict each other."""
    if stack_outputs is not None and stack is not None:
        raise UserError(
            "pass either --stack or --stack-outputs, not both",
            "--stack asks Pulumi for the outputs, --stack-outputs reads them from a file: keep one",
        )
    in_cloud = stack_outputs is not None or stack is not None
    if in_cloud and data_dir is not None:
        raise UserError(
            "--data-dir is for the local database, not a stack",
            "drop --data-dir to read the stack's database (or drop --stack to read the local one)",
        )
    return in_cloud
