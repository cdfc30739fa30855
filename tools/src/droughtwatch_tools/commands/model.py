"""`droughtwatch model check` and `model publish`: a model folder against the model contract,
and published to the local runs' model bucket or a stack's."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from droughtwatch_tools import printer
from droughtwatch_tools.commands.options import CwdOption, RegionOption, StackOption
from droughtwatch_tools.errors import UserError
from droughtwatch_tools.printer import reports_errors

if TYPE_CHECKING:
    from droughtwatch_tools.model_check import CheckReport

model_app = typer.Typer(help="Check a model folder against the model contract, and publish it.")

# Greedy list options: `--data a b c` (as a shell glob expands) takes every file after it.
_GREEDY = {"allow_extra_args": True, "ignore_unknown_options": False}


def _greedy(ctx: typer.Context, files: list[Path], flag: str) -> list[Path]:
    if ctx.args and not files:
        raise UserError(
            f"unexpected argument(s) {' '.join(ctx.args)}", f"name raw files after {flag}"
        )
    return [*files, *(Path(a) for a in ctx.args)]


def _print_check(report: CheckReport) -> None:
    console = printer.console
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
    printer.problems(report.problems)


@model_app.command("check", context_settings=_GREEDY)
@reports_errors
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
    with printer.console.status("checking the model"):
        report = check_model(folder, files, shares_from_data=bool(files))
    _print_check(report)
    if not report.ok:
        printer.err.print(
            f"[bold red]{len(report.problems)} problem(s)[/] in {folder}", highlight=False
        )
        raise typer.Exit(code=1)
    printer.console.print(f"[bold green]{folder} passes the model contract[/]", highlight=False)


@model_app.command("publish", context_settings=_GREEDY)
@reports_errors
def model_publish(
    ctx: typer.Context,
    folder: Annotated[Path, typer.Argument(help="Folder with model.json and its weights.")],
    local: Annotated[
        bool, typer.Option("--local", help="Publish to the local runs' model bucket.")
    ] = False,
    stack: StackOption = None,
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
    region: RegionOption = None,
    cwd: CwdOption = None,
) -> None:
    """Check the model, upload it under <prefix>versions/<version>/, then make it the one
    Inference reads. Earlier versions stay: to roll back, publish an earlier folder again."""
    from droughtwatch_tools.model_publish import publish_folder

    files = _greedy(ctx, reference or [], "--reference")
    if local == (stack is not None or model_bucket is not None):
        raise UserError(
            "say where to publish: --local, or --stack NAME (or --model-bucket)",
            "--local for `droughtwatch local run`, --stack for a deployed stack",
        )
    store, bucket, prefix = _model_bucket(local, stack, model_bucket, model_prefix, region, cwd)
    # a model that fails its check is printed with its problems by reports_errors
    with printer.console.status("checking and publishing the model"):
        published = publish_folder(folder, store, bucket, prefix, reference=files)
    _print_check(published.report)
    console = printer.console
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
    from droughtwatch_tools.buckets import local_store, stack_store

    if local:
        from droughtwatch_tools.local.runner import LocalConfig

        return local_store(), LocalConfig.model_bucket, LocalConfig.model_prefix
    from droughtwatch_contract.outputs import StackOutput as Out

    s3, outputs = stack_store(
        [Out.MODEL_BUCKET, Out.MODEL_PREFIX],
        {Out.MODEL_BUCKET: bucket, Out.MODEL_PREFIX: prefix, Out.REGION: region},
        stack,
        cwd,
    )
    return s3, outputs[Out.MODEL_BUCKET], outputs[Out.MODEL_PREFIX]
