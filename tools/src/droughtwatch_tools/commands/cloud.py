"""`droughtwatch upload`, `run` and `tunnel`: the commands against a deployed stack. Each reads
the stack's outputs (`pulumi stack output --json`), or takes them as flags when the Pulumi CLI
is not at hand."""

from __future__ import annotations

import datetime as dt
import json
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from droughtwatch_contract.outputs import StackOutput
from droughtwatch_contract.stages import WORKFLOW
from rich.markup import escape

from droughtwatch_tools import printer
from droughtwatch_tools.cloud.outputs import find_project_dir, resolve_outputs, stack_outputs
from droughtwatch_tools.cloud.tunnel import (
    TUNNEL_REFUSED_HINT,
    ensure_running,
    operator_policy,
    tunnel_command,
)
from droughtwatch_tools.commands.options import CwdOption, RegionOption, StackOption
from droughtwatch_tools.errors import ExitCode, UserError
from droughtwatch_tools.execution import WORK_ENTERED
from droughtwatch_tools.printer import reports_errors

if TYPE_CHECKING:
    from droughtwatch_tools.execution import ExecutionEvent


def aws_error(exc: Exception, doing: str) -> UserError:
    """An AWS SDK error while ``doing`` something, as the user can act on it."""
    from botocore.exceptions import ClientError, NoCredentialsError, NoRegionError

    if isinstance(exc, NoCredentialsError):
        return UserError(
            f"no AWS credentials while {doing}", "set AWS_PROFILE or run `aws sso login`"
        )
    if isinstance(exc, NoRegionError):
        return UserError(f"no AWS region while {doing}", "pass --region or set AWS_REGION")
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return UserError(
            f"AWS refused {doing}: {error.get('Code')}: {error.get('Message')}",
            "check the stack (--stack) and that your credentials may do this",
        )
    return UserError(f"{doing} failed: {exc}")


@reports_errors
def upload_command(
    files: Annotated[list[Path], typer.Argument(help="Raw files (TFRecord shards) to upload.")],
    date: Annotated[
        dt.datetime,
        typer.Option("--date", formats=["%Y-%m-%d"], help="The data's date (YYYY-MM-DD)."),
    ],
    stack: StackOption = None,
    cwd: CwdOption = None,
    data_bucket: Annotated[
        str | None, typer.Option("--data-bucket", help="Data bucket (default: the stack's).")
    ] = None,
    region: RegionOption = None,
) -> None:
    """Upload raw files to the stack's data bucket under raw/<date>/, for the next run."""
    from botocore.exceptions import BotoCoreError, ClientError

    from droughtwatch_tools.cloud.upload import upload

    console = printer.console
    outputs = resolve_outputs(
        [StackOutput.DATA_BUCKET],
        {StackOutput.DATA_BUCKET: data_bucket, StackOutput.REGION: region},
        stack,
        cwd,
    )
    bucket = outputs[StackOutput.DATA_BUCKET]
    try:
        keys = upload(
            files,
            date.date(),
            outputs,
            on_file=lambda path, key: console.print(
                f"uploaded {path} -> s3://{bucket}/{key}", highlight=False
            ),
        )
    except (BotoCoreError, ClientError) as exc:
        raise aws_error(exc, "uploading") from None
    console.print(f"{len(keys)} file(s) uploaded; start a run with `droughtwatch run`.")


def _stage_counts(event: ExecutionEvent) -> dict[str, Any]:
    """A finished step's part of its output body ({} when there is none)."""
    step = next((s for s in WORKFLOW if s.title == event.state), None)
    return (event.step_report(step) if step else None) or {}


def _stage_summary(event: ExecutionEvent) -> str:
    """A finished stage's counts from its output ("files_done=1, images=240")."""
    counts = _stage_counts(event)
    shown = {k: v for k, v in counts.items() if isinstance(v, int) and not isinstance(v, bool)}
    return ", ".join(f"{k}={v}" for k, v in shown.items())


def _label_files(event: ExecutionEvent) -> list[str]:
    """What became of each label file the stage read, a line each."""
    from droughtwatch_inference.records import LabelFileOutcome

    from droughtwatch_tools.run_tables import label_file_words

    found = _stage_counts(event).get("label_files")
    return [
        label_file_words(LabelFileOutcome(**item))
        for item in (found if isinstance(found, list) else [])
        if isinstance(item, dict)
    ]


