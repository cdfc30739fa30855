"""The bastion: a small EC2 instance through which operators forward a local port to the
database with SSM Session Manager. No SSH key, no inbound rule, IMDSv2 only, encrypted volume.

The instance itself does not limit what a session does: anyone allowed ssm:StartSession on it
with the default document gets a shell. What limits operators to port forwarding is their own
IAM policy: `operator_policy` (the stack output of that name) allows sessions on this instance
with the document AWS-StartPortForwardingSessionToRemoteHost only."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from droughtwatch_infra import policies
from droughtwatch_infra.children import ChildNames
from droughtwatch_infra.naming import Namer

# Amazon Linux 2023 (SSM agent preinstalled), latest image for the architecture.
AMI_PARAMETER = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-{arch}"


@dataclass(frozen=True)
class BastionArgs:
    namer: Namer
    instance_type: str
    arm64: bool
    subnet_id: pulumi.Input[str]
    security_group_id: pulumi.Input[str]
    partition: pulumi.Input[str]
    region: str
    account_id: pulumi.Input[str]
    # The read-only Grafana user's secret, which operators read for `droughtwatch grafana`.
    grafana_secret_arn: pulumi.Input[str]


class Bastion(pulumi.ComponentResource):
    instance_id: pulumi.Output[str]
    # The operators' IAM policy (JSON): port forwarding through this instance only.
    operator_policy: pulumi.Output[str]

    def __init__(
        self, name: str, args: BastionArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("droughtwatch:infra:Bastion", name, None, opts)
        child = ChildNames(self, name)
        role = aws.iam.Role(
            child.name(),
            name=args.namer.name("bastion"),
            description="droughtwatch bastion: Session Manager agent only",
            assume_role_policy=pulumi.Output.json_dumps(policies.assume_role("ec2.amazonaws.com")),
            opts=child.opts(),
        )
        aws.iam.RolePolicy(
            child.name(),
            name="session-manager-only",
            role=role.id,
            policy=pulumi.Output.json_dumps(
                policies.bastion_policy(args.partition, args.region, args.account_id)
            ),
            opts=child.opts(),
        )
        profile = aws.iam.InstanceProfile(
            child.name(), name=args.namer.name("bastion"), role=role.name, opts=child.opts()
        )
        ami = aws.ssm.get_parameter_output(
            name=AMI_PARAMETER.format(arch="arm64" if args.arm64 else "x86_64")
        )
        instance = aws.ec2.Instance(
            child.name(),
            ami=ami.value,
            instance_type=args.instance_type,
            subnet_id=args.subnet_id,
            vpc_security_group_ids=[args.security_group_id],
            associate_public_ip_address=True,  # outbound to Session Manager only
            iam_instance_profile=profile.name,
            metadata_options={
                "http_endpoint": "enabled",
                "http_tokens": "required",  # IMDSv2 only
                "http_put_response_hop_limit": 1,
            },
            root_block_device={"encrypted": True, "volume_type": "gp3"},
            monitoring=False,
            tags={"Name": args.namer.name("bastion")},
            # A new AMI release must not replace the bastion under an open tunnel.
            opts=child.opts(ignore_changes=["ami"]),
        )
        self.instance_id = instance.id
        self.operator_policy = pulumi.Output.json_dumps(
            policies.operator_policy(
                args.partition,
                args.region,
                args.account_id,
                instance.id,
                args.grafana_secret_arn,
            )
        )
        self.register_outputs(
            {"instance_id": self.instance_id, "operator_policy": self.operator_policy}
        )
