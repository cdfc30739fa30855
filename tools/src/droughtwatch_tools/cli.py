"""The `droughtwatch` command: the local demo and local runs, the database, and (through the
modules that register them) the deployed stack and Grafana."""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
import warnings
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from droughtwatch_tools import cloud
from droughtwatch_tools.grafana import command as grafana_command
from droughtwatch_tools.local.database import LocalDatabase
from droughtwatch_tools.local.outcome import ExitCode, failure_words

app = typer.Typer(
    help="droughtwatch: daily batch inference for satellite imagery, watched.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
local_app = typer.Typer(help="Run the pipeline on this machine (moto + embedded PostgreSQL).")
db_app = typer.Typer(help="The pipeline's PostgreSQL database.")
model_app = typer.Typer(help="Check a model folder against the model contract, and publish it.")
app.add_typer(local_app, name="local")
app.add_typer(db_app, name="db")
app.add_typer(model_app, name="model")
console = Console()
err = Console(stderr=True)


def fail(message: str, hint: str = "", code: int = 2) -> typer.Exit:
    """Print the error and what to do next; the Exit to raise (2: a usage or configuration
    error, nothing ran)."""
    err.print(f"[bold red]error:[/] {message}", highlight=False)
    if hint:
        err.print(f"[yellow]next:[/] {hint}", highlight=False)
    return typer.Exit(code=code)


def execution_error(error: str | None, cause: str | None) -> str:
    """A failed execution's error and cause as one line; the handlers' causes already start
    with the error code ("InvalidModel: ..."), which is then not repeated."""
    if not cause:
        return error or "the execution failed"
    if not error or cause.startswith(f"{error}:"):
        return cause
    return f"{error}: {cause}"


def local_database() -> LocalDatabase:
    """DROUGHTWATCH_DATABASE_DSN when set, else the embedded PostgreSQL (started if needed);
    migrated, with one connection per role."""
    from droughtwatch_tools.local.database import open_local_database
    from droughtwatch_tools.local.postgres import EmbeddedPostgresError
    from droughtwatch_tools.local.state import postgres_root

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return open_local_database()
        except EmbeddedPostgresError as exc:
            raise fail(
                f"the embedded PostgreSQL in {postgres_root()} did not start: {exc}",
                "follow the advice above, or set DROUGHTWATCH_DATABASE_DSN to a PostgreSQL you run",
            ) from None


def _history_table(execution: Any) -> Table:
    table = Table(title=f"execution {execution.name}: {execution.status}", show_lines=False)
    table.add_column("time", style="dim")
    table.add_column("event")
    table.add_column("state")
    table.add_column("detail", overflow="fold", max_width=80)
    for event in execution.events:
        detail = event.detail if "Failed" in event.type or "Fail" in event.type else ""
        table.add_row(
            event.timestamp.strftime("%H:%M:%S.%f")[:-3], event.type, event.state or "", detail
        )
    return table


@app.command()
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
    out: Annotated[Path, typer.Option(help="Where predictions, reports, histories go.")] = Path(
        "droughtwatch-demo"
    ),
) -> None:
    """Train a baseline, then run the whole pipeline day by day on generated data, locally."""
    if drought_days is not None and drought_days > days:
        raise fail(f"--drought-days ({drought_days}) cannot exceed --days ({days})")
    if data is not None and not data.is_dir():
        raise fail(f"--data {data} is not a folder", "point it at a folder of raw TFRecord files")
    from droughtwatch_tools.local.demo import DemoOptions, run_demo

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
        console=console,
    ) as bar:
        task = bar.add_task("starting", total=None)

        def progress(message: str, done: int, total: int) -> None:
            bar.update(task, description=message, completed=done, total=total)

        try:
            result = run_demo(options, database, progress)
        except FileNotFoundError as exc:
            raise fail(str(exc), "point --data at a folder of raw TFRecord files") from None
        except KeyboardInterrupt:
            raise fail(
                "interrupted", "rerun `droughtwatch demo`; the ledger was left consistent"
            ) from None
    _print_demo(result)


