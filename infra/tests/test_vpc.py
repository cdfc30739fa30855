"""The VPC component: private subnets in two zones with no route out, the emptied default
security group, and the bastion's public subnet behind an internet gateway."""

from __future__ import annotations

from typing import Any

from droughtwatch_infra.naming import Namer
from droughtwatch_infra.vpc import Vpc, VpcArgs, subnet_cidrs


def build(bastion: bool) -> Any:
    return lambda: (
        Vpc(
            "network", VpcArgs(Namer("droughtwatch", "dev"), "10.42.0.0/16", public_subnet=bastion)
        ).vpc_id
    )


def test_private_subnets_span_two_zones_with_no_route_out(infra: Any) -> None:
    stack = infra.run(build(bastion=False))
    subnets = stack.of_type("aws:ec2/subnet:Subnet")
    assert [s.name for s in subnets] == ["network-private-0", "network-private-1"]
    assert {s.inputs["availabilityZone"] for s in subnets} == {"eu-west-1a", "eu-west-1b"}
    assert all(s.inputs["mapPublicIpOnLaunch"] is False for s in subnets)
    assert [s.inputs["cidrBlock"] for s in subnets] == ["10.42.0.0/20", "10.42.16.0/20"]
    routes = stack.one("aws:ec2/routeTable:RouteTable", "network-private-routes").inputs
    assert not routes.get("routes")
    associations = stack.of_type("aws:ec2/routeTableAssociation:RouteTableAssociation")
    assert {a.inputs["subnetId"] for a in associations} == {
        "subnet-network-private-0",
        "subnet-network-private-1",
    }
    assert stack.of_type("aws:ec2/internetGateway:InternetGateway") == []
    assert stack.of_type("aws:ec2/natGateway:NatGateway") == []


def test_default_security_group_allows_nothing(infra: Any) -> None:
    stack = infra.run(build(bastion=False))
    default = stack.one("aws:ec2/defaultSecurityGroup:DefaultSecurityGroup").inputs
    assert default["ingress"] == [] and default["egress"] == []


def test_bastion_subnet_is_public_through_an_internet_gateway(infra: Any) -> None:
    stack = infra.run(build(bastion=True))
    public = stack.one("aws:ec2/subnet:Subnet", "network-public").inputs
    assert public["cidrBlock"] == subnet_cidrs("10.42.0.0/16")[2] == "10.42.32.0/20"
    routes = stack.one("aws:ec2/routeTable:RouteTable", "network-public-routes").inputs
    assert routes["routes"] == [{"cidrBlock": "0.0.0.0/0", "gatewayId": "network-igw-id"}]
