"""The private way to AWS services that replaces a NAT: an S3 gateway endpoint on the private
route table (free), whose policy lets through only this stack's buckets; and, for the
``instance`` database kind only, a Secrets Manager interface endpoint in the private subnets
(billed per hour and zone) with its own security group and a policy naming the database
secrets, the migrate function's one way to them. (On Aurora the migrate function runs outside
the VPC and uses the RDS Data API: no interface endpoint runs all month.)"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from droughtwatch_infra import policies
from droughtwatch_infra.children import ChildNames, former_network
from droughtwatch_infra.naming import Namer
from droughtwatch_infra.security_groups import HTTPS_PORT, allow_in, allow_out, security_group


@dataclass(frozen=True)
class EndpointsArgs:
    namer: Namer
    region: str
    vpc_id: pulumi.Input[str]
    subnet_ids: Sequence[pulumi.Input[str]]
    route_table_id: pulumi.Input[str]
    # The security group of the clients (the Lambdas) that may reach the endpoints.
    client_security_group_id: pulumi.Input[str]
    account_id: pulumi.Input[str]
    # The stack's buckets: all the S3 endpoint lets through.
    bucket_arns: Sequence[pulumi.Input[str]]
    # The secrets the migrate function reads through a Secrets Manager endpoint; None: no
    # such endpoint (the function does not run in the VPC).
    secret_arns: Sequence[pulumi.Input[str]] | None = None


class Endpoints(pulumi.ComponentResource):
    def __init__(
        self, name: str, args: EndpointsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("droughtwatch:infra:Endpoints", name, None, opts)
        child = ChildNames(self, name, former_parent=former_network())
        namer, clients = args.namer, args.client_security_group_id
        s3 = aws.ec2.VpcEndpoint(
            child.name("s3-endpoint"),
            vpc_id=args.vpc_id,
            service_name=f"com.amazonaws.{args.region}.s3",
            vpc_endpoint_type="Gateway",
            route_table_ids=[args.route_table_id],
            policy=pulumi.Output.json_dumps(
                policies.s3_endpoint_policy(list(args.bucket_arns), args.account_id)
            ),
            tags={"Name": namer.name("s3")},
            opts=child.opts("s3-endpoint"),
        )
        allow_out(child, "lambda-to-s3", clients, HTTPS_PORT, "S3 gateway endpoint",
                  prefix_list_id=s3.prefix_list_id)  # fmt: skip
        if args.secret_arns is not None:
            self._secrets_manager(child, args)
        self.register_outputs({})

    @staticmethod
    def _secrets_manager(child: ChildNames, args: EndpointsArgs) -> None:
        namer, clients = args.namer, args.client_security_group_id
        endpoints = security_group(
            child, namer, args.vpc_id, "endpoints",
            "droughtwatch interface endpoints: in from the Lambdas",
        )  # fmt: skip
        aws.ec2.VpcEndpoint(
            child.name("secretsmanager-endpoint"),
            vpc_id=args.vpc_id,
            service_name=f"com.amazonaws.{args.region}.secretsmanager",
            vpc_endpoint_type="Interface",
            private_dns_enabled=True,
            subnet_ids=list(args.subnet_ids),
            security_group_ids=[endpoints.id],
            policy=pulumi.Output.json_dumps(
                policies.secrets_endpoint_policy(list(args.secret_arns or []), args.account_id)
            ),
            tags={"Name": namer.name("secretsmanager")},
            opts=child.opts("secretsmanager-endpoint"),
        )
        allow_out(child, "lambda-to-endpoints", clients, HTTPS_PORT, "Secrets Manager endpoint",
                  referenced_security_group_id=endpoints.id)  # fmt: skip
        allow_in(child, "endpoints-from-lambda", endpoints.id, HTTPS_PORT, clients, "Lambdas")
