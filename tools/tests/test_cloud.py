"""The CLI against a deployed stack, on moto: upload writes raw/<date>/<name> keys, run follows an
execution to its end and names the failed state and its cause, tunnel builds the exact Session
Manager command; and the stack outputs come from Pulumi or from flags."""

from __future__ import annotations

import datetime as dt
import json
import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from droughtwatch_contract.outputs import StackOutput
from droughtwatch_contract.stages import STAGES
from droughtwatch_tools.cloud.executions import start_and_follow
from droughtwatch_tools.cloud.outputs import resolve_outputs, stack_outputs
from droughtwatch_tools.cloud.tunnel import ensure_running, tunnel_command
from droughtwatch_tools.cloud.upload import upload
from droughtwatch_tools.commands import cloud as cloud_commands
from droughtwatch_tools.errors import UserError
from droughtwatch_tools.execution import ExecutionEvent
from droughtwatch_tools.local.runner import create_state_machine
from typer.testing import CliRunner

REGION = "eu-west-1"
BUCKET = "droughtwatch-test-data-123456789012"
CANNED = "http://motoapi.amazonaws.com/moto-api/static/lambda-simple/response"


@pytest.fixture
def app(monkeypatch: pytest.MonkeyPatch) -> typer.Typer:
    monkeypatch.setenv("COLUMNS", "400")  # rich wraps at the terminal width
    application = typer.Typer()
    cloud_commands.register(application)
    return application