def _print_demo(result: Any) -> None:
    classes = list(result.model.get("classes", []))
    threshold = result.days[0].threshold if result.days else 0.25
    # compact (no rules, short headers, one space between columns): it fits 90 columns
    table = Table(
        title="droughtwatch demo: one run per day",
        caption=(
            "class shares of the predictions; PSI: prediction drift against the model's "
            f"reference (alert at >= {threshold}); NDVI, NDMI: their input drift scores; "
            "input: the day's input drift; acc.: accuracy on the labelled images"
        ),
        box=None,
        padding=(0, 1),
        collapse_padding=True,
        pad_edge=False,
        header_style="bold underline",
    )
    table.add_column("date", no_wrap=True, min_width=10)
    table.add_column("drought", justify="right")
    table.add_column("images", justify="right")
    table.add_column("blank", justify="right")
    for name in classes:
        table.add_column(name, justify="right")
    table.add_column("PSI", justify="right")
    table.add_column("alert")
    for index in DEMO_INDICES:
        table.add_column(index, justify="right")
    table.add_column("input")
    table.add_column("acc.", justify="right")
    alerts = 0
    for day in result.days:
        shares = [f"{day.class_shares.get(c, 0.0):.0%}" for c in classes]
        score = "-" if day.drift_score is None else f"{day.drift_score:.3f}"
        # the day's flag: Observe set it with the contract's is_drift, off without enough data
        alert = day.drift_detected
        alerts += alert
        status = day.execution.status
        table.add_row(
            day.date.isoformat() if status == "SUCCEEDED" else f"[red]{day.date} {status}[/]",
            f"{day.drought:.2f}",
            str(day.images),
            str(day.dropped),
            *shares,
            score,
            "[bold red]DRIFT[/]" if alert else _no_alert(day),
            *(_score(day.feature_drift.get(f"mean_{index}")) for index in DEMO_INDICES),
            "[bold red]DRIFT[/]" if day.input_drift_detected else _no_alert(day),
            _accuracy(day),
        )
    console.print(table)
    if result.skipped:
        console.print(f"not taken (not TFRecord files): {', '.join(result.skipped)}")
    failed = [d for d in result.days if d.execution.status != "SUCCEEDED"]
    for day in failed:
        console.print(_history_table(day.execution))
    training = result.model.get("training", {})
    console.print(
        f"model {result.model.get('name')} {result.model.get('version')}"
        f" (channels {', '.join(result.model.get('channels', []))};"
        f" held-out accuracy {training.get('accuracy', float('nan')):.2f})"
    )
    console.print(f"{alerts} of {len(result.days)} days at or above the drift alert threshold.")
    drifted = sum(d.input_drift_detected for d in result.days)
    console.print(f"{drifted} of {len(result.days)} days with input drift (NDVI, NDMI, ...).")
    console.print(
        "Predictions, Evidently reports, execution histories and the pipeline's JSON log:"
        f" [bold]{result.out_dir}[/]"
    )
    console.print(
        "Show an execution's history: droughtwatch local history "
        f"{result.out_dir / 'executions' / (result.days[-1].execution.name + '.json')}"
    )
    console.print("See it in Grafana (needs Docker): droughtwatch grafana")
    if failed:
        raise typer.Exit(code=1)


DEMO_INDICES = ("NDVI", "NDMI")


