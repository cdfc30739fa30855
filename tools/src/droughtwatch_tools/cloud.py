"""The CLI against a deployed stack: upload raw files to the data bucket, start the pipeline and
follow it, open the database tunnel through the bastion. Each reads the stack's outputs
(`pulumi stack output --json`), or takes them as flags when the Pulumi CLI is not at hand.

The tunnel needs the operator's IAM identity to hold the stack's operator policy (the output
`operator_policy`, printed by `droughtwatch tunnel --policy`): Session Manager sessions on the
bastion with the port forwarding document only, so that an operator cannot open a shell on it.

The stack output names (`StackOutput`) and `port_forward_command` are the contract package's
(droughtwatch_contract.outputs): the Pulumi program (infra/__main__.py) exports under these names
and builds its `tunnel_command` output with that function.
"""

from __future__ import annotations

import datetime as dt
import json
import shlex
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer
from droughtwatch_contract.keys import KeyLayout
from droughtwatch_contract.outputs import StackOutput, port_forward_command
from droughtwatch_contract.stages import STAGES

# The flag that stands in for each output a command needs.
FLAGS: dict[StackOutput, str] = {
    StackOutput.REGION: "--region",
    StackOutput.DATA_BUCKET: "--data-bucket",
    StackOutput.MODEL_BUCKET: "--model-bucket",
    StackOutput.MODEL_PREFIX: "--model-prefix",
    StackOutput.STATE_MACHINE_ARN: "--state-machine-arn",
    StackOutput.BASTION_INSTANCE_ID: "--bastion-id",
    StackOutput.DATABASE_ADDRESS: "--db-host",
    StackOutput.DATABASE_PORT: "--db-port",
}

CLI_INPUT = {"trigger": "cli"}
TERMINAL = {"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"}