@pytest.fixture
def moto(aws_env: None) -> Iterator[None]:
    from moto import mock_aws

    with mock_aws(
        config={"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}
    ):
        yield


@pytest.fixture
def bucket(moto: None) -> Any:
    import boto3

    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    return s3


@pytest.fixture
def state_machine(moto: None) -> str:
    """The pipeline's definition in moto over three functions that answer canned responses."""
    return create_state_machine("droughtwatch-test", retry_interval_seconds=1, retry_max_attempts=1)


def answer(*responses: dict[str, Any]) -> None:
    """The next Lambda invocations' results, in order (moto's simple Lambda)."""
    import requests

    requests.post(
        CANNED, json={"results": [json.dumps(r) for r in responses], "region": REGION}, timeout=5
    )


def ok(stage: str, **counts: int) -> dict[str, Any]:
    return {"statusCode": 200, "body": {"run_id": "r", stage: {"files_done": 1, **counts}}}


def plan(round: int, *items: list[int]) -> dict[str, Any]:
    """Plan's answer: its round, and the items (ledger ids) it hands to the Map."""
    values = [{"ids": ids, "bytes": 10 * len(ids)} for ids in items]
    report = {
        "round": round,
        "files": sum(len(i) for i in items),
        "item_count": len(values),
        "items": values,
    }
    return {"statusCode": 200, "body": {"run_id": "r", "plan": report}}


def one_item(**counts: int) -> list[dict[str, Any]]:
    """An execution's answers in order: Plan hands out one item of one file, the item's
    stages, Plan finds nothing more, the day step."""
    stages = [ok(s, **counts) if s == "processing" else ok(s) for s in STAGES.names]
    return [plan(1, [1]), *stages, plan(2), ok("day", days_done=1)]


# -- upload -------------------------------------------------------------------------------------


def test_upload_writes_raw_keys_under_the_date(bucket: Any, tmp_path: Path) -> None:
    names = ["part-r-00012", 'shard 7 of "May" (copy).tfrecord', "it's here.gz"]
    files = []
    for index, name in enumerate(names):
        path = tmp_path / name
        path.write_bytes(f"record {index}".encode())
        files.append(path)
    keys = upload(files, dt.date(2026, 11, 27), {"data_bucket": BUCKET, "region": REGION})
    assert keys == [f"raw/2026-11-27/{name}" for name in names]
    listed = bucket.list_objects_v2(Bucket=BUCKET)["Contents"]
    assert sorted(o["Key"] for o in listed) == sorted(keys)
    body = bucket.get_object(Bucket=BUCKET, Key=f"raw/2026-11-27/{names[1]}")["Body"].read()
    assert body == b"record 1"


def test_upload_checks_every_file_before_uploading_any(bucket: Any, tmp_path: Path) -> None:
    present = tmp_path / "a.tfrecord"
    present.write_bytes(b"x")
    with pytest.raises(UserError, match=r"not a file: .*missing\.tfrecord"):
        upload([present, tmp_path / "missing.tfrecord"], dt.date(2026, 1, 2),
                     {"data_bucket": BUCKET})  # fmt: skip
    (tmp_path / "other").mkdir()
    twin = tmp_path / "other" / "a.tfrecord"
    twin.write_bytes(b"y")
    with pytest.raises(UserError, match=r"same key: raw/2026-01-02/a\.tfrecord"):
        upload([present, twin], dt.date(2026, 1, 2), {"data_bucket": BUCKET})
    assert "Contents" not in bucket.list_objects_v2(Bucket=BUCKET)


def test_upload_command_takes_the_bucket_from_a_flag(
    app: typer.Typer, bucket: Any, tmp_path: Path
) -> None:
    path = tmp_path / "part 1.tfrecord"
    path.write_bytes(b"x")
    result = CliRunner().invoke(
        app, ["upload", str(path), "--date", "2026-11-27", "--data-bucket", BUCKET]
    )
    assert result.exit_code == 0, result.output
    assert f"s3://{BUCKET}/raw/2026-11-27/part 1.tfrecord" in result.output
    assert bucket.head_object(Bucket=BUCKET, Key="raw/2026-11-27/part 1.tfrecord")


def test_upload_command_rejects_a_malformed_date(app: typer.Typer, tmp_path: Path) -> None:
    path = tmp_path / "x.tfrecord"
    path.write_bytes(b"x")
    result = CliRunner().invoke(app, ["upload", str(path), "--date", "27/11/2026"])
    assert result.exit_code == 2
    assert "27/11/2026" in result.output


# -- run ----------------------------------------------------------------------------------------


def test_run_follows_an_execution_to_success(state_machine: str) -> None:
    answer(*one_item(images=10))
    events: list[ExecutionEvent] = []
    seen: list[tuple[str, int, int | None]] = []
    result = start_and_follow(
        {"state_machine_arn": state_machine, "region": REGION},
        events.append,
        poll_seconds=0.01,
        on_map_run=lambda run, plan: seen.append((run.status, run.total, plan and plan.files)),
    )
    assert result.status == "SUCCEEDED" and result.succeeded
    assert result.failed_state is None and result.error is None
    assert result.name.startswith("cli-")
    entered = [e.state for e in events if e.type in ("TaskStateEntered", "MapStateEntered")]
    assert entered == ["Plan", "Items", "Plan", "Pool days"]
    assert [e.id for e in events] == sorted({e.id for e in events})  # each event once, in order
    assert events[-1].type == "ExecutionSucceeded"
    assert result.output["body"]["day"] == {"files_done": 1, "days_done": 1}
    # the Map's run: its counts while it ran and at the end
    (run,) = result.map_runs
    assert (run.status, run.total, run.done, run.failed) == ("SUCCEEDED", 1, 1, 0)
    assert seen and seen[-1] == ("SUCCEEDED", 1, 1)


def test_run_reports_the_failed_state_and_its_cause(state_machine: str) -> None:
    cause = "cannot connect to droughtwatch-dev-db: timeout. Check the security groups."
    answer({"statusCode": 500, "body": {"error": "DatabaseUnavailable", "cause": cause}})
    result = start_and_follow(
        {"state_machine_arn": state_machine, "region": REGION}, poll_seconds=0.01
    )
    assert result.status == "FAILED"
    assert result.failed_state == "Plan"
    assert (result.error, result.cause) == ("DatabaseUnavailable", cause)


def test_each_run_gets_a_unique_execution_name(state_machine: str) -> None:
    outputs = {"state_machine_arn": state_machine, "region": REGION}
    answer(*one_item(), *one_item())
    first = start_and_follow(outputs, poll_seconds=0.01)
    second = start_and_follow(outputs, poll_seconds=0.01)
    assert first.name != second.name
    assert first.succeeded and second.succeeded


def run_args(state_machine: str) -> list[str]:
    return ["run", "--state-machine-arn", state_machine, "--region", REGION, "--poll-seconds", "0"]


def test_run_command_prints_progress_and_success(app: typer.Typer, state_machine: str) -> None:
    answer(*one_item(images=240, dropped=2))
    result = CliRunner().invoke(app, run_args(state_machine))
    assert result.exit_code == 0, result.output
    assert "done Plan: round=1, files=1, item_count=1" in result.output
    assert "items succeeded round 1: 1 of 1 items done; 1 files, up to 1 per item" in (
        result.output
    )
    assert "done Pool days: files_done=1, days_done=1" in result.output
    assert "succeeded" in result.output


def test_run_command_lists_the_label_files_plan_read(app: typer.Typer, state_machine: str) -> None:
    files = [
        {"key": "labels/survey.csv", "etag": "e1", "status": "ingested", "label_rows": 81,
         "new_labels": 81, "replaced": 0, "unchanged": 0, "unknown_ids": 2, "error": None},
        {"key": "labels/[bad].csv", "etag": "e2", "status": "failed",
         "error": "InvalidLabelFile: labels/[bad].csv: empty file (0 bytes): no labels"},
    ]  # fmt: skip
    first, *rest = one_item()
    first["body"]["plan"]["label_files"] = files
    answer(first, *rest)
    result = CliRunner().invoke(app, run_args(state_machine))
    assert result.exit_code == 0, result.output
    assert (
        "label file labels/survey.csv: 81 labels (81 new, 0 replaced, 0 unchanged); 2 ids of "
        "images not predicted yet, kept" in result.output
    )
    assert "label file labels/[bad].csv: failed: InvalidLabelFile: labels/[bad].csv: empty" in (
        result.output
    )


def test_run_command_names_the_failed_state_and_cause(app: typer.Typer, state_machine: str) -> None:
    answer({"statusCode": 500, "body": {"error": "ModelNotFound", "cause": "no model.json"}})
    result = CliRunner().invoke(app, run_args(state_machine))
    assert result.exit_code == 4  # as `local run`: the execution failed
    assert "FAILED in state Plan: ModelNotFound: no model.json" in result.output
    assert "console.aws.amazon.com/states" in result.output


# -- tunnel -------------------------------------------------------------------------------------

OUTPUTS = {
    "region": REGION,
    "bastion_instance_id": "i-0123456789abcdef0",
    "database_address": "droughtwatch-dev-db.c0ffee.eu-west-1.rds.amazonaws.com",
    "database_port": 5432,
}


def test_tunnel_command_is_exact() -> None:
    assert tunnel_command(OUTPUTS) == [
        "aws", "ssm", "start-session",
        "--region", "eu-west-1",
        "--target", "i-0123456789abcdef0",
        "--document-name", "AWS-StartPortForwardingSessionToRemoteHost",
        "--parameters",
        '{"host":["droughtwatch-dev-db.c0ffee.eu-west-1.rds.amazonaws.com"],'
        '"portNumber":["5432"],"localPortNumber":["5432"]}',
    ]  # fmt: skip
    assert '"localPortNumber":["15432"]' in tunnel_command(OUTPUTS, local_port=15432)[-1]


def test_tunnel_without_bastion_says_how_to_enable_it() -> None:
    with pytest.raises(UserError) as raised:
        tunnel_command({**OUTPUTS, "bastion_instance_id": None})
    assert "droughtwatch:bastion on-demand" in raised.value.hint


def test_tunnel_command_prints_the_command_from_flags(app: typer.Typer) -> None:
    result = CliRunner().invoke(
        app,
        ["tunnel", "--print", "--bastion-id", OUTPUTS["bastion_instance_id"],
         "--db-host", OUTPUTS["database_address"], "--region", REGION],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.output.strip() == shlex.join(tunnel_command(OUTPUTS))


POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "PortForwardThroughTheBastionOnly",
            "Effect": "Allow",
            "Action": ["ssm:StartSession"],
            "Resource": [
                "arn:aws:ec2:eu-west-1:123456789012:instance/i-0123456789abcdef0",
                "arn:aws:ssm:eu-west-1::document/AWS-StartPortForwardingSessionToRemoteHost",
            ],
            "Condition": {"BoolIfExists": {"ssm:SessionDocumentAccessCheck": "true"}},
        }
    ],
}