def _score(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _no_alert(day: Any) -> str:
    return "ok" if day.enough_data else "[dim]too few[/]"


def _accuracy(day: Any) -> str:
    if day.accuracy is None:
        return "-"
    text = f"{day.accuracy:.2f}"
    return f"[bold red]{text}[/]" if day.accuracy_alert else text


@local_app.command("run")
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
) -> None:
    """Run the pipeline once over the raw files in a folder and print each file's outcome.
    The local buckets and the ledger persist under the user's data folder and are shared by
    runs at the same time, so a rerun processes only what is new.

    Exit codes: 0 the execution succeeded and no file failed; 3 it succeeded but files failed;
    4 the execution failed; 2 a bad option or configuration (nothing ran)."""
    from droughtwatch_inference.errors import DroughtwatchError

    from droughtwatch_tools.local.run import run_folder

    if not folder.is_dir():
        raise fail(f"{folder} is not a folder", "pass a folder of raw TFRecord files")
    try:
        day = dt.date.fromisoformat(date) if date else dt.date.today()
    except ValueError:
        raise fail(f"--date {date!r} is not a date", "use the form 2026-11-27") from None
    if model is not None and not (model / "model.json").is_file():
        raise fail(f"{model} has no model.json", "see the model contract in the README")
    database = local_database()
    try:
        with console.status("running the pipeline"):
            outcome = run_folder(folder, day, database.app, model_dir=model, say=console.print)
    except DroughtwatchError as exc:  # e.g. the --model folder did not pass its check
        _print_problems(getattr(exc, "problems", []))
        raise fail(str(exc), exc.hint) from None
    if verbose:
        console.print(_history_table(outcome.execution))
    _print_local_run(outcome)
    code = outcome.summary.exit_code()
    if code == ExitCode.EXECUTION_FAILED:
        execution = outcome.execution
        raise fail(
            f"execution {execution.name} {execution.status}: "
            f"{execution_error(execution.error, execution.cause)}",
            "fix the cause above and rerun; files already done are not processed again; "
            f"the events: droughtwatch local history {outcome.history_file}",
            code=code,
        )
    raise typer.Exit(code=code)


def _print_local_run(outcome: Any) -> None:
    summary = outcome.summary
    lines = summary.files
    classes: list[str] = []
    for line in lines:
        classes.extend(c for c in line.outcome.class_shares if c not in classes)
    status = outcome.execution.status
    table = Table(
        title=f"local run {outcome.execution.name}: {status}, {len(lines)} files", show_lines=False
    )
    table.add_column("file", overflow="fold")
    table.add_column("status", overflow="fold")
    table.add_column("images", justify="right")
    table.add_column("dropped", justify="right")
    for name in classes:
        table.add_column(f"class {name}", justify="right")
    table.add_column("drift (PSI)", justify="right")
    table.add_column("alert")
    table.add_column("report", overflow="fold")
    for line in lines:
        o = line.outcome
        shares = [f"{o.class_shares[c]:.0%}" if c in o.class_shares else "-" for c in classes]
        if o.drift_detected is None:
            alert = "-"
        elif o.drift_detected:
            alert = f"[bold red]DRIFT >= {o.drift_threshold}[/]"
        else:
            alert = "ok"
        state = line.state
        if line.failed:
            state = f"[red]{state}[/]"
        elif line.settled:
            state = f"[dim]{state}[/]"
        elif not line.done:
            state = f"[yellow]{state}[/]"
        table.add_row(
            line.name,
            state,
            "-" if o.images is None else str(o.images),
            "-" if o.dropped is None else str(o.dropped),
            *shares,
            "-" if o.drift_score is None else f"{o.drift_score:.3f}",
            alert,
            str(line.report_path) if line.report_path else "-",
        )
    console.print(table)
    if outcome.skipped:
        console.print(f"not taken (not TFRecord files): {', '.join(outcome.skipped)}")
    if outcome.ledger_error:
        console.print(
            f"[red]cannot read the files' states from the ledger:[/] {outcome.ledger_error}"
        )
    failed = summary.failed
    if failed:
        console.print(f"[bold red]{len(failed)} failed:[/]")
        for line in failed:
            console.print(f"- {failure_words(line, summary.max_attempts)}", highlight=False)
    unfinished = summary.unfinished
    if unfinished and status == "SUCCEEDED":
        console.print(
            f"{len(unfinished)} not done yet (a later run, or the run that holds them, finishes"
            f" them): {', '.join(line.name for line in unfinished)}"
        )
    console.print(f"local buckets: {outcome.store_root}", highlight=False)
    console.print(f"history: {outcome.history_file}", highlight=False)
    console.print(f"pipeline log: {outcome.log_file}", highlight=False)


