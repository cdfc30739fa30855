"""The bastion component: Session Manager only (no key pair, a role that can do nothing else),
IMDSv2 required, encrypted volume, the AMI matching the instance's architecture; and the
operators' policy, which allows port forwarding sessions on this instance and no shell."""

from __future__ import annotations

import json
from typing import Any

import pytest
from droughtwatch_infra.bastion import AMI_PARAMETER, Bastion, BastionArgs
from droughtwatch_infra.naming import Namer

GRAFANA_SECRET = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:grafana-AbCdEf"


def build(instance_type: str = "t4g.nano", arm64: bool = True) -> Any:
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
