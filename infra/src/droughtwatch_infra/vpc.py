"""The network: a VPC with two private subnets (database and Lambdas) and, for the bastion, one
public subnet; an S3 gateway endpoint and a Secrets Manager interface endpoint so the Lambdas
need no NAT; and security groups that allow only the connections the stack makes."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from droughtwatch_infra.naming import Namer

POSTGRES_PORT = 5432
HTTPS_PORT = 443
ANYWHERE = "0.0.0.0/0"


@dataclass(frozen=True)
class NetworkArgs:
    namer: Namer
    region: str
    cidr: str
    bastion: bool


def subnet_cidrs(cidr: str) -> tuple[str, str, str]:
    """Two private subnets and one public subnet, each a sixteenth of the VPC."""
    blocks = ipaddress.IPv4Network(cidr).subnets(prefixlen_diff=4)
    private_a, private_b, public = (str(next(blocks)) for _ in range(3))
    return private_a, private_b, public


class Network(pulumi.ComponentResource):
    vpc_id: pulumi.Output[str]
    private_subnet_ids: list[pulumi.Output[str]]
    public_subnet_id: pulumi.Output[str] | None
    lambda_security_group_id: pulumi.Output[str]
    database_security_group_id: pulumi.Output[str]
    bastion_security_group_id: pulumi.Output[str] | None

    def __init__(
        self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("droughtwatch:infra:Network", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        namer = args.namer

        def tags(purpose: str) -> dict[str, str]:
            return {"Name": namer.name(purpose)}

        vpc = aws.ec2.Vpc(
            "vpc",
            cidr_block=args.cidr,
            enable_dns_support=True,
            enable_dns_hostnames=True,  # the interface endpoint's private DNS needs both
            tags=tags("vpc"),
            opts=child,
        )
        # The default security group allows all traffic between its members: empty it, so
        # that nothing attached to it by accident can talk.
        aws.ec2.DefaultSecurityGroup(
            "default-sg", vpc_id=vpc.id, ingress=[], egress=[], tags=tags("default"), opts=child
        )
        zones = aws.get_availability_zones_output(
            state="available",
            filters=[{"name": "opt-in-status", "values": ["opt-in-not-required"]}],
        )
        private_cidrs = subnet_cidrs(args.cidr)[:2]
        private_subnets = [
            aws.ec2.Subnet(
                f"private-{index}",
                vpc_id=vpc.id,
                cidr_block=cidr,
                availability_zone=zones.names[index],
                map_public_ip_on_launch=False,
                tags=tags(f"private-{index}"),
                opts=child,
            )
            for index, cidr in enumerate(private_cidrs)
        ]
        # No route out of the private subnets: only the endpoints and the VPC itself.
        private_routes = aws.ec2.RouteTable(
            "private-routes", vpc_id=vpc.id, tags=tags("private"), opts=child
        )
        for index, subnet in enumerate(private_subnets):
            aws.ec2.RouteTableAssociation(
                f"private-{index}",
                subnet_id=subnet.id,
                route_table_id=private_routes.id,
                opts=child,
            )

        def group(purpose: str, description: str) -> aws.ec2.SecurityGroup:
            # No inline rules: each rule below is its own resource, and Pulumi removes the
            # allow-all egress rule AWS adds to a new group.
            return aws.ec2.SecurityGroup(
                f"{purpose}-sg",
                name=namer.name(purpose),
                description=description,
                vpc_id=vpc.id,
                tags=tags(purpose),
                opts=child,
            )

        lambdas = group("lambda", "droughtwatch Lambdas: out to the database and AWS endpoints")
        database = group("database", "droughtwatch database: in from the Lambdas and the bastion")
        endpoints = group("endpoints", "droughtwatch interface endpoints: in from the Lambdas")

        s3_endpoint = aws.ec2.VpcEndpoint(
            "s3-endpoint",
            vpc_id=vpc.id,
            service_name=f"com.amazonaws.{args.region}.s3",
            vpc_endpoint_type="Gateway",
            route_table_ids=[private_routes.id],
            tags=tags("s3"),
            opts=child,
        )
        aws.ec2.VpcEndpoint(
            "secretsmanager-endpoint",
            vpc_id=vpc.id,
            service_name=f"com.amazonaws.{args.region}.secretsmanager",
            vpc_endpoint_type="Interface",
            private_dns_enabled=True,
            subnet_ids=[s.id for s in private_subnets],
            security_group_ids=[endpoints.id],
            tags=tags("secretsmanager"),
            opts=child,
        )

        def egress(
            name: str, sg: aws.ec2.SecurityGroup, port: int, description: str, **to: Any
        ) -> None:
            aws.vpc.SecurityGroupEgressRule(
                name,
                security_group_id=sg.id,
                ip_protocol="tcp",
                from_port=port,
                to_port=port,
                description=description,
                opts=child,
                **to,
            )

        def ingress(
            name: str,
            sg: aws.ec2.SecurityGroup,
            port: int,
            source: aws.ec2.SecurityGroup,
            description: str,
        ) -> None:
            aws.vpc.SecurityGroupIngressRule(
                name,
                security_group_id=sg.id,
                ip_protocol="tcp",
                from_port=port,
                to_port=port,
                referenced_security_group_id=source.id,
                description=description,
                opts=child,
            )

        egress("lambda-to-database", lambdas, POSTGRES_PORT, "PostgreSQL",
               referenced_security_group_id=database.id)  # fmt: skip
        egress("lambda-to-endpoints", lambdas, HTTPS_PORT, "Secrets Manager endpoint",
               referenced_security_group_id=endpoints.id)  # fmt: skip
        egress("lambda-to-s3", lambdas, HTTPS_PORT, "S3 gateway endpoint",
               prefix_list_id=s3_endpoint.prefix_list_id)  # fmt: skip
        ingress("database-from-lambda", database, POSTGRES_PORT, lambdas, "Lambdas")
        ingress("endpoints-from-lambda", endpoints, HTTPS_PORT, lambdas, "Lambdas")

        self.public_subnet_id = None
        self.bastion_security_group_id = None
        if args.bastion:
            # The bastion reaches Session Manager over the internet gateway (cheaper than three
            # more interface endpoints); its group has no inbound rule at all.
            gateway = aws.ec2.InternetGateway("igw", vpc_id=vpc.id, tags=tags("igw"), opts=child)
            public = aws.ec2.Subnet(
                "public",
                vpc_id=vpc.id,
                cidr_block=subnet_cidrs(args.cidr)[2],
                availability_zone=zones.names[0],
                map_public_ip_on_launch=False,
                tags=tags("public"),
                opts=child,
            )
            public_routes = aws.ec2.RouteTable(
                "public-routes",
                vpc_id=vpc.id,
                routes=[{"cidr_block": ANYWHERE, "gateway_id": gateway.id}],
                tags=tags("public"),
                opts=child,
            )
            aws.ec2.RouteTableAssociation(
                "public", subnet_id=public.id, route_table_id=public_routes.id, opts=child
            )
            bastion = group(
                "bastion", "droughtwatch bastion: no inbound; out to SSM and the database"
            )
            egress("bastion-to-ssm", bastion, HTTPS_PORT, "Session Manager (HTTPS)",
                   cidr_ipv4=ANYWHERE)  # fmt: skip
            egress("bastion-to-database", bastion, POSTGRES_PORT, "PostgreSQL tunnel",
                   referenced_security_group_id=database.id)  # fmt: skip
            ingress("database-from-bastion", database, POSTGRES_PORT, bastion, "Bastion tunnel")
            self.public_subnet_id = public.id
            self.bastion_security_group_id = bastion.id

        self.vpc_id = vpc.id
        self.private_subnet_ids = [s.id for s in private_subnets]
        self.lambda_security_group_id = lambdas.id
        self.database_security_group_id = database.id
        self.register_outputs(
            {
                "vpc_id": self.vpc_id,
                "private_subnet_ids": self.private_subnet_ids,
                "public_subnet_id": self.public_subnet_id,
                "lambda_security_group_id": self.lambda_security_group_id,
                "database_security_group_id": self.database_security_group_id,
                "bastion_security_group_id": self.bastion_security_group_id,
            }
        )
