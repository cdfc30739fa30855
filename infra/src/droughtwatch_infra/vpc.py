"""The VPC: two private subnets in two zones (database and Lambdas) with no route out, and, for the
bastion, one public subnet behind an internet gateway. The VPC's default security group is
emptied. (Security groups: security_groups.py; the S3 and Secrets Manager endpoints that replace
a NAT: endpoints.py.)"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from droughtwatch_infra.children import ChildNames, former_network
from droughtwatch_infra.naming import Namer

ANYWHERE = "0.0.0.0/0"


@dataclass(frozen=True)
class VpcArgs:
    namer: Namer
    cidr: str
    # The bastion's public subnet and internet gateway.
    public_subnet: bool


def subnet_cidrs(cidr: str) -> tuple[str, str, str]:
    """Two private subnets and one public subnet, each a sixteenth of the VPC."""
    blocks = ipaddress.IPv4Network(cidr).subnets(prefixlen_diff=4)
    private_a, private_b, public = (str(next(blocks)) for _ in range(3))
    return private_a, private_b, public


class Vpc(pulumi.ComponentResource):
    vpc_id: pulumi.Output[str]
    private_subnet_ids: list[pulumi.Output[str]]
    private_route_table_id: pulumi.Output[str]
    public_subnet_id: pulumi.Output[str] | None

    def __init__(
        self, name: str, args: VpcArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("droughtwatch:infra:Vpc", name, None, opts)
        child = ChildNames(self, name, former_parent=former_network())
        namer = args.namer

        def tags(purpose: str) -> dict[str, str]:
            return {"Name": namer.name(purpose)}

        vpc = aws.ec2.Vpc(
            child.name("vpc"),
            cidr_block=args.cidr,
            enable_dns_support=True,
            enable_dns_hostnames=True,  # the interface endpoint's private DNS needs both
            tags=tags("vpc"),
            opts=child.opts("vpc"),
        )
        # The default security group allows all traffic between its members: empty it, so
        # that nothing attached to it by accident can talk.
        aws.ec2.DefaultSecurityGroup(
            child.name("default-sg"),
            vpc_id=vpc.id,
            ingress=[],
            egress=[],
            tags=tags("default"),
            opts=child.opts("default-sg"),
        )
        zones = aws.get_availability_zones_output(
            state="available",
            filters=[{"name": "opt-in-status", "values": ["opt-in-not-required"]}],
        )
        private_cidrs = subnet_cidrs(args.cidr)[:2]
        private_subnets = [
            aws.ec2.Subnet(
                child.name(f"private-{index}"),
                vpc_id=vpc.id,
                cidr_block=cidr,
                availability_zone=zones.names[index],
                map_public_ip_on_launch=False,
                tags=tags(f"private-{index}"),
                opts=child.opts(f"private-{index}"),
            )
            for index, cidr in enumerate(private_cidrs)
        ]
        # No route out of the private subnets: only the endpoints and the VPC itself.
        private_routes = aws.ec2.RouteTable(
            child.name("private-routes"),
            vpc_id=vpc.id,
            tags=tags("private"),
            opts=child.opts("private-routes"),
        )
        for index, subnet in enumerate(private_subnets):
            aws.ec2.RouteTableAssociation(
                child.name(f"private-{index}"),
                subnet_id=subnet.id,
                route_table_id=private_routes.id,
                opts=child.opts(f"private-{index}"),
            )

        self.public_subnet_id = None
        if args.public_subnet:
            # The bastion reaches Session Manager over the internet gateway (cheaper than three
            # more interface endpoints).
            gateway = aws.ec2.InternetGateway(
                child.name("igw"), vpc_id=vpc.id, tags=tags("igw"), opts=child.opts("igw")
            )
            public = aws.ec2.Subnet(
                child.name("public"),
                vpc_id=vpc.id,
                cidr_block=subnet_cidrs(args.cidr)[2],
                availability_zone=zones.names[0],
                map_public_ip_on_launch=False,
                tags=tags("public"),
                opts=child.opts("public"),
            )
            public_routes = aws.ec2.RouteTable(
                child.name("public-routes"),
                vpc_id=vpc.id,
                routes=[{"cidr_block": ANYWHERE, "gateway_id": gateway.id}],
                tags=tags("public"),
                opts=child.opts("public-routes"),
            )
            aws.ec2.RouteTableAssociation(
                child.name("public"),
                subnet_id=public.id,
                route_table_id=public_routes.id,
                opts=child.opts("public"),
            )
            self.public_subnet_id = public.id

        self.vpc_id = vpc.id
        self.private_subnet_ids = [s.id for s in private_subnets]
        self.private_route_table_id = private_routes.id
        self.register_outputs(
            {
                "vpc_id": self.vpc_id,
                "private_subnet_ids": self.private_subnet_ids,
                "private_route_table_id": self.private_route_table_id,
                "public_subnet_id": self.public_subnet_id,
            }
        )
