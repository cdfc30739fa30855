"""The bastion: a small EC2 instance through which operators forward a local port to the
database with SSM Session Manager. No SSH key, no inbound rule, IMDSv2 only, encrypted volume.

``on-demand`` (the default): the instance is kept stopped (``InstanceState``), so that only its
volume bills while nobody uses it (its public IPv4 address bills only while it runs);
`droughtwatch tunnel` starts it, and it stops itself after ``idle_minutes`` without a Session
Manager session: its user data installs a systemd timer that checks every minute, and the
instance's shutdown behaviour is "stop". ``always``: it runs all month.

The instance itself does not limit what a session does: anyone allowed ssm:StartSession on it
with the default document gets a shell. What limits operators to port forwarding is their own
IAM policy: `operator_policy` (the stack output of that name) allows sessions on this instance
with the document AWS-StartPortForwardingSessionToRemoteHost only."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pulumi
import pulumi_aws as aws

from droughtwatch_infra import policies
from droughtwatch_infra.children import ChildNames
from droughtwatch_infra.naming import Namer

# Amazon Linux 2023 (SSM agent preinstalled), latest image for the architecture.
AMI_PARAMETER = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-{arch}"
# The root volume: the size of Amazon Linux 2023's image (the smallest it takes), stated so that
# the stack's cost (costs.py) follows from the program.
ROOT_VOLUME_GB = 8
# Where the idle check keeps the time of the last session: /run is emptied at each boot, so a
# started instance counts its idle minutes from its start.
LAST_SESSION_STAMP = "/run/droughtwatch-last-session"


def idle_check_script(idle_minutes: int, stamp: str = LAST_SESSION_STAMP) -> str:
    """The check the timer runs every minute: a Session Manager session (each runs an
    ssm-session-worker process, port forwarding too) refreshes the stamp; none for
    ``idle_minutes`` powers the instance off, which stops it."""
    return f"""#!/bin/bash
# droughtwatch bastion: stop when no Session Manager session has run for {idle_minutes} minutes.
stamp={stamp}
if pgrep -f ssm-session-worker >/dev/null || [ ! -e "$stamp" ]; then
    touch "$stamp"
    exit 0
fi
if [ -n "$(find "$stamp" -mmin +{idle_minutes - 1})" ]; then
    logger -t droughtwatch "no Session Manager session for {idle_minutes} minutes: stopping"
    systemctl poweroff
fi
"""


def idle_stop_user_data(idle_minutes: int) -> str:
    """User data that installs the idle check and a systemd timer running it every minute. The
    script runs at every boot, not only the first (cloud-init's scripts-user module set to
    ``always``): the stack stops a new instance right after it starts, possibly before its
    first boot's user data ran (a documented caveat of InstanceState), and a changed idle time
    applies at the next start without replacing the instance."""
    return f"""Content-Type: multipart/mixed; boundary="//"
MIME-Version: 1.0

--//
Content-Type: text/cloud-config; charset="us-ascii"

#cloud-config
cloud_final_modules:
- [scripts-user, always]

--//
Content-Type: text/x-shellscript; charset="us-ascii"

#!/bin/bash
set -euo pipefail
cat > /usr/local/sbin/droughtwatch-idle-stop <<'SCRIPT'
{idle_check_script(idle_minutes)}SCRIPT
chmod 0755 /usr/local/sbin/droughtwatch-idle-stop
cat > /etc/systemd/system/droughtwatch-idle-stop.service <<'UNIT'
[Unit]
Description=Stop the droughtwatch bastion after {idle_minutes} minutes without a session
[Service]
Type=oneshot
ExecStart=/usr/local/sbin/droughtwatch-idle-stop
UNIT
cat > /etc/systemd/system/droughtwatch-idle-stop.timer <<'UNIT'
[Unit]
Description=Check every minute whether the droughtwatch bastion is idle
[Timer]
OnBootSec=1min
OnUnitActiveSec=1min
[Install]
WantedBy=timers.target
UNIT
systemctl daemon-reload
systemctl enable --now droughtwatch-idle-stop.timer
--//--
"""


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
    mode: Literal["on-demand", "always"] = "on-demand"
    # on-demand: the instance stops itself after this many minutes without a session
    idle_minutes: int = 30


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
        on_demand = args.mode == "on-demand"
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
            root_block_device={
                "encrypted": True,
                "volume_type": "gp3",
                "volume_size": ROOT_VOLUME_GB,
            },
            monitoring=False,
            # A shutdown from inside (the idle check) stops the instance, never terminates it.
            instance_initiated_shutdown_behavior="stop",
            user_data=idle_stop_user_data(args.idle_minutes) if on_demand else None,
            tags={"Name": args.namer.name("bastion")},
            # A new AMI release must not replace the bastion under an open tunnel.
            opts=child.opts(ignore_changes=["ami"]),
        )
        if on_demand:
            # Stopped after creation and at every `pulumi up` (one that finds it running
            # stops it: the next `droughtwatch tunnel` starts it again). pulumi-aws files the
            # EC2 instance state resource under ec2transitgateway.
            aws.ec2transitgateway.InstanceState(
                child.name("stopped"),
                instance_id=instance.id,
                state="stopped",
                opts=child.opts("stopped"),
            )
        self.instance_id = instance.id
        self.operator_policy = pulumi.Output.json_dumps(
            policies.operator_policy(
                args.partition,
                args.region,
                args.account_id,
                instance.id,
                args.grafana_secret_arn,
                may_start=on_demand,
            )
        )
        self.register_outputs(
            {"instance_id": self.instance_id, "operator_policy": self.operator_policy}
        )