class CloudError(Exception):
    """A problem the user can fix; ``hint`` says how."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint


# -- stack outputs ----------------------------------------------------------------------------


def _flags_hint(needed: Iterable[StackOutput]) -> str:
    flags = " ".join(f"{FLAGS[o]} <{o.value}>" for o in needed if o in FLAGS)
    return f"pass the stack's outputs as flags instead: {flags}" if flags else ""


def stack_outputs(
    stack: str | None,
    cwd: Path | str | None = None,
    *,
    run: Callable[..., subprocess.CompletedProcess[str]] = subprocess.run,
    needed: Sequence[StackOutput] = (),
) -> dict[str, Any]:
    """The stack's outputs from `pulumi stack output --json` (run in ``cwd``, the directory of
    Pulumi.yaml). No secrets are asked for: the stack exports none."""
    command = ["pulumi", "stack", "output", "--json"]
    if stack:
        command += ["--stack", stack]
    try:
        result = run(command, capture_output=True, text=True, check=False, cwd=cwd)
    except FileNotFoundError:
        raise CloudError(
            "the Pulumi CLI is not installed (no `pulumi` on PATH)",
            "install it (https://www.pulumi.com/docs/install/) or " + _flags_hint(needed),
        ) from None
    if result.returncode != 0:
        raise CloudError(
            f"`{shlex.join(command)}` failed: {result.stderr.strip() or 'no message'}",
            "run it from the repository (or pass --cwd), name the stack with --stack, log in "
            "with `pulumi login`; or " + _flags_hint(needed),
        )
    try:
        outputs = json.loads(result.stdout or "{}")
    except ValueError:
        raise CloudError(f"`{shlex.join(command)}` did not print JSON") from None
    if not isinstance(outputs, dict):
        raise CloudError(f"`{shlex.join(command)}` printed {type(outputs).__name__}, not an object")
    return outputs


def find_project_dir(start: Path | None = None) -> Path | None:
    """The nearest directory at or above ``start`` holding Pulumi.yaml."""
    here = (start or Path.cwd()).resolve()
    for directory in (here, *here.parents):
        if (directory / "Pulumi.yaml").is_file():
            return directory
    return None


def resolve_outputs(
    needed: Sequence[StackOutput],
    given: Mapping[StackOutput, Any],
    stack: str | None,
    cwd: Path | None,
    *,
    run: Callable[..., subprocess.CompletedProcess[str]] = subprocess.run,
) -> dict[str, Any]:
    """Outputs from flags, and from the stack for what the flags leave out."""
    flags = {k.value: v for k, v in given.items() if v is not None}
    if all(o.value in flags for o in needed):
        return flags
    project = cwd or find_project_dir()
    outputs = {**stack_outputs(stack, project, run=run, needed=needed), **flags}
    missing = [o for o in needed if outputs.get(o.value) in (None, "")]
    if missing:
        names = ", ".join(o.value for o in missing)
        raise CloudError(
            f"the stack has no output {names}",
            "deploy it with `pulumi up` (check the stack name), or " + _flags_hint(missing),
        )
    return outputs


# -- upload -----------------------------------------------------------------------------------


def upload(
    files: Sequence[Path | str],
    date: dt.date,
    outputs: Mapping[str, Any],
    *,
    s3: Any = None,
    layout: KeyLayout | None = None,
    on_file: Callable[[Path, str], None] | None = None,
) -> list[str]:
    """Upload raw files to ``raw/<date>/<name>`` in the data bucket; returns the keys."""
    layout = layout or KeyLayout()
    bucket = outputs[StackOutput.DATA_BUCKET]
    paths = [Path(f) for f in files]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise CloudError(f"not a file: {', '.join(missing)}", "name existing files to upload")
    keys = [layout.raw_key(p.name, date) for p in paths]
    duplicates = sorted({k for k in keys if keys.count(k) > 1})
    if duplicates:
        raise CloudError(
            f"two files would land on the same key: {', '.join(duplicates)}",
            "upload files with the same name under different dates, or rename one",
        )
    if s3 is None:
        import boto3

        s3 = boto3.client("s3", region_name=outputs.get(StackOutput.REGION))
    for path, key in zip(paths, keys, strict=True):
        s3.upload_file(str(path), bucket, key)
        if on_file is not None:
            on_file(path, key)
    return keys


# -- run --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExecutionEvent:
    id: int
    type: str
    timestamp: dt.datetime
    state: str | None = None
    output: Any = None
    error: str | None = None
    cause: str | None = None


@dataclass
class RunResult:
    name: str
    arn: str
    status: str
    error: str | None = None
    cause: str | None = None
    # The stage (Task state) the execution failed in; None when it succeeded.
    failed_state: str | None = None
    output: Any = None
    events: list[ExecutionEvent] = field(default_factory=list)

    @property
    def succeeded(self) -> bool:
        return self.status == "SUCCEEDED"


def _json_or_text(text: Any) -> Any:
    if not isinstance(text, str):
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


def _event(raw: Mapping[str, Any]) -> ExecutionEvent:
    details = next(
        (v for k, v in raw.items() if k.endswith("EventDetails") and isinstance(v, dict)), {}
    )
    return ExecutionEvent(
        id=int(raw["id"]),
        type=str(raw["type"]),
        timestamp=raw["timestamp"],
        state=details.get("name"),
        output=_json_or_text(details.get("output")),
        error=details.get("error"),
        cause=details.get("cause"),
    )


def execution_history(sfn: Any, execution_arn: str) -> list[ExecutionEvent]:
    events: list[ExecutionEvent] = []
    kwargs: dict[str, Any] = {"executionArn": execution_arn, "maxResults": 1000}
    while True:
        page = sfn.get_execution_history(**kwargs)
        events.extend(_event(raw) for raw in page["events"])
        if not page.get("nextToken"):
            return events
        kwargs["nextToken"] = page["nextToken"]


def failed_state(events: Sequence[ExecutionEvent]) -> str | None:
    """The stage the execution failed in: the last Task state entered (the Choice, Pass and
    Fail states after it only route the stage's failure)."""
    for event in reversed(events):
        if event.type == "TaskStateEntered" and event.state:
            return event.state
    for event in reversed(events):
        if event.type.endswith("StateEntered") and event.state:
            return event.state
    return None


def execution_name(now: dt.datetime | None = None) -> str:
    """Unique per start (Step Functions refuses a name reused within 90 days)."""
    now = now or dt.datetime.now(dt.UTC)
    return f"cli-{now:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"


def start_and_follow(
    outputs: Mapping[str, Any],
    on_event: Callable[[ExecutionEvent], None] | None = None,
    *,
    sfn: Any = None,
    payload: Mapping[str, Any] | None = None,
    name: str | None = None,
    poll_seconds: float = 2.0,
    timeout_seconds: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> RunResult:
    """Start an execution of the stack's state machine and poll it until it ends, passing each
    new history event to ``on_event``. On failure the result names the failed state and carries
    the execution's error and cause."""
    if sfn is None:
        import boto3

        sfn = boto3.client("stepfunctions", region_name=outputs.get(StackOutput.REGION))
    name = name or execution_name()
    arn = sfn.start_execution(
        stateMachineArn=outputs[StackOutput.STATE_MACHINE_ARN],
        name=name,
        input=json.dumps(dict(payload) if payload is not None else CLI_INPUT),
    )["executionArn"]
    started = time.monotonic()
    seen = 0
    while True:
        described = sfn.describe_execution(executionArn=arn)
        events = execution_history(sfn, arn)
        for event in events[seen:]:
            if on_event is not None:
                on_event(event)
        seen = len(events)
        if described["status"] in TERMINAL:
            break
        if timeout_seconds is not None and time.monotonic() - started > timeout_seconds:
            raise CloudError(
                f"execution {name} is still {described['status']} after {timeout_seconds:.0f} s",
                f"it goes on running; follow it in the console ({console_url(arn, outputs)})",
            )
        sleep(poll_seconds)
    status = described["status"]
    return RunResult(
        name=name,
        arn=arn,
        status=status,
        error=described.get("error"),
        cause=described.get("cause"),
        failed_state=None if status == "SUCCEEDED" else failed_state(events),
        output=_json_or_text(described.get("output")),
        events=events,
    )


def console_url(execution_arn: str, outputs: Mapping[str, Any]) -> str:
    region = outputs.get(StackOutput.REGION) or execution_arn.split(":")[3]
    return (
        f"https://{region}.console.aws.amazon.com/states/home?region={region}"
        f"#/v2/executions/details/{execution_arn}"
    )


# -- tunnel -----------------------------------------------------------------------------------


def tunnel_command(outputs: Mapping[str, Any], local_port: int = 5432) -> list[str]:
    instance = outputs.get(StackOutput.BASTION_INSTANCE_ID)
    if not instance:
        raise CloudError(
            "this stack has no bastion",
            "enable it with `pulumi config set droughtwatch:bastion_enabled true` and "
            "`pulumi up`, or pass --bastion-id",
        )
    host = outputs.get(StackOutput.DATABASE_ADDRESS)
    if not host:
        raise CloudError("the stack outputs have no database_address", _flags_hint(
            [StackOutput.DATABASE_ADDRESS]))  # fmt: skip
    return port_forward_command(
        str(instance),
        str(host),
        outputs.get(StackOutput.DATABASE_PORT) or 5432,
        local_port,
        outputs.get(StackOutput.REGION),
    )


def operator_policy(outputs: Mapping[str, Any]) -> dict[str, Any]:
    """The IAM policy an operator needs for the tunnel (and `droughtwatch grafana --stack`), from
    the stack output that holds it as JSON."""
    policy = outputs.get(StackOutput.OPERATOR_POLICY)
    if not policy:
        raise CloudError(
            f"the stack outputs have no {StackOutput.OPERATOR_POLICY.value}",
            "it comes with the bastion: deploy this version with `pulumi up` (and "
            "`droughtwatch:bastion_enabled true`)",
        )
    try:
        document = json.loads(policy) if isinstance(policy, str) else dict(policy)
    except (TypeError, ValueError):
        raise CloudError(
            f"the stack output {StackOutput.OPERATOR_POLICY.value} is not JSON"
        ) from None
    return document


TUNNEL_REFUSED_HINT = (
    "if AWS refused the session (AccessDeniedException), your identity needs the stack's "
    "operator policy: `droughtwatch tunnel --policy` prints it, for your administrator to "
    "attach (e.g. `aws iam put-user-policy --user-name <you> --policy-name droughtwatch-tunnel "
    "--policy-document file://policy.json`) or to add to your SSO permission set"
)


# -- the typer commands -----------------------------------------------------------------------

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


def _fail(error: CloudError) -> typer.Exit:
    from rich.console import Console

    err = Console(stderr=True)
    err.print(f"[bold red]error:[/] {error}", highlight=False)
    if error.hint:
        err.print(f"[yellow]next:[/] {error.hint}", highlight=False)
    return typer.Exit(code=2)


def _aws_error(exc: Exception, doing: str) -> CloudError:
    from botocore.exceptions import ClientError, NoCredentialsError, NoRegionError

    if isinstance(exc, NoCredentialsError):
        return CloudError(
            f"no AWS credentials while {doing}", "set AWS_PROFILE or run `aws sso login`"
        )
    if isinstance(exc, NoRegionError):
        return CloudError(f"no AWS region while {doing}", "pass --region or set AWS_REGION")
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return CloudError(
            f"AWS refused {doing}: {error.get('Code')}: {error.get('Message')}",
            "check the stack (--stack) and that your credentials may do this",
        )
    return CloudError(f"{doing} failed: {exc}")


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
    from rich.console import Console

    console = Console()
    try:
        outputs = resolve_outputs(
            [StackOutput.DATA_BUCKET],
            {StackOutput.DATA_BUCKET: data_bucket, StackOutput.REGION: region},
            stack,
            cwd,
        )
        bucket = outputs[StackOutput.DATA_BUCKET]
        keys = upload(
            files,
            date.date(),
            outputs,
            on_file=lambda path, key: console.print(
                f"uploaded {path} -> s3://{bucket}/{key}", highlight=False
            ),
        )
    except CloudError as exc:
        raise _fail(exc) from None
    except (BotoCoreError, ClientError) as exc:
        raise _fail(_aws_error(exc, "uploading")) from None
    console.print(f"{len(keys)} file(s) uploaded; start a run with `droughtwatch run`.")


def _stage_summary(event: ExecutionEvent) -> str:
    output = event.output if isinstance(event.output, dict) else {}
    body = output.get("body") if isinstance(output.get("body"), dict) else {}
    stage = next((s.name for s in STAGES if s.title == event.state), None)
    counts = body.get(stage) if stage else None
    if not isinstance(counts, dict):
        return ""
    shown = {k: v for k, v in counts.items() if isinstance(v, int) and not isinstance(v, bool)}
    return ", ".join(f"{k}={v}" for k, v in shown.items())


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
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    console = Console()
    try:
        data = json.loads(payload) if payload is not None else None
    except ValueError as exc:
        raise _fail(CloudError(f"--input is not JSON: {exc}", "pass an object like '{}'")) from None
    stages = [s.title for s in STAGES]
    try:
        outputs = resolve_outputs(
            [StackOutput.STATE_MACHINE_ARN],
            {StackOutput.STATE_MACHINE_ARN: state_machine_arn, StackOutput.REGION: region},
            stack,
            cwd,
        )
        with Progress(
            SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
            console=console, transient=True,
        ) as progress:  # fmt: skip
            task = progress.add_task("starting", total=len(stages))

            def on_event(event: ExecutionEvent) -> None:
                if event.type == "ExecutionStarted":
                    progress.update(task, description="started")
                elif event.type == "TaskStateEntered" and event.state:
                    progress.update(task, description=f"{event.state} running")
                elif event.type == "TaskStateExited" and event.state in stages:
                    progress.advance(task)
                    summary = _stage_summary(event)
                    progress.console.print(
                        f"[green]done[/] {event.state}" + (f": {summary}" if summary else ""),
                        highlight=False,
                    )

            result = start_and_follow(outputs, on_event, payload=data, poll_seconds=poll_seconds)
    except CloudError as exc:
        raise _fail(exc) from None
    except (BotoCoreError, ClientError) as exc:
        raise _fail(_aws_error(exc, "running the pipeline")) from None
    if result.succeeded:
        console.print(f"[bold green]{result.name} succeeded[/]", highlight=False)
        return
    raise _fail(
        CloudError(
            f"{result.name} {result.status} in state {result.failed_state}: "
            f"{result.error or 'no error'}: {result.cause or 'no cause'}",
            f"read the cause above; the execution is at {console_url(result.arn, outputs)}",
        )
    )


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
    see --policy)."""
    if print_policy:
        try:
            document = operator_policy(stack_outputs(stack, cwd or find_project_dir()))
        except CloudError as exc:
            raise _fail(exc) from None
        typer.echo(json.dumps(document, indent=2))
        return
    try:
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
    except CloudError as exc:
        raise _fail(exc) from None
    typer.echo(shlex.join(command))
    if print_only:
        return
    missing = [tool for tool in ("aws", "session-manager-plugin") if shutil.which(tool) is None]
    if missing:
        raise _fail(
            CloudError(
                f"not installed: {', '.join(missing)}",
                "install the AWS CLI v2 and the Session Manager plugin "
                "(https://docs.aws.amazon.com/systems-manager/latest/userguide/"
                "session-manager-working-with-install-plugin.html), then run the command above",
            )
        )
    typer.echo(f"tunnel open on 127.0.0.1:{local_port} until Ctrl-C", err=True)
    try:
        code = subprocess.run(command, check=False).returncode
    except KeyboardInterrupt:
        code = 0
    if code:
        typer.echo(f"next: {TUNNEL_REFUSED_HINT}", err=True)
        raise typer.Exit(code=code)


def register(app: typer.Typer) -> None:
    """Add `upload`, `run` and `tunnel` to the CLI."""
    app.command("upload")(upload_command)
    app.command("run")(run_command)
    app.command("tunnel")(tunnel_command_cli)