@reports_errors
def run_command(
    stack: StackOption = None,
    cwd: CwdOption = None,
    state_machine_arn: Annotated[
        str | None,
        typer.Option("--state-machine-arn", help="State machine (default: the stack's)."),
    ] = None,
    region: RegionOption = None,
    payload: Annotated[str | None, typer.Option("--input", help="Execution input as JSON.")] = None,
    poll_seconds: Annotated[float, typer.Option(min=0.0, help="Seconds between polls.")] = 2.0,
) -> None:
    """Start the pipeline on the deployed stack and follow it to the end."""
    from botocore.exceptions import BotoCoreError, ClientError

    from droughtwatch_tools.cloud.executions import console_url, start_and_follow
    from droughtwatch_tools.progress import ExecutionProgress

    console = printer.console
    try:
        data = json.loads(payload) if payload is not None else None
    except ValueError as exc:
        raise UserError(f"--input is not JSON: {exc}", "pass an object like '{}'") from None
    steps = [s.title for s in WORKFLOW]
    outputs = resolve_outputs(
        [StackOutput.STATE_MACHINE_ARN],
        {StackOutput.STATE_MACHINE_ARN: state_machine_arn, StackOutput.REGION: region},
        stack,
        cwd,
    )
    try:
        with ExecutionProgress(console) as progress:

            def on_event(event: ExecutionEvent) -> None:
                if event.type == "ExecutionStarted":
                    progress.step("started")
                elif event.type in WORK_ENTERED and event.state:
                    progress.step(f"{event.state} running")
                elif event.type == "TaskStateExited" and event.state in steps:
                    summary = _stage_summary(event)
                    progress.console.print(
                        f"[green]done[/] {event.state}" + (f": {summary}" if summary else ""),
                        highlight=False,
                    )
                    for line in _label_files(event):
                        progress.console.print(f"  label file {escape(line)}", highlight=False)

            execution = start_and_follow(
                outputs,
                on_event,
                payload=data,
                poll_seconds=poll_seconds,
                on_map_run=progress.map_run,
            )
    except (BotoCoreError, ClientError) as exc:
        raise aws_error(exc, "running the pipeline") from None
    if execution.succeeded:
        console.print(f"[bold green]{execution.name} succeeded[/]", highlight=False)
        return
    raise UserError(
        f"{execution.name} {execution.status} in state {execution.failed_state}: "
        f"{execution.error_line}",
        f"read the cause above; the execution is at {console_url(str(execution.arn), outputs)}",
        ExitCode.EXECUTION_FAILED,
    )


@reports_errors
def tunnel_command_cli(
    stack: StackOption = None,
    cwd: CwdOption = None,
    bastion_id: Annotated[
        str | None, typer.Option("--bastion-id", help="Bastion instance (default: the stack's).")
    ] = None,
    db_host: Annotated[
        str | None, typer.Option("--db-host", help="Database address (default: the stack's).")
    ] = None,
    db_port: Annotated[
        int | None, typer.Option("--db-port", help="Database port (default: the stack's).")
    ] = None,
    region: RegionOption = None,
    local_port: Annotated[
        int, typer.Option("--local-port", min=1, max=65535, help="Port on 127.0.0.1.")
    ] = 5432,
    print_only: Annotated[
        bool, typer.Option("--print", help="Print the command instead of running it.")
    ] = False,
    print_policy: Annotated[
        bool,
        typer.Option(
            "--policy",
            help="Print the IAM policy an operator needs for the tunnel (port forwarding on "
            "the bastion only, no shell) and the Grafana secret, then exit.",
        ),
    ] = False,
) -> None:
    """Forward 127.0.0.1:<local-port> to the database through the bastion (SSM Session
    Manager; needs the AWS CLI and its session-manager-plugin, and the stack's operator policy:
    see --policy). A stopped (on-demand) bastion is started first; it stops itself when idle."""
    if print_policy:
        document = operator_policy(stack_outputs(stack, cwd or find_project_dir()))
        typer.echo(json.dumps(document, indent=2))
        return
    outputs = resolve_outputs(
        [StackOutput.BASTION_INSTANCE_ID, StackOutput.DATABASE_ADDRESS],
        {
            StackOutput.BASTION_INSTANCE_ID: bastion_id,
            StackOutput.DATABASE_ADDRESS: db_host,
            StackOutput.DATABASE_PORT: db_port,
            StackOutput.REGION: region,
        },
        stack,
        cwd,
    )
    command = tunnel_command(outputs, local_port)
    # plain echo, not the console: the command is copied and pasted as printed
    typer.echo(shlex.join(command))
    if print_only:
        return
    missing = [tool for tool in ("aws", "session-manager-plugin") if shutil.which(tool) is None]
    if missing:
        raise UserError(
            f"not installed: {', '.join(missing)}",
            "install the AWS CLI v2 and the Session Manager plugin "
            "(https://docs.aws.amazon.com/systems-manager/latest/userguide/"
            "session-manager-working-with-install-plugin.html), then run the command above",
        )
    start_bastion(str(outputs[StackOutput.BASTION_INSTANCE_ID]), outputs.get(StackOutput.REGION))
    printer.err.print(f"tunnel open on 127.0.0.1:{local_port} until Ctrl-C", highlight=False)
    try:
        code = subprocess.run(command, check=False).returncode
    except KeyboardInterrupt:
        code = 0
    if code:
        # the AWS CLI has printed its error; the session's own exit code is the command's
        printer.next_step(TUNNEL_REFUSED_HINT)
        raise typer.Exit(code=code)


def start_bastion(instance_id: str, region: str | None) -> None:
    """Start the bastion when it is stopped (on demand) and wait for Session Manager."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        ensure_running(
            boto3.client("ec2", region_name=region),
            boto3.client("ssm", region_name=region),
            instance_id,
            lambda message: printer.err.print(message, highlight=False),
        )
    except (BotoCoreError, ClientError) as exc:
        error = aws_error(exc, f"starting the bastion {instance_id}")
        code = exc.response.get("Error", {}).get("Code", "") if isinstance(exc, ClientError) else ""
        denied = "Unauthorized" in code or "Denied" in code
        raise UserError(str(error), TUNNEL_REFUSED_HINT if denied else error.hint) from None


def register(app: typer.Typer) -> None:
    """Add `upload`, `run` and `tunnel` to the CLI."""
    app.command("upload")(upload_command)
    app.command("run")(run_command)
    app.command("tunnel")(tunnel_command_cli)
