"""The outputs of a droughtwatch stack: the names the Pulumi program (infra/__main__.py) exports
and the CLI reads (`pulumi stack output --json`), and the Session Manager command that the
program exports as `tunnel_command` and the CLI runs."""

from __future__ import annotations

import json
from enum import StrEnum

PORT_FORWARD_DOCUMENT = "AWS-StartPortForwardingSessionToRemoteHost"


class StackOutput(StrEnum):
    """The outputs of a droughtwatch stack."""

    REGION = "region"
    DATA_BUCKET = "data_bucket"
    MODEL_BUCKET = "model_bucket"
    MODEL_PREFIX = "model_prefix"
    STATE_MACHINE_ARN = "state_machine_arn"
    DATABASE_ENDPOINT = "database_endpoint"
    DATABASE_ADDRESS = "database_address"
    DATABASE_PORT = "database_port"
    DATABASE_NAME = "database_name"
    # The RDS-managed master secret (its ARN only): the migrate function's, for break-glass use.
    DATABASE_SECRET_ARN = "database_secret_arn"
    # droughtwatch_grafana's credentials (read-only), which `droughtwatch grafana --stack` reads.
    GRAFANA_SECRET_ARN = "grafana_secret_arn"
    MIGRATE_FUNCTION_NAME = "migrate_function_name"
    BASTION_INSTANCE_ID = "bastion_instance_id"
    TUNNEL_COMMAND = "tunnel_command"
    # An IAM policy (JSON) for the operators who open the tunnel: port forwarding sessions on
    # the bastion only (no shell), and the Grafana secret.
    OPERATOR_POLICY = "operator_policy"
    IMAGE_URI = "image_uri"
    FUNCTION_NAMES = "function_names"
    ALERT_TOPIC_ARN = "alert_topic_arn"
    SCHEDULE_NAME = "schedule_name"
    DEAD_LETTER_QUEUE_URL = "dead_letter_queue_url"


def port_forward_command(
    instance_id: str, host: str, port: int | str, local_port: int | str, region: str | None
) -> list[str]:
    """`aws ssm start-session` forwarding 127.0.0.1:local_port to host:port through the
    instance (Session Manager: no SSH key, no inbound rule)."""
    parameters = {"host": [host], "portNumber": [str(port)], "localPortNumber": [str(local_port)]}
    command = ["aws", "ssm", "start-session"]
    if region:
        command += ["--region", region]
    return [
        *command,
        "--target",
        instance_id,
        "--document-name",
        PORT_FORWARD_DOCUMENT,
        "--parameters",
        json.dumps(parameters, separators=(",", ":")),
    ]
