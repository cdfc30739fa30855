"""`droughtwatch demo`: train a baseline, then run the whole pipeline day by day on generated
(or given) data, locally, and print a table of the days."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from droughtwatch_tools import printer
from droughtwatch_tools.commands.local import local_database
from droughtwatch_tools.errors import UserError
from droughtwatch_tools.printer import reports_errors


@reports_errors
def demo(
    days: Annotated[int, typer.Option(min=1, max=366, help="Days of data to simulate.")] = 14,
    seed: Annotated[int, typer.Option(help="Seed of the generated data and the model.")] = 7,
    images_per_day: Annotated[int, typer.Option(min=10, max=20_000)] = 300,
    drought_days: Annotated[
        int | None, typer.Option(min=0, help="Drought days at the end (default: a quarter).")
    ] = None,
    data: Annotated[
        Path | None,
        typer.Option(help="Use the raw TFRecord files in this folder instead of generated days."),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            help="Where predictions, reports, histories go (default: demo in the data folder,"
            " e.g. ~/.local/share/droughtwatch/demo)."
        ),
    ] = None,
) -> None:
    """Train a baseline, then run the whole pipeline day by day on generated data, locally."""
    if drought_days is not None and drought_days > days:
        raise UserError(f"--drought-days ({drought_days}) cannot exceed --days ({days})")
    if data is not None and not data.is_dir():
        raise UserError(
            f"--data {data} is not a folder", "point it at a folder of raw TFRecord files"
        )
    from droughtwatch_tools.local.demo import DemoOptions, run_demo
    from droughtwatch_tools.run_tables import print_demo

    options = DemoOptions(
        days=days,
        seed=seed,
        images_per_day=images_per_day,
        drought_days=drought_days,
        data_dir=data,
        out_dir=out,
    )
    database = local_database()
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=printer.console,
    ) as bar:
        task = bar.add_task("starting", total=None)

        def progress(message: str, done: int, total: int) -> None:
            bar.update(task, description=message, completed=done, total=total)

        try:
            result = run_demo(options, database, progress)
        except FileNotFoundError as exc:
            raise UserError(str(exc), "point --data at a folder of raw TFRecord files") from None
        except KeyboardInterrupt:
            raise UserError(
                "interrupted", "rerun `droughtwatch demo`; the ledger was left consistent"
            ) from None
    print_demo(result)
    if not all(day.execution.succeeded for day in result.days):
        raise typer.Exit(code=1)
