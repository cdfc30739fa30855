"""The options that name a deployed stack, shared by the commands that read its outputs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

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