@local_app.command("history")
def local_history(
    file: Annotated[Path, typer.Argument(help="An execution JSON written by demo or local run.")],
) -> None:
    """Print an execution's history as the AWS console shows it."""
    from droughtwatch_tools.local.runner import Execution, HistoryEvent

    try:
        raw = json.loads(file.read_text())
        execution = Execution(
            name=raw["name"],
            status=raw["status"],
            error=raw.get("error"),
            cause=raw.get("cause"),
            output=raw.get("output"),
            seconds=raw.get("seconds", 0.0),
            events=[
                HistoryEvent(
                    dt.datetime.fromisoformat(e["timestamp"]), e["type"], e["state"], e["detail"]
                )
                for e in raw["events"]
            ],
        )
    except (OSError, ValueError, KeyError) as exc:
        raise fail(f"cannot read {file}: {exc}", "pass a file from <out>/executions/") from None
    console.print(_history_table(execution))


@db_app.command("migrate")
def db_migrate() -> None:
    """Apply the schema migrations as the database's owner (the stages only check the schema:
    their role cannot change it). Locally: DROUGHTWATCH_DATABASE_DSN or the embedded server."""
    from droughtwatch_tools.local.database import migrate_dsn
    from droughtwatch_tools.local.postgres import EmbeddedPostgres
    from droughtwatch_tools.local.state import postgres_root

    dsn = os.environ.get("DROUGHTWATCH_DATABASE_DSN")
    try:
        if dsn:
            applied = migrate_dsn(dsn)
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                applied = migrate_dsn(EmbeddedPostgres(postgres_root()).start())
    except Exception as exc:
        raise fail(
            f"cannot migrate: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
            "check DROUGHTWATCH_DATABASE_DSN (its user must own the database), or unset it to "
            "use the embedded PostgreSQL",
        ) from None
    console.print(f"applied: {', '.join(applied)}" if applied else "schema is up to date")


# Greedy list options: `--data a b c` (as a shell glob expands) takes every file after it.
_GREEDY = {"allow_extra_args": True, "ignore_unknown_options": False}


def _greedy(ctx: typer.Context, files: list[Path], flag: str) -> list[Path]:
    if ctx.args and not files:
        raise fail(f"unexpected argument(s) {' '.join(ctx.args)}", f"name raw files after {flag}")
    return [*files, *(Path(a) for a in ctx.args)]


def _print_problems(problems: list[Any]) -> None:
    for problem in problems:
        err.print(f"[red]problem:[/] {problem}", highlight=False)


def _print_check(report: Any) -> None:
    manifest = report.manifest
    if manifest is not None:
        console.print(
            f"model {manifest.name} {manifest.version}: {manifest.format}, layout "
            f"{manifest.layout}, channels {', '.join(manifest.channels)}, {manifest.outputs} "
            f"for classes {', '.join(manifest.classes)}",
            highlight=False,
        )
    if report.predictor is not None:
        console.print("[green]weights load and answer the probe[/]")
    run = report.data
    if run is not None and run.images:
        table = Table(title=f"{run.images} images from {len(run.files)} file(s)")
        for name in run.class_counts:
            table.add_column(f"class {name}", justify="right")
        shares = run.class_shares or {}
        table.add_row(*(f"{c} ({shares.get(n, 0):.1%})" for n, c in run.class_counts.items()))
        console.print(table)
        console.print(
            f"throughput {run.images_per_second:,.0f} images/s in the model "
            f"({run.images / run.seconds:,.0f} images/s end to end, with preprocessing); "
            f"{run.dropped} blank image(s) dropped",
            highlight=False,
        )
    console.print(f"peak memory {report.peak_rss_mb:,.0f} MB", highlight=False)
    _print_problems(report.problems)


@model_app.command("check", context_settings=_GREEDY)
def model_check(
    ctx: typer.Context,
    folder: Annotated[Path, typer.Argument(help="Folder with model.json and its weights.")],
    data: Annotated[
        list[Path] | None,
        typer.Option("--data", help="Raw TFRecord files to run the model on (one or more)."),
    ] = None,
) -> None:
    """Validate model.json, load the weights and run the probe; with --data, run the real
    preprocessing and the model on raw files. Every problem is reported; exits 1 on any. With
    --data, a model.json may lack reference_class_shares (publish --reference computes them)."""
    from droughtwatch_tools.model_check import check_model

    files = _greedy(ctx, data or [], "--data")
    with console.status("checking the model"):
        report = check_model(folder, files, shares_from_data=bool(files))
    _print_check(report)
    if not report.ok:
        err.print(f"[bold red]{len(report.problems)} problem(s)[/] in {folder}", highlight=False)
        raise typer.Exit(code=1)
    console.print(f"[bold green]{folder} passes the model contract[/]", highlight=False)


