"""`droughtwatch labels upload` and `labels strip`: ground truth that arrives after the
predictions, put where the next run reads it (labels/ in the data bucket of the local runs or
of a stack), and raw files turned into unlabelled imagery with their labels beside them."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from droughtwatch_tools import printer
from droughtwatch_tools.commands.options import CwdOption, RegionOption, StackOption
from droughtwatch_tools.errors import UserError
from droughtwatch_tools.printer import reports_errors

if TYPE_CHECKING:
    from droughtwatch_tools.label_upload import CheckedLabels

labels_app = typer.Typer(
    help="Labels that arrive after the predictions: upload a label file (id,label) that the "
    "next run merges into the days it labels."
)


def _print_checked(checked: CheckedLabels, path: Path) -> None:
    console = printer.console
    parsed = checked.parsed
    classes = ", ".join(f"{name}: {n}" for name, n in checked.class_counts.items())
    console.print(
        f"checked {path}: {parsed.format}, {len(parsed.labels)} image "
        f"id{'' if len(parsed.labels) == 1 else 's'} labelled ({classes})",
        highlight=False,
    )
    if checked.unknown_ids:
        console.print(
            f"{checked.unknown_ids} of {len(parsed.labels)} ids name a raw file without "
            "predictions yet: kept, and matched when its predictions come",
            highlight=False,
        )


@labels_app.command("upload")
@reports_errors
def labels_upload(
    file: Annotated[
        Path, typer.Argument(help="A CSV or Parquet file with the columns id and label.")
    ],
    local: Annotated[
        bool, typer.Option("--local", help="Upload to the local runs' data bucket.")
    ] = False,
    stack: StackOption = None,
    data_bucket: Annotated[
        str | None, typer.Option("--data-bucket", help="Data bucket (default: the stack's).")
    ] = None,
    region: RegionOption = None,
    cwd: CwdOption = None,
) -> None:
    """Check a label file (the pipeline's own rules: every bad row is named, nothing is
    uploaded), then put it under labels/ in the data bucket. The next run reads it first and
    recomputes model quality for the days whose images it labels."""
    from droughtwatch_tools.label_upload import check_and_upload

    if local == (stack is not None or data_bucket is not None):
        raise UserError(
            "say where to upload: --local, or --stack NAME (or --data-bucket)",
            "--local for `droughtwatch local run`, --stack for a deployed stack",
        )
    from droughtwatch_inference.errors import InvalidLabelFile

    store, bucket, next_run = _data_bucket(local, stack, data_bucket, region, cwd)
    try:
        checked, key = check_and_upload(file, store, bucket)
    except InvalidLabelFile as exc:
        raise UserError(
            str(exc), "fix the named rows and run the command again: nothing was uploaded"
        ) from None
    _print_checked(checked, file)
    printer.console.print(
        f"uploaded {file} -> s3://{bucket}/{key}", highlight=False, soft_wrap=True
    )
    printer.console.print(
        f"The next run ({next_run}) reads it first and recomputes the days it labels.",
        highlight=False,
    )


@labels_app.command("strip")
@reports_errors
def labels_strip(
    files: Annotated[list[Path], typer.Argument(help="Raw droughtwatch TFRecord files.")],
    out: Annotated[
        Path, typer.Option("--out", help="Folder for the unlabelled files and their labels.")
    ],
) -> None:
    """Write each raw file without its labels to OUT/<name>, and its labels by image id to
    OUT/labels/<name>.csv: imagery whose ground truth arrives later, and that ground truth."""
    from droughtwatch_tools.strip_labels import strip_labels, stripped_paths

    if any(f.resolve().parent == out.resolve() for f in files):
        raise UserError(f"--out {out} holds the input files", "write to another folder")
    for path in files:
        if not path.is_file():
            raise UserError(f"{path} is not a file", "name raw TFRecord files")
        result = strip_labels(path, *stripped_paths(path, out))
        printer.console.print(
            f"{path}: {result.records} records -> {result.raw} (no labels), "
            f"{result.labelled} labels -> {result.labels}",
            highlight=False,
            soft_wrap=True,
        )


def _data_bucket(
    local: bool, stack: str | None, bucket: str | None, region: str | None, cwd: Path | None
) -> tuple[Any, str, str]:
    """(store, bucket, the command that runs next) of the local runs' data bucket or the
    stack's."""
    from droughtwatch_tools.buckets import local_store, stack_store

    if local:
        from droughtwatch_tools.local.runner import LocalConfig

        store = local_store()
        store.create_bucket(LocalConfig.data_bucket)
        return store, LocalConfig.data_bucket, "droughtwatch local run"
    from droughtwatch_contract.outputs import StackOutput as Out

    s3, outputs = stack_store(
        [Out.DATA_BUCKET], {Out.DATA_BUCKET: bucket, Out.REGION: region}, stack, cwd
    )
    return s3, outputs[Out.DATA_BUCKET], "the schedule's, or droughtwatch run"
