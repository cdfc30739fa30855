"""The network component: private subnets in two zones with no route out, the two endpoints the
Lambdas use instead of a NAT, and security group rules that allow only the connections made."""

from __future__ import annotations

from typing import Any

from droughtwatch_infra.naming import Namer
from droughtwatch_infra.vpc import Network, NetworkArgs, subnet_cidrs

INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
EGRESS = "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"


def build(bastion: bool) -> Any:
    return lambda: Network(
        "network",
        NetworkArgs(Namer("droughtwatch", "dev"), "eu-west-1", "10.42.0.0/16", bastion),
    )


def rules(stack: Any) -> set[tuple[str, str, int, str]]:
    """(direction, group, port, peer) with groups by name, e.g. ('in', 'database', 5432,
    'lambda')."""
    # The mocks give a group the id sg-<logical name>.
    groups = {
        f"sg-{g.name}": g.name.removesuffix("-sg")
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
    stack = infra.run(build(bastion=True))
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
    default = stack.one("aws:ec2/defaultSecurityGroup:DefaultSecurityGroup").inputs
    assert default["ingress"] == [] and default["egress"] == []


def test_private_subnets_span_two_zones_with_no_route_out(infra: Any) -> None:
    stack = infra.run(build(bastion=False))
    subnets = stack.of_type("aws:ec2/subnet:Subnet")
    assert [s.name for s in subnets] == ["private-0", "private-1"]
    assert {s.inputs["availabilityZone"] for s in subnets} == {"eu-west-1a", "eu-west-1b"}
    assert all(s.inputs["mapPublicIpOnLaunch"] is False for s in subnets)
    assert [s.inputs["cidrBlock"] for s in subnets] == ["10.42.0.0/20", "10.42.16.0/20"]
    routes = stack.one("aws:ec2/routeTable:RouteTable", "private-routes").inputs
    assert not routes.get("routes")
    assert stack.of_type("aws:ec2/internetGateway:InternetGateway") == []
    assert stack.of_type("aws:ec2/natGateway:NatGateway") == []
    # Without a bastion the database hears only the Lambdas.
    assert ("in", "database", 5432, "bastion") not in rules(stack)


def test_endpoints_serve_s3_and_secrets_manager_privately(infra: Any) -> None:
    stack = infra.run(build(bastion=False))
    s3 = stack.one("aws:ec2/vpcEndpoint:VpcEndpoint", "s3-endpoint").inputs
    assert s3["serviceName"] == "com.amazonaws.eu-west-1.s3"
    assert s3["vpcEndpointType"] == "Gateway"
    assert s3["routeTableIds"] == ["private-routes-id"]
    secrets = stack.one("aws:ec2/vpcEndpoint:VpcEndpoint", "secretsmanager-endpoint").inputs
    assert secrets["serviceName"] == "com.amazonaws.eu-west-1.secretsmanager"
    assert secrets["vpcEndpointType"] == "Interface"
    assert secrets["privateDnsEnabled"] is True
    assert secrets["subnetIds"] == ["subnet-private-0", "subnet-private-1"]
    assert secrets["securityGroupIds"] == ["sg-endpoints-sg"]


def test_bastion_subnet_is_public_through_an_internet_gateway(infra: Any) -> None:
    stack = infra.run(build(bastion=True))
    public = stack.one("aws:ec2/subnet:Subnet", "public").inputs
    assert public["cidrBlock"] == subnet_cidrs("10.42.0.0/16")[2] == "10.42.32.0/20"
    routes = stack.one("aws:ec2/routeTable:RouteTable", "public-routes").inputs
    assert routes["routes"] == [{"cidrBlock": "0.0.0.0/0", "gatewayId": "igw-id"}]
