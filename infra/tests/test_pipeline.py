"""The pipeline component: the state machine is the contract's single-source definition with the
steps' function ARNs in it, logs to its own group, and its role may invoke only those functions
and start, describe and stop only its own Map's children."""

from __future__ import annotations

from typing import Any

from droughtwatch_contract import statemachine
from droughtwatch_contract.stages import WORKFLOW
from droughtwatch_infra.naming import Namer
from droughtwatch_infra.pipeline import Pipeline, PipelineArgs
from droughtwatch_infra.policies import LOG_DELIVERY_ACTIONS

ARNS = {
    s: f"arn:aws:lambda:eu-west-1:123456789012:function:droughtwatch-dev-{s}"
    for s in WORKFLOW.names
}
TIMEOUTS = {"plan": 120, "processing": 600, "inference": 900, "observe": 300, "day": 900}
MACHINE = "arn:aws:states:eu-west-1:123456789012:stateMachine:droughtwatch-dev-pipeline"


def build(log_level: str = "ALL", **options: Any) -> Any:
    def program() -> Any:
        pipeline = Pipeline(
            "pipeline",
            PipelineArgs(Namer("droughtwatch", "dev"), ARNS, TIMEOUTS, "123456789012", 30,
                         log_level, **options),  # type: ignore[arg-type]
        )  # fmt: skip
        return pipeline.arn

    return program


def _tasks(definition: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The Task states of the parent and of the Map's child workflow."""
    child = definition["States"][statemachine.ITEMS]["ItemProcessor"]["States"]
    return {
        name: state
        for name, state in {**definition["States"], **child}.items()
        if state["Type"] == "Task"
    }


def test_definition_equals_the_single_source_with_the_function_arns(infra: Any) -> None:
    stack = infra.run(build())
    machine = stack.one("aws:sfn/stateMachine:StateMachine")
    definition = machine.json("definition")
    assert definition == statemachine.definition(ARNS, TIMEOUTS)
    tasks = _tasks(definition)
    assert sorted(t["Parameters"]["FunctionName"] for t in tasks.values()) == sorted(ARNS.values())
    # The stage timeouts reach the definition (Step Functions waits a little longer).
    assert tasks["Observe"]["TimeoutSeconds"] == 300 + statemachine.TASK_TIMEOUT_MARGIN_SECONDS
    assert tasks["Plan"]["TimeoutSeconds"] == 120 + statemachine.TASK_TIMEOUT_MARGIN_SECONDS
    assert machine.inputs["name"] == "droughtwatch-dev-pipeline"
    assert machine.inputs["type"] == "STANDARD"
    assert stack.value == MACHINE


def test_the_maps_concurrency_and_tolerance_come_from_the_stack(infra: Any) -> None:
    stack = infra.run(build(max_concurrency=25, tolerated_failure_percentage=5.0))
    items = stack.one("aws:sfn/stateMachine:StateMachine").json("definition")["States"]["Items"]
    assert (items["MaxConcurrency"], items["ToleratedFailurePercentage"]) == (25, 5.0)
    definition = stack.one("aws:sfn/stateMachine:StateMachine").json("definition")
    assert definition["States"]["Plan"]["Parameters"]["Payload"]["body"]["concurrency"] == 25


def _invoke_policy(stack: Any) -> list[dict[str, Any]]:
    policy = stack.one("aws:iam/rolePolicy:RolePolicy", "pipeline-state-machine")
    return policy.json("policy")["Statement"]


def test_role_may_start_describe_and_stop_only_its_own_maps_children(infra: Any) -> None:
    stack = infra.run(build())
    policy = stack.one("aws:iam/rolePolicy:RolePolicy", "pipeline-map-children")
    statements = {s["Sid"]: s for s in policy.json("policy")["Statement"]}
    assert statements == {
        "StartMapChildren": {
            "Sid": "StartMapChildren",
            "Effect": "Allow",
            "Action": ["states:StartExecution"],
            "Resource": [MACHINE],
        },
        "FollowMapChildren": {
            "Sid": "FollowMapChildren",
            "Effect": "Allow",
            "Action": ["states:DescribeExecution", "states:StopExecution"],
            # the children: executions of <machine>/<map run label>, no other execution
            "Resource": [
                "arn:aws:states:eu-west-1:123456789012:execution:droughtwatch-dev-pipeline/*"
            ],
        },
    }
    invoke = stack.one("aws:iam/rolePolicy:RolePolicy", "pipeline-state-machine")
    assert policy.inputs["role"] == invoke.inputs["role"]  # the state machine's one role


def test_role_may_invoke_only_the_workflows_functions(infra: Any) -> None:
    stack = infra.run(build())
    statements = _invoke_policy(stack)
    invoke = [s for s in statements if "lambda:InvokeFunction" in s["Action"]]
    assert len(invoke) == 1
    assert invoke[0]["Action"] == ["lambda:InvokeFunction"]
    assert sorted(invoke[0]["Resource"]) == sorted(ARNS.values())
    trust = stack.one("aws:iam/role:Role").json("assumeRolePolicy")["Statement"][0]
    assert trust["Principal"] == {"Service": "states.amazonaws.com"}
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": "123456789012"}}


def test_executions_log_to_their_own_group(infra: Any) -> None:
    stack = infra.run(build("ALL"))
    group = stack.one("aws:cloudwatch/logGroup:LogGroup").inputs
    assert group == {
        "name": "/aws/vendedlogs/states/droughtwatch-dev-pipeline",
        "retentionInDays": 30,
    }
    logging = stack.one("aws:sfn/stateMachine:StateMachine").inputs["loggingConfiguration"]
    assert logging["level"] == "ALL"
    assert logging["includeExecutionData"] is True
    assert logging["logDestination"] == (
        "arn:aws:logs:eu-west-1:123456789012:log-group:"
        "/aws/vendedlogs/states/droughtwatch-dev-pipeline:*"
    )


def test_logging_off_drops_the_log_group_and_its_permissions(infra: Any) -> None:
    stack = infra.run(build("OFF"))
    assert stack.of_type("aws:cloudwatch/logGroup:LogGroup") == []
    statements = _invoke_policy(stack)
    actions = {a for s in statements for a in s["Action"]}
    assert actions == {"lambda:InvokeFunction"}
    assert not actions & set(LOG_DELIVERY_ACTIONS)
