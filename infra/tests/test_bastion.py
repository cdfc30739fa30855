"""The bastion component: Session Manager only (no key pair, a role that can do nothing else),
IMDSv2 required, encrypted volume, the AMI matching the instance's architecture; and the
operators' policy, which allows port forwarding sessions on this instance and no shell.
On demand (the default) it is kept stopped, operators may start that instance, and it stops
itself after its idle minutes without a session (the check is run here, with bash)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from droughtwatch_infra.bastion import (
    AMI_PARAMETER,
    Bastion,
    BastionArgs,
    idle_check_script,
    idle_stop_user_data,
)
from droughtwatch_infra.naming import Namer

GRAFANA_SECRET = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:grafana-AbCdEf"


def build(instance_type: str = "t4g.nano", arm64: bool = True, mode: str = "on-demand") -> Any:
    def program() -> Any:
        bastion = Bastion(
            "bastion",
            BastionArgs(
                namer=Namer("droughtwatch", "dev"),
                instance_type=instance_type,
                arm64=arm64,
                subnet_id="subnet-public",
                security_group_id="sg-bastion",
                partition="aws",
                region="eu-west-1",
                account_id="123456789012",
                grafana_secret_arn=GRAFANA_SECRET,
                mode=mode,  # type: ignore[arg-type]
                idle_minutes=20,
            ),
        )
        return {"instance_id": bastion.instance_id, "operator_policy": bastion.operator_policy}

    return program


def test_bastion_is_reachable_through_session_manager_only(infra: Any) -> None:
    stack = infra.run(build())
    instance = stack.one("aws:ec2/instance:Instance").inputs
    assert "keyName" not in instance
    assert instance["vpcSecurityGroupIds"] == ["sg-bastion"]
    assert instance["subnetId"] == "subnet-public"
    assert instance["metadataOptions"]["httpTokens"] == "required"
    assert instance["rootBlockDevice"]["encrypted"] is True
    assert instance["instanceType"] == "t4g.nano"
    assert instance["ami"] == infra.AMI
    assert instance["iamInstanceProfile"] == "droughtwatch-dev-bastion"
    assert stack.value["instance_id"] == "i-0123456789abcdef0"


def test_operators_may_forward_a_port_through_this_bastion_and_open_no_shell(infra: Any) -> None:
    stack = infra.run(build())
    policy = json.loads(stack.value["operator_policy"])
    (start,) = [s for s in policy["Statement"] if "ssm:StartSession" in s["Action"]]
    assert start["Resource"] == [
        "arn:aws:ec2:eu-west-1:123456789012:instance/i-0123456789abcdef0",
        "arn:aws:ssm:eu-west-1::document/AWS-StartPortForwardingSessionToRemoteHost",
    ]
    assert start["Condition"] == {"BoolIfExists": {"ssm:SessionDocumentAccessCheck": "true"}}
    secrets = [s for s in policy["Statement"] if "secretsmanager:GetSecretValue" in s["Action"]]
    assert [s["Resource"] for s in secrets] == [[GRAFANA_SECRET]]


def test_bastion_role_grants_session_manager_and_nothing_else(infra: Any) -> None:
    stack = infra.run(build())
    role = stack.one("aws:iam/role:Role")
    assert not role.inputs.get("managedPolicyArns")
    assert role.json("assumeRolePolicy")["Statement"][0]["Principal"] == {
        "Service": "ec2.amazonaws.com"
    }
    statements = stack.one("aws:iam/rolePolicy:RolePolicy").json("policy")["Statement"]
    assert {a for s in statements for a in s["Action"]} == {
        "ssm:UpdateInstanceInformation",
        "ssmmessages:CreateControlChannel",
        "ssmmessages:CreateDataChannel",
        "ssmmessages:OpenControlChannel",
        "ssmmessages:OpenDataChannel",
    }
    (register,) = [s for s in statements if s["Action"] == ["ssm:UpdateInstanceInformation"]]
    assert register["Resource"] == ["arn:aws:ec2:eu-west-1:123456789012:instance/*"]


@pytest.mark.parametrize(("instance_type", "arm64", "arch"), [
    ("t4g.nano", True, "arm64"), ("t3.micro", False, "x86_64"),
])  # fmt: skip
def test_ami_matches_the_instance_architecture(
    infra: Any, instance_type: str, arm64: bool, arch: str
) -> None:
    stack = infra.run(build(instance_type, arm64))
    (parameter,) = [a["name"] for t, a in stack.calls if t == "aws:ssm/getParameter:getParameter"]
    assert parameter == AMI_PARAMETER.format(arch=arch)


BASTION_ARN = "arn:aws:ec2:eu-west-1:123456789012:instance/i-0123456789abcdef0"


def test_an_on_demand_bastion_is_kept_stopped_and_stops_itself(infra: Any) -> None:
    stack = infra.run(build())
    (state,) = stack.of_type("aws:ec2transitgateway/instanceState:InstanceState")
    assert state.inputs == {"instanceId": "i-0123456789abcdef0", "state": "stopped"}
    instance = stack.one("aws:ec2/instance:Instance").inputs
    assert instance["instanceInitiatedShutdownBehavior"] == "stop"  # never terminate
    assert instance["rootBlockDevice"]["volumeSize"] == 8
    assert instance["userData"] == idle_stop_user_data(20)
    assert "[scripts-user, always]" in instance["userData"]  # at every boot, not only the first
    assert "systemctl enable --now droughtwatch-idle-stop.timer" in instance["userData"]
    assert "OnUnitActiveSec=1min" in instance["userData"]


def test_operators_may_start_the_on_demand_bastion_and_no_other_instance(infra: Any) -> None:
    policy = json.loads(infra.run(build()).value["operator_policy"])
    (start,) = [s for s in policy["Statement"] if "ec2:StartInstances" in s["Action"]]
    assert start["Action"] == ["ec2:StartInstances"]
    assert start["Resource"] == [BASTION_ARN]
    actions = {a for s in policy["Statement"] for a in s["Action"]}
    assert not {"ec2:StopInstances", "ec2:TerminateInstances", "ec2:RunInstances"} & actions
    (see,) = [s for s in policy["Statement"] if "ec2:DescribeInstances" in s["Action"]]
    # Describe* authorise on no narrower resource
    assert see["Action"] == ["ec2:DescribeInstances", "ssm:DescribeInstanceInformation"]
    assert see["Resource"] == ["*"]


def test_an_always_on_bastion_runs_and_nobody_starts_it(infra: Any) -> None:
    stack = infra.run(build(mode="always"))
    assert stack.of_type("aws:ec2transitgateway/instanceState:InstanceState") == []
    assert "userData" not in stack.one("aws:ec2/instance:Instance").inputs
    policy = json.loads(stack.value["operator_policy"])
    assert not [s for s in policy["Statement"] if "ec2:StartInstances" in s["Action"]]


# -- the idle check, run ------------------------------------------------------------------------


@pytest.fixture
def box(tmp_path: Path) -> dict[str, Any]:
    """The check with pgrep, systemctl and logger stood in for: each records its calls; pgrep
    finds a session when the file ``session`` exists."""
    if shutil.which("bash") is None or shutil.which("find") is None:
        pytest.skip("needs bash and find")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls"
    for name, body in {
        "pgrep": f'echo "pgrep $*" >> {calls}; [ -e {tmp_path}/session ]',
        "systemctl": f'echo "systemctl $*" >> {calls}',
        "logger": f'echo "logger $*" >> {calls}',
    }.items():
        stub = bin_dir / name
        stub.write_text(f"#!/bin/bash\n{body}\n")
        stub.chmod(0o755)
    stamp = tmp_path / "last-session"
    script = tmp_path / "check"
    script.write_text(idle_check_script(20, stamp=str(stamp)))
    script.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}

    def run() -> list[str]:
        calls.unlink(missing_ok=True)
        subprocess.run([str(script)], env=env, check=True)
        return calls.read_text().splitlines() if calls.exists() else []

    return {"run": run, "stamp": stamp, "session": tmp_path / "session"}


def _age(path: Path, minutes: float) -> None:
    then = time.time() - minutes * 60
    os.utime(path, (then, then))


def test_the_idle_check_stops_the_instance_after_its_idle_minutes_only(box: dict) -> None:
    run, stamp, session = box["run"], box["stamp"], box["session"]
    # the first check after a start counts from now
    assert not [c for c in run() if c.startswith("systemctl")]
    assert stamp.exists()
    _age(stamp, 10)
    assert not [c for c in run() if c.startswith("systemctl")]  # 10 of 20 minutes idle
    # a session (a port forward) keeps it up and restarts the count
    session.touch()
    _age(stamp, 60)
    assert not [c for c in run() if c.startswith("systemctl")]
    assert time.time() - stamp.stat().st_mtime < 60
    session.unlink()
    _age(stamp, 21)
    calls = run()
    assert "systemctl poweroff" in calls
    assert any("no Session Manager session for 20 minutes" in c for c in calls)
