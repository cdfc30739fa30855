"""The security groups and their rules, with the endpoints' rules beside them: only the
connections the stack makes are allowed."""

from __future__ import annotations

from typing import Any

INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
EGRESS = "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"


def rules(stack: Any) -> set[tuple[str, str, int, str]]:
    """(direction, group, port, peer) with groups by their physical name's purpose, e.g.
    ('in', 'database', 5432, 'lambda')."""
    # The mocks give a group the id sg-<logical name>.
    groups = {
        f"sg-{g.name}": g.inputs["name"].removeprefix("droughtwatch-dev-")
        for g in stack.of_type("aws:ec2/securityGroup:SecurityGroup")
    }
    found = set()
    for typ, direction in ((INGRESS, "in"), (EGRESS, "out")):
        for rule in stack.of_type(typ):
            inputs = rule.inputs
            assert inputs["ipProtocol"] == "tcp"
            assert inputs["fromPort"] == inputs["toPort"]
            peer = (
                groups.get(inputs.get("referencedSecurityGroupId", ""))
                or inputs.get("prefixListId")
                or inputs.get("cidrIpv4")
            )
            found.add((direction, groups[inputs["securityGroupId"]], int(inputs["fromPort"]), peer))
    return found


def test_rules_allow_only_the_connections_the_stack_makes(infra: Any) -> None:
    stack = infra.run(infra.network(bastion=True))
    assert rules(stack) == {
        ("out", "lambda", 5432, "database"),
        ("out", "lambda", 443, "endpoints"),
        ("out", "lambda", 443, "pl-6da54004"),  # the S3 gateway endpoint's prefix list
        ("in", "database", 5432, "lambda"),
        ("in", "endpoints", 443, "lambda"),
        ("in", "database", 5432, "bastion"),
        ("out", "bastion", 5432, "database"),
        ("out", "bastion", 443, "0.0.0.0/0"),  # Session Manager
    }
    for group in stack.of_type("aws:ec2/securityGroup:SecurityGroup"):
        assert not group.inputs.get("ingress") and not group.inputs.get("egress"), group.name


def test_without_a_bastion_the_database_hears_only_the_lambdas(infra: Any) -> None:
    stack = infra.run(infra.network(bastion=False))
    assert {r for r in rules(stack) if r[1] == "database"} == {("in", "database", 5432, "lambda")}
    names = {g.inputs["name"] for g in stack.of_type("aws:ec2/securityGroup:SecurityGroup")}
    assert "droughtwatch-dev-bastion" not in names


def test_on_aurora_the_lambdas_reach_the_database_and_s3_only(infra: Any) -> None:
    stack = infra.run(infra.network(bastion=False, secrets_endpoint=False))
    assert rules(stack) == {
        ("out", "lambda", 5432, "database"),
        ("out", "lambda", 443, "pl-6da54004"),
        ("in", "database", 5432, "lambda"),
    }
