"""`droughtwatch local run` and `local history`: the pipeline on this machine (moto and the
embedded PostgreSQL), over a folder of raw files; and the database the local commands share."""

from __future__ import annotations

import datetime as dt
import json
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from droughtwatch_tools import printer
from droughtwatch_tools.errors import ExitCode, UserError
from droughtwatch_tools.printer import reports_errors

if TYPE_CHECKING:
    from droughtwatch_tools.local.database import LocalDatabase

local_app = typer.Typer(help="Run the pipeline on this machine (moto + embedded PostgreSQL).")


def local_database() -> LocalDatabase:
    """DROUGHTWATCH_DATABASE_DSN when set, else the embedded PostgreSQL (started if needed);
    migrated, with one connection per role. A server that does not start is a UserError."""
    from droughtwatch_tools.local.database import DSN_VARIABLE, open_local_database
    from droughtwatch_tools.local.postgres import EmbeddedPostgresError
    from droughtwatch_tools.local.state import postgres_root

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return open_local_database()
        except EmbeddedPostgresError as exc:
            raise UserError(
                f"the embedded PostgreSQL in {postgres_root()} did not start: {exc}",
                f"follow the advice above, or set {DSN_VARIABLE} to a PostgreSQL you run",
            ) from None


@local_app.command("run")
@reports_errors
def local_run(
    folder: Annotated[Path, typer.Argument(help="Folder of raw droughtwatch TFRecord files.")],
    date: Annotated[
        str | None, typer.Option(help="The data's date (YYYY-MM-DD); default today.")
    ] = None,
    model: Annotated[
        Path | None,
        typer.Option(
            help="Folder with model.json and its weights (see the model contract); checked "
            "before it replaces the stored model."
        ),
    ] = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Also print the Step Functions events.")
    ] = False,
    concurrency: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Items processed at once, each by a worker process of its own (the Map's "
            "MaxConcurrency); default: the number of cores.",
        ),
    ] = None,
) -> None:
    """Run the pipeline once over the raw files in a folder and print each file's outcome.
    The local buckets and the ledger persist under the user's data folder and are shared by
    runs at the same time, so a rerun processes only what is new.

    Exit codes: 0 the execution succeeded and no file failed; 3 it succeeded but files failed;
    4 the execution failed; 2 a bad option or configuration (nothing ran)."""
    from droughtwatch_tools.local.run import run_folder
    from droughtwatch_tools.progress import ExecutionProgress
    from droughtwatch_tools.run_tables import print_history, print_local_run

    if not folder.is_dir():
        raise UserError(f"{folder} is not a folder", "pass a folder of raw TFRecord files")
    try:
        day = dt.date.fromisoformat(date) if date else dt.date.today()
    except ValueError:
        raise UserError(f"--date {date!r} is not a date", "use the form 2026-11-27") from None
    if model is not None and not (model / "model.json").is_file():
        raise UserError(f"{model} has no model.json", "see the model contract in the README")
    database = local_database()
    console = printer.console
    # a pipeline error (e.g. the --model folder did not pass its check) is printed with its
    # problems by reports_errors
    with ExecutionProgress(console, "running the pipeline") as progress:
        outcome = run_folder(
            folder,
            day,
            database.app,
            model_dir=model,
            say=console.print,
            concurrency=concurrency,  # None: the pipeline's default, the CPUs
            on_progress=progress.map_run,
        )
    execution = outcome.execution
    if verbose:
        print_history(execution)
    print_local_run(outcome)
    code = outcome.summary.exit_code()
    if code == ExitCode.EXECUTION_FAILED:
        raise UserError(
            f"execution {execution.name} {execution.status}: {execution.error_line}",
            "fix the cause above and rerun; files already done are not processed again; "
            f"the events: droughtwatch local history {outcome.history_file}",
            code,
        )
    raise typer.Exit(code=code)


@local_app.command("history")
@reports_errors
def local_history(
    file: Annotated[Path, typer.Argument(help="An execution JSON written by demo or local run.")],
    item: Annotated[
        int | None,
        typer.Option(help="Also print the events of this item's child execution (item-N)."),
    ] = None,
) -> None:
    """Print an execution's history as the AWS console shows it: its events, its map runs'
    child executions (one per item), and the events of the failed children."""
    from droughtwatch_tools.execution import Execution
    from droughtwatch_tools.run_tables import print_history

    try:
        execution = Execution.from_dict(json.loads(file.read_text()))
    except (OSError, ValueError, KeyError) as exc:
        raise UserError(
            f"cannot read {file}: {exc}", "pass a file from <out>/executions/"
        ) from None
    items = sorted(c.item for c in execution.children if c.item is not None)
    if item is not None and item not in items:
        raise UserError(
            f"{file} has no item {item}",
            f"pass an item from {items[0]} to {items[-1]}" if items else "it ran no items",
        )
    print_history(execution, item)