def test_tunnel_prints_the_operator_policy_of_the_stack(
    app: typer.Typer, monkeypatch: pytest.MonkeyPatch
) -> None:
    outputs = {**OUTPUTS, "operator_policy": json.dumps(POLICY)}
    monkeypatch.setattr(cloud_commands, "stack_outputs", lambda stack, cwd, **kwargs: outputs)
    result = CliRunner().invoke(app, ["tunnel", "--policy", "--stack", "prod"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == POLICY


def test_a_stack_without_the_operator_policy_says_how_to_get_it(
    app: typer.Typer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cloud_commands, "stack_outputs", lambda stack, cwd, **kwargs: dict(OUTPUTS))
    result = CliRunner().invoke(app, ["tunnel", "--policy"])
    assert result.exit_code == 2
    assert "no operator_policy" in result.output


@pytest.fixture
def bastion(moto: None) -> dict[str, Any]:
    """A bastion instance in moto's EC2, stopped as an on-demand bastion is while idle."""
    import boto3

    ec2 = boto3.client("ec2", region_name=REGION)
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    (instance,) = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, InstanceType="t4g.nano")[
        "Instances"
    ]
    ec2.stop_instances(InstanceIds=[instance["InstanceId"]])
    return {"ec2": ec2, "id": instance["InstanceId"]}


def _state(bastion: dict[str, Any]) -> str:
    reservations = bastion["ec2"].describe_instances(InstanceIds=[bastion["id"]])["Reservations"]
    return reservations[0]["Instances"][0]["State"]["Name"]


def _ssm_reporting(instance_id: str, *statuses: str | None) -> tuple[Any, Any]:
    """An SSM client whose DescribeInstanceInformation answers each status in turn (None: not
    registered yet); moto does not implement that call, botocore's Stubber pins its shape."""
    import boto3
    from botocore.stub import Stubber

    ssm = boto3.client("ssm", region_name=REGION)
    stub = Stubber(ssm)
    for status in statuses:
        found = [] if status is None else [{"InstanceId": instance_id, "PingStatus": status}]
        stub.add_response(
            "describe_instance_information",
            {"InstanceInformationList": found},
            {"Filters": [{"Key": "InstanceIds", "Values": [instance_id]}]},
        )
    stub.activate()
    return ssm, stub


def test_tunnel_starts_a_stopped_bastion_and_waits_for_session_manager(
    bastion: dict[str, Any],
) -> None:
    assert _state(bastion) == "stopped"
    ssm, stub = _ssm_reporting(bastion["id"], None, "ConnectionLost", "Online")
    said: list[str] = []
    pauses: list[float] = []
    started = ensure_running(bastion["ec2"], ssm, bastion["id"], said.append, sleep=pauses.append)
    assert started is True
    assert _state(bastion) == "running"
    stub.assert_no_pending_responses()  # asked until the agent was online
    assert pauses == [5.0, 5.0]
    assert said[0] == f"starting the bastion {bastion['id']} (it stops itself when idle)"
    assert said[-1].startswith("the bastion is up after")


def test_a_running_bastion_is_used_as_it_is(bastion: dict[str, Any]) -> None:
    bastion["ec2"].start_instances(InstanceIds=[bastion["id"]])
    ssm, stub = _ssm_reporting(bastion["id"])  # no answer: it must not be asked
    assert ensure_running(bastion["ec2"], ssm, bastion["id"], print, sleep=print) is False
    stub.assert_no_pending_responses()


def test_a_bastion_that_does_not_come_up_is_reported(bastion: dict[str, Any]) -> None:
    ssm, _ = _ssm_reporting(bastion["id"], *[None] * 5)
    clock = iter(range(0, 1000, 100))
    with pytest.raises(UserError) as raised:
        ensure_running(
            bastion["ec2"], ssm, bastion["id"], print, timeout=250, sleep=lambda s: None,
            clock=lambda: float(next(clock)),
        )  # fmt: skip
    assert "is not online in Session Manager after 250 s" in str(raised.value)
    assert "EC2 console" in raised.value.hint


def test_a_refused_session_points_at_the_operator_policy(
    app: typer.Typer, monkeypatch: pytest.MonkeyPatch, bastion: dict[str, Any]
) -> None:
    bastion["ec2"].start_instances(InstanceIds=[bastion["id"]])
    ran: list[list[str]] = []

    def refuse(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        ran.append(command)
        return subprocess.CompletedProcess(command, 254)

    monkeypatch.setattr(cloud_commands.shutil, "which", lambda tool: f"/usr/bin/{tool}")
    monkeypatch.setattr(cloud_commands.subprocess, "run", refuse)
    result = CliRunner().invoke(
        app,
        ["tunnel", "--bastion-id", bastion["id"],
         "--db-host", OUTPUTS["database_address"], "--region", REGION],
    )  # fmt: skip
    assert result.exit_code == 254
    assert ran == [tunnel_command({**OUTPUTS, "bastion_instance_id": bastion["id"]})]
    assert "droughtwatch tunnel --policy" in result.output


def test_tunnel_opens_the_session_only_once_the_bastion_is_up(
    app: typer.Typer, monkeypatch: pytest.MonkeyPatch, bastion: dict[str, Any]
) -> None:
    """The command as a user runs it on a stopped bastion: started (moto), its agent awaited,
    then the session."""
    from droughtwatch_tools.cloud import tunnel

    order: list[str] = []
    monkeypatch.setattr(tunnel, "agent_online", lambda ssm, i: order.append("online?") or True)
    monkeypatch.setattr(cloud_commands.shutil, "which", lambda tool: f"/usr/bin/{tool}")
    monkeypatch.setattr(
        cloud_commands.subprocess,
        "run",
        lambda command, **kw: (
            order.append(_state(bastion)) or subprocess.CompletedProcess(command, 0)
        ),
    )
    result = CliRunner().invoke(
        app,
        ["tunnel", "--bastion-id", bastion["id"],
         "--db-host", OUTPUTS["database_address"], "--region", REGION],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert order == ["online?", "running"]
    assert f"starting the bastion {bastion['id']}" in result.output


def test_a_refused_start_points_at_the_operator_policy(
    app: typer.Typer, monkeypatch: pytest.MonkeyPatch, bastion: dict[str, Any]
) -> None:
    from botocore.exceptions import ClientError

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise ClientError(
            {"Error": {"Code": "UnauthorizedOperation", "Message": "not allowed"}},
            "StartInstances",
        )

    monkeypatch.setattr(cloud_commands, "ensure_running", refuse)
    monkeypatch.setattr(cloud_commands.shutil, "which", lambda tool: f"/usr/bin/{tool}")
    result = CliRunner().invoke(
        app,
        ["tunnel", "--bastion-id", bastion["id"],
         "--db-host", OUTPUTS["database_address"], "--region", REGION],
    )  # fmt: skip
    assert result.exit_code == 2
    assert "UnauthorizedOperation" in result.output
    assert "droughtwatch tunnel --policy" in result.output


# -- stack outputs ------------------------------------------------------------------------------


def completed(code: int, stdout: str = "", stderr: str = "") -> Any:
    return lambda command, **kwargs: subprocess.CompletedProcess(command, code, stdout, stderr)


def test_stack_outputs_come_from_pulumi_without_secrets(tmp_path: Path) -> None:
    seen: dict[str, Any] = {}

    def run(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        seen.update(command=command, cwd=kwargs.get("cwd"))
        return subprocess.CompletedProcess(command, 0, json.dumps(OUTPUTS), "")

    assert stack_outputs("prod", tmp_path, run=run) == OUTPUTS
    assert seen == {
        "command": ["pulumi", "stack", "output", "--json", "--stack", "prod"],
        "cwd": tmp_path,
    }


def test_missing_pulumi_cli_names_the_flags_to_pass() -> None:
    def run(command: list[str], **kwargs: Any) -> Any:
        raise FileNotFoundError("pulumi")

    with pytest.raises(UserError) as raised:
        stack_outputs(None, run=run, needed=[StackOutput.STATE_MACHINE_ARN])
    assert "Pulumi CLI is not installed" in str(raised.value)
    assert "--state-machine-arn <state_machine_arn>" in raised.value.hint


def test_failing_pulumi_reports_its_message() -> None:
    with pytest.raises(UserError, match="no stack named 'prod' found"):
        stack_outputs("prod", run=completed(255, stderr="error: no stack named 'prod' found"))


def test_flags_stand_in_for_outputs_without_calling_pulumi() -> None:
    def run(command: list[str], **kwargs: Any) -> Any:
        raise AssertionError("pulumi must not be called when the flags suffice")

    outputs = resolve_outputs(
        [StackOutput.DATA_BUCKET], {StackOutput.DATA_BUCKET: BUCKET}, None, None, run=run
    )
    assert outputs == {"data_bucket": BUCKET}


def test_outputs_missing_from_the_stack_are_named(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="the stack has no output bastion_instance_id"):
        resolve_outputs(
            [StackOutput.BASTION_INSTANCE_ID], {}, "dev", tmp_path,
            run=completed(0, json.dumps({"region": REGION})),
        )  # fmt: skip


class FailedMapRun:
    """Step Functions as AWS answers for an execution whose map run failed past its tolerance:
    the parent's history, the map run's counts, and its failed child (AWS keeps each child as
    an execution of its own, listed by map run), with that child's history."""

    PARENT = "arn:aws:states:eu-west-1:123456789012:execution:dw-pipeline:cli-1"
    MAP_RUN = "arn:aws:states:eu-west-1:123456789012:mapRun:dw-pipeline/items:7f"
    CHILD = "arn:aws:states:eu-west-1:123456789012:execution:dw-pipeline/items:c3"

    def __init__(self) -> None:
        self.listed: list[dict[str, Any]] = []

    def start_execution(self, **kwargs: Any) -> dict[str, Any]:
        return {"executionArn": self.PARENT}

    def describe_execution(self, executionArn: str) -> dict[str, Any]:
        at = dt.datetime(2026, 11, 27, 6, tzinfo=dt.UTC)
        if executionArn == self.CHILD:
            return {
                "name": "c3",
                "status": "FAILED",
                "startDate": at,
                "stopDate": at,
                "error": "ModelNotFound",
                "cause": "ModelNotFound: no model.json",
            }
        return {"name": "cli-1", "status": "FAILED", "startDate": at, "stopDate": at,
                "error": "States.ExceedToleratedFailureThreshold",
                "cause": "The specified tolerance threshold was exceeded"}  # fmt: skip

    def get_execution_history(self, executionArn: str, **kwargs: Any) -> dict[str, Any]:
        at = dt.datetime(2026, 11, 27, 6, tzinfo=dt.UTC)
        if executionArn == self.CHILD:
            names = ["Processing", "Processing succeeded?", "Inference", "Inference failed"]
            return {"events": [
                {"id": n, "type": "TaskStateEntered" if "?" not in s and "failed" not in s
                 else "FailStateEntered" if "failed" in s else "ChoiceStateEntered",
                 "timestamp": at, "stateEnteredEventDetails": {"name": s}}
                for n, s in enumerate(names, start=1)
            ]}  # fmt: skip
        return {"events": [
            {"id": 1, "type": "MapStateEntered", "timestamp": at,
             "stateEnteredEventDetails": {"name": "Items"}},
            {"id": 2, "type": "MapRunStarted", "timestamp": at,
             "mapRunStartedEventDetails": {"mapRunArn": self.MAP_RUN}},
            {"id": 3, "type": "MapRunFailed", "timestamp": at, "mapRunFailedEventDetails": {}},
            {"id": 4, "type": "ExecutionFailed", "timestamp": at,
             "executionFailedEventDetails": {"error": "States.ExceedToleratedFailureThreshold"}},
        ]}  # fmt: skip

    def describe_map_run(self, mapRunArn: str) -> dict[str, Any]:
        counts = {"total": 4, "succeeded": 3, "failed": 1, "running": 0, "timedOut": 0}
        return {"mapRunArn": mapRunArn, "status": "FAILED", "itemCounts": counts}

    def list_executions(self, **kwargs: Any) -> dict[str, Any]:
        self.listed.append(kwargs)
        return {"executions": [{"executionArn": self.CHILD, "status": "FAILED"}]}


def test_a_failed_map_run_names_its_first_failed_child_and_its_error() -> None:
    sfn = FailedMapRun()
    result = start_and_follow(
        {"state_machine_arn": "arn:sm", "region": REGION}, sfn=sfn, poll_seconds=0
    )
    assert result.status == "FAILED" and result.failed_state == "Items"
    (run,) = result.map_runs
    assert (run.total, run.failed) == (4, 1)
    assert sfn.listed == [
        {"mapRunArn": FailedMapRun.MAP_RUN, "statusFilter": "FAILED", "maxResults": 10}
    ]
    (child,) = result.failed_children
    assert (child.failed_state, child.error) == ("Inference", "ModelNotFound")
    assert result.error_line == (
        "ModelNotFound: no model.json (c3 failed in Inference;"
        " States.ExceedToleratedFailureThreshold: The specified tolerance threshold was exceeded)"
    )
