"""The security groups of the Lambdas, the database and the bastion, and the rules between them:
only the connections the stack makes (the Lambdas and the bastion to PostgreSQL, the bastion out
to Session Manager). Groups carry no inline rules: each rule is its own resource, and Pulumi
removes the allow-all egress rule AWS adds to a new group. (The endpoints' group: endpoints.py.)"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from droughtwatch_infra.children import ChildNames, former_network
from droughtwatch_infra.naming import Namer

POSTGRES_PORT = 5432
HTTPS_PORT = 443
ANYWHERE = "0.0.0.0/0"


def security_group(
    child: ChildNames, namer: Namer, vpc_id: pulumi.Input[str], purpose: str, description: str
) -> aws.ec2.SecurityGroup:
    return aws.ec2.SecurityGroup(
        child.name(f"{purpose}-sg"),
        name=namer.name(purpose),
        description=description,
        vpc_id=vpc_id,
        tags={"Name": namer.name(purpose)},
        opts=child.opts(f"{purpose}-sg"),
    )


def allow_out(
    child: ChildNames,
    purpose: str,
    group_id: pulumi.Input[str],
    port: int,
    description: str,
    **to: Any,
) -> None:
    """TCP ``port`` out of a group to ``to`` (a group, a prefix list or a CIDR block)."""
    aws.vpc.SecurityGroupEgressRule(
        child.name(purpose),
        security_group_id=group_id,
        ip_protocol="tcp",
        from_port=port,
        to_port=port,
        description=description,
        opts=child.opts(purpose),
        **to,
    )


def allow_in(
    child: ChildNames,
    purpose: str,
    group_id: pulumi.Input[str],
    port: int,
    source_id: pulumi.Input[str],
    description: str,
) -> None:
    """TCP ``port`` into a group from the group ``source_id``."""
    aws.vpc.SecurityGroupIngressRule(
        child.name(purpose),
        security_group_id=group_id,
        ip_protocol="tcp",
        from_port=port,
        to_port=port,
        referenced_security_group_id=source_id,
        description=description,
        opts=child.opts(purpose),
    )


@dataclass(frozen=True)
class SecurityGroupsArgs:
    namer: Namer
    vpc_id: pulumi.Input[str]
    bastion: bool


class SecurityGroups(pulumi.ComponentResource):
    lambda_security_group_id: pulumi.Output[str]
    database_security_group_id: pulumi.Output[str]
    bastion_security_group_id: pulumi.Output[str] | None

    def __init__(
        self, name: str, args: SecurityGroupsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("droughtwatch:infra:SecurityGroups", name, None, opts)
        child = ChildNames(self, name, former_parent=former_network())
        namer, vpc_id = args.namer, args.vpc_id
        lambdas = security_group(
            child,
            namer,
            vpc_id,
            "lambda",
            "droughtwatch Lambdas: out to the database and AWS endpoints",
        )
        database = security_group(
            child,
            namer,
            vpc_id,
            "database",
            "droughtwatch database: in from the Lambdas and the bastion",
        )
        allow_out(child, "lambda-to-database", lambdas.id, POSTGRES_PORT, "PostgreSQL",
                  referenced_security_group_id=database.id)  # fmt: skip
        allow_in(child, "database-from-lambda", database.id, POSTGRES_PORT, lambdas.id, "Lambdas")

        self.bastion_security_group_id = None
        if args.bastion:
            # No inbound rule at all: Session Manager needs none.
            bastion = security_group(
                child, namer, vpc_id, "bastion",
                "droughtwatch bastion: no inbound; out to SSM and the database",
            )  # fmt: skip
            allow_out(child, "bastion-to-ssm", bastion.id, HTTPS_PORT, "Session Manager (HTTPS)",
                      cidr_ipv4=ANYWHERE)  # fmt: skip
            allow_out(child, "bastion-to-database", bastion.id, POSTGRES_PORT,
                      "PostgreSQL tunnel", referenced_security_group_id=database.id)  # fmt: skip
            allow_in(child, "database-from-bastion", database.id, POSTGRES_PORT, bastion.id,
                     "Bastion tunnel")  # fmt: skip
            self.bastion_security_group_id = bastion.id

        self.lambda_security_group_id = lambdas.id
        self.database_security_group_id = database.id
        self.register_outputs(
            {
                "lambda_security_group_id": self.lambda_security_group_id,
                "database_security_group_id": self.database_security_group_id,
                "bastion_security_group_id": self.bastion_security_group_id,
            }
        )
