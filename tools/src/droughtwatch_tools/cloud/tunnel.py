"""The database tunnel through a deployed stack's bastion, and the IAM policy it needs.

The tunnel needs the operator's IAM identity to hold the stack's operator policy (the output
`operator_policy`, printed by `droughtwatch tunnel --policy`): Session Manager sessions on the
bastion with the port forwarding document only, so that an operator cannot open a shell on it.
`port_forward_command` is the contract package's: the Pulumi program builds its
`tunnel_command` output with the same function.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
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
            "enable it with `pulumi config set droughtwatch:bastion_enabled true` and "
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
