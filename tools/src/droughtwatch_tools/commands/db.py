"""`droughtwatch db migrate`: the schema migrations, applied as the database's owner."""

from __future__ import annotations

import os
import warnings

import typer

from droughtwatch_tools import printer
from droughtwatch_tools.errors import UserError
from droughtwatch_tools.printer import reports_errors

db_app = typer.Typer(help="The pipeline's PostgreSQL database.")


@db_app.command("migrate")
@reports_errors
def db_migrate() -> None:
    """Apply the schema migrations as the database's owner (the stages only check the schema:
    their role cannot change it). Locally: DROUGHTWATCH_DATABASE_DSN or the embedded server."""
    from droughtwatch_tools.local.database import DSN_VARIABLE, migrate_dsn
    from droughtwatch_tools.local.postgres import EmbeddedPostgres
    from droughtwatch_tools.local.state import postgres_root

    dsn = os.environ.get(DSN_VARIABLE)
    try:
        if dsn:
            applied = migrate_dsn(dsn)
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                applied = migrate_dsn(EmbeddedPostgres(postgres_root()).start())
    except Exception as exc:
        raise UserError(
            f"cannot migrate: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
            f"check {DSN_VARIABLE} (its user must own the database), or unset it to use the "
            "embedded PostgreSQL",
        ) from None
    printer.console.print(f"applied: {', '.join(applied)}" if applied else "schema is up to date")
