"""The pipeline: the Step Functions state machine from the contract's single-source definition,
logging to its own log group, with a role that may invoke only the workflow's functions and run
the Distributed Map's children (executions of the machine itself)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import pulumi
import pulumi_aws as aws
from droughtwatch_contract import statemachine
from droughtwatch_contract.stages import WORKFLOW, Workflow

from droughtwatch_infra import policies
from droughtwatch_infra.children import ChildNames
from droughtwatch_infra.naming import Namer


@dataclass(frozen=True)
class PipelineArgs:
    namer: Namer
    function_arns: Mapping[str, pulumi.Input[str]]
    timeouts: Mapping[str, int]
    account_id: pulumi.Input[str]
    log_retention_days: int
    log_level: Literal["ALL", "ERROR", "FATAL", "OFF"]
    workflow: Workflow = field(default=WORKFLOW)
    # The ARN partition of the stack's region (aws.get_partition): the Lambda integration's ARN.
    partition: pulumi.Input[str] = "aws"
    # The Map's children at once, and the share of failed items it tolerates (config.py).
    max_concurrency: int = statemachine.DEFAULT_MAX_CONCURRENCY
    tolerated_failure_percentage: float = statemachine.DEFAULT_TOLERATED_FAILURE_PERCENTAGE


class Pipeline(pulumi.ComponentResource):
    arn: pulumi.Output[str]
    name: str

    def __init__(
        self, name: str, args: PipelineArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("droughtwatch:infra:Pipeline", name, None, opts)
        child = ChildNames(self, name)
        machine_name = args.namer.name("pipeline")
        logging = args.log_level != "OFF"
        role = aws.iam.Role(
            child.name("state-machine"),
            name=args.namer.name("pipeline"),
            description="droughtwatch state machine: invokes the steps' functions, runs its Map",
            assume_role_policy=pulumi.Output.json_dumps(
                policies.assume_role("states.amazonaws.com", source_account=args.account_id)
            ),
            opts=child.opts("state-machine"),
        )
        policy = aws.iam.RolePolicy(
            child.name("state-machine"),
            name="invoke-stage-functions",
            role=role.id,
            policy=pulumi.Output.json_dumps(
                policies.state_machine_policy(args.function_arns, logging=logging)
            ),
            opts=child.opts("state-machine"),
        )
        logging_configuration: dict = {"level": "OFF"}
        if logging:
            # Step Functions logs through CloudWatch's vended-logs path.
            log_group = aws.cloudwatch.LogGroup(
                child.name("executions"),
                name=f"/aws/vendedlogs/states/{machine_name}",
                retention_in_days=args.log_retention_days,
                opts=child.opts("executions"),
            )
            logging_configuration = {
                "level": args.log_level,
                "include_execution_data": True,  # payloads carry keys and counts, no secrets
                "log_destination": pulumi.Output.concat(log_group.arn, ":*"),
            }
        machine = aws.sfn.StateMachine(
            child.name("state-machine"),
            name=machine_name,
            type="STANDARD",
            role_arn=role.arn,
            definition=pulumi.Output.json_dumps(
                statemachine.definition(
                    args.function_arns,
                    args.timeouts,
                    workflow=args.workflow,
                    max_concurrency=args.max_concurrency,
                    tolerated_failure_percentage=args.tolerated_failure_percentage,
                    lambda_invoke=pulumi.Output.from_input(args.partition).apply(
                        statemachine.lambda_invoke_resource
                    ),
                )
            ),
            logging_configuration=logging_configuration,
            opts=child.opts("state-machine", depends_on=[policy]),
        )
        # The Map starts its children as executions of this machine: granted on its own ARN once
        # it exists (the role cannot name the machine before).
        children = aws.iam.RolePolicy(
            child.name("map-children"),
            name="run-map-children",
            role=role.id,
            policy=pulumi.Output.json_dumps(
                policies.map_run_policy(
                    machine.arn, machine.arn.apply(policies.children_executions_arn)
                )
            ),
            opts=child.opts("map-children"),
        )
        # Whoever starts executions (the schedule) waits for that grant too.
        self.arn = pulumi.Output.all(machine.arn, children.id).apply(lambda values: values[0])
        self.name = machine_name
        self.register_outputs({"arn": self.arn})
