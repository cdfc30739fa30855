"""The database tunnel through a deployed stack's bastion, and the IAM policy it needs.

The tunnel needs the operator's IAM identity to hold the stack's operator policy (the output
`operator_policy`, printed by `droughtwatch tunnel --policy`): Session Manager sessions on the
bastion with the port forwarding document only, so that an operator cannot open a shell on it.
`port_forward_command` is the contract package's: the Pulumi program builds its
`tunnel_command` output with the same function.

An on-demand bastion is stopped while nobody uses it: `ensure_running` starts it (the operator
policy allows ec2:StartInstances on that instance), waits until EC2 says it runs and Session
Manager says its agent is online, and only then is the session opened. It stops itself after
its idle minutes without a session.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from typing import Any

from droughtwatch_contract.outputs import StackOutput, port_forward_command

from droughtwatch_tools.cloud.outputs import flags_hint
from droughtwatch_tools.errors import UserError

TUNNEL_REFUSED_HINT = (
    "if AWS refused the session (AccessDeniedException), your identity needs the stack's "
    "operator policy: `droughtwatch tunnel --policy` prints it, for your administrator to "
    "attach (e.g. `aws iam put-user-policy --user-name <you> --policy-name droughtwatch-tunnel "
    "--policy-document file://policy.json`) or to add to your SSO permission set"
)


def tunnel_command(outputs: Mapping[str, Any], local_port: int = 5432) -> list[str]:
    """The Session Manager command that forwards 127.0.0.1:``local_port`` to the database."""
    instance = outputs.get(StackOutput.BASTION_INSTANCE_ID)
    if not instance:
        raise UserError(
            "this stack has no bastion",
            "enable it with `pulumi config set droughtwatch:bastion on-demand` and "
            "`pulumi up`, or pass --bastion-id",
        )
    host = outputs.get(StackOutput.DATABASE_ADDRESS)
    if not host:
        raise UserError(
            "the stack outputs have no database_address",
            flags_hint([StackOutput.DATABASE_ADDRESS]),
        )
    return port_forward_command(
        str(instance),
        str(host),
        outputs.get(StackOutput.DATABASE_PORT) or 5432,
        local_port,
        outputs.get(StackOutput.REGION),
    )


def operator_policy(outputs: Mapping[str, Any]) -> dict[str, Any]:
    """The IAM policy an operator needs for the tunnel (and `droughtwatch grafana --stack`), from
    the stack output that holds it as JSON."""
    policy = outputs.get(StackOutput.OPERATOR_POLICY)
    if not policy:
        raise UserError(
            f"the stack outputs have no {StackOutput.OPERATOR_POLICY.value}",
            "it comes with the bastion: deploy this version with `pulumi up` (and "
            "`droughtwatch:bastion_enabled true`)",
        )
    try:
        document = json.loads(policy) if isinstance(policy, str) else dict(policy)
    except (TypeError, ValueError):
        raise UserError(
            f"the stack output {StackOutput.OPERATOR_POLICY.value} is not JSON"
        ) from None
    return document


# How long a started instance may take to run and to report to Session Manager (its agent
# registers about half a minute after boot).
START_TIMEOUT_SECONDS = 300
POLL_SECONDS = 5.0


def instance_state(ec2: Any, instance_id: str) -> str:
    reservations = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
    return str(reservations[0]["Instances"][0]["State"]["Name"])


def agent_online(ssm: Any, instance_id: str) -> bool:
    found = ssm.describe_instance_information(
        Filters=[{"Key": "InstanceIds", "Values": [instance_id]}]
    )["InstanceInformationList"]
    return bool(found) and found[0].get("PingStatus") == "Online"


def ensure_running(
    ec2: Any,
    ssm: Any,
    instance_id: str,
    say: Callable[[str], None],
    *,
    timeout: float = START_TIMEOUT_SECONDS,
    poll: float = POLL_SECONDS,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> bool:
    """Start the bastion if it is stopped (or stopping) and wait until its Session Manager
    agent is online; returns whether it had to be started. A running bastion is used as it
    is."""
    started = clock()

    def wait(what: str, done: Callable[[], bool]) -> None:
        while not done():
            if clock() - started > timeout:
                raise UserError(
                    f"the bastion {instance_id} is not {what} after {timeout:.0f} s",
                    "look at it in the EC2 console (its state, its system log); run "
                    "`droughtwatch tunnel` again when it is up",
                )
            sleep(poll)

    state = instance_state(ec2, instance_id)
    if state == "running":
        return False
    if state in ("shutting-down", "terminated"):
        raise UserError(
            f"the bastion {instance_id} is {state}",
            "run `pulumi up` to make the stack's bastion again",
        )
    if state == "stopping":
        say(f"the bastion {instance_id} is stopping (it was idle); waiting to start it again")
        wait("stopped", lambda: instance_state(ec2, instance_id) == "stopped")
    if state != "pending":
        say(f"starting the bastion {instance_id} (it stops itself when idle)")
        ec2.start_instances(InstanceIds=[instance_id])
    wait("running", lambda: instance_state(ec2, instance_id) == "running")
    say("waiting for its Session Manager agent")
    wait("online in Session Manager", lambda: agent_online(ssm, instance_id))
    say(f"the bastion is up after {clock() - started:.0f} s")
    return True
