"""The `droughtwatch` command: the app that wires the sub-commands, each in its own module under
droughtwatch_tools.commands (the demo and local runs, the database, model check and publish,
the deployed stack), Grafana and its offline page."""

from __future__ import annotations

import sys

import typer

from droughtwatch_tools.commands import cloud, dashboard, grafana
from droughtwatch_tools.commands.db import db_app
from droughtwatch_tools.commands.demo import demo
from droughtwatch_tools.commands.local import local_app
from droughtwatch_tools.commands.model import model_app

app = typer.Typer(
    help="droughtwatch: daily batch inference for satellite imagery, watched.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.command()(demo)
app.add_typer(local_app, name="local")
app.add_typer(db_app, name="db")
app.add_typer(model_app, name="model")
cloud.register(app)
grafana.register(app)
dashboard.register(app)


def main() -> None:  # pragma: no cover - entry point
    sys.exit(app())