@model_app.command("publish", context_settings=_GREEDY)
def model_publish(
    ctx: typer.Context,
    folder: Annotated[Path, typer.Argument(help="Folder with model.json and its weights.")],
    local: Annotated[
        bool, typer.Option("--local", help="Publish to the local runs' model bucket.")
    ] = False,
    stack: cloud.StackOption = None,
    reference: Annotated[
        list[Path] | None,
        typer.Option(
            "--reference",
            help="Raw files of reference data: computes reference_class_shares and the input "
            "summaries from them.",
        ),
    ] = None,
    model_bucket: Annotated[
        str | None, typer.Option("--model-bucket", help="Model bucket (default: the stack's).")
    ] = None,
    model_prefix: Annotated[
        str | None, typer.Option("--model-prefix", help="Model prefix (default: the stack's).")
    ] = None,
    region: cloud.RegionOption = None,
    cwd: cloud.CwdOption = None,
) -> None:
    """Check the model, upload it under <prefix>versions/<version>/, then make it the one
    Inference reads. Earlier versions stay: to roll back, publish an earlier folder again."""
    from droughtwatch_inference.errors import DroughtwatchError

    from droughtwatch_tools.model_publish import publish_folder

    files = _greedy(ctx, reference or [], "--reference")
    if local == (stack is not None or model_bucket is not None):
        raise fail(
            "say where to publish: --local, or --stack NAME (or --model-bucket)",
            "--local for `droughtwatch local run`, --stack for a deployed stack",
        )
    try:
        store, bucket, prefix = _model_bucket(local, stack, model_bucket, model_prefix, region, cwd)
        with console.status("checking and publishing the model"):
            published = publish_folder(folder, store, bucket, prefix, reference=files)
    except cloud.CloudError as exc:
        raise fail(str(exc), exc.hint) from None
    except DroughtwatchError as exc:
        _print_problems(getattr(exc, "problems", []))
        raise fail(str(exc), exc.hint) from None
    _print_check(published.report)
    for key in published.keys:
        console.print(f"wrote s3://{bucket}/{key}", highlight=False)
    manifest = published.manifest
    console.print(
        f"[bold green]Inference now reads {manifest.name} {manifest.version}[/] "
        f"(s3://{bucket}/{published.pointer_key})"
        + (
            " [dim](version already in the bucket: only the pointer moved)[/]"
            if published.reused
            else ""
        ),
        highlight=False,
    )


def _model_bucket(
    local: bool,
    stack: str | None,
    bucket: str | None,
    prefix: str | None,
    region: str | None,
    cwd: Path | None,
) -> tuple[Any, str, str]:
    """(store, bucket, prefix) of the local runs' model bucket or the stack's."""
    if local:
        from droughtwatch_inference.adapters.folder_store import FolderStore

        from droughtwatch_tools.local.runner import LocalConfig
        from droughtwatch_tools.local.state import store_root

        return FolderStore(store_root()), LocalConfig.model_bucket, LocalConfig.model_prefix
    from types import SimpleNamespace

    from droughtwatch_inference.adapters.storage import ObjectStore

    Out = cloud.StackOutput
    outputs = cloud.resolve_outputs(
        [Out.MODEL_BUCKET, Out.MODEL_PREFIX],
        {Out.MODEL_BUCKET: bucket, Out.MODEL_PREFIX: prefix, Out.REGION: region},
        stack,
        cwd,
    )
    store = ObjectStore(SimpleNamespace(aws_endpoint_url=None, aws_region=outputs.get(Out.REGION)))
    return store, outputs[Out.MODEL_BUCKET], outputs[Out.MODEL_PREFIX]


# Commands against a deployed stack, and Grafana, live beside the code they drive.
cloud.register(app)
grafana_command.register(app)


def main() -> None:  # pragma: no cover - entry point
    sys.exit(app())
