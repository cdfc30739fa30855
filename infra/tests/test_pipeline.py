"""The pipeline component: the state machine is the contract's single-source definition with the
three function ARNs in it, logs to its own group, and its role may invoke only those functions."""

from __future__ import annotations

from typing import Any

from droughtwatch_contract import statemachine
from droughtwatch_contract.stages import STAGES
from droughtwatch_infra.naming import Namer
from droughtwatch_infra.pipeline import Pipeline, PipelineArgs
from droughtwatch_infra.policies import LOG_DELIVERY_ACTIONS

ARNS = {
    s: f"arn:aws:lambda:eu-west-1:123456789012:function:droughtwatch-dev-{s}" for s in STAGES.names
}
TIMEOUTS = {"processing": 600, "inference": 900, "observe": 300}


def build(log_level: str = "ALL") -> Any:
    def program() -> Any:
        pipeline = Pipeline(
            "pipeline",
            PipelineArgs(Namer("droughtwatch", "dev"), ARNS, TIMEOUTS, "123456789012", 30,
                         log_level),  # type: ignore[arg-type]
        )  # fmt: skip
        return pipeline.arn

    return program


def test_definition_equals_the_single_source_with_the_function_arns(infra: Any) -> None:
    stack = infra.run(build())
    machine = stack.one("aws:sfn/stateMachine:StateMachine")
    definition = machine.json("definition")
    assert definition == statemachine.definition(ARNS, TIMEOUTS)
    tasks = [s for s in definition["States"].values() if s["Type"] == "Task"]
    assert sorted(t["Parameters"]["FunctionName"] for t in tasks) == sorted(ARNS.values())
    # The stage timeouts reach the definition (Step Functions waits a little longer).
    assert definition["States"]["Observe"]["TimeoutSeconds"] == 300 + (
        statemachine.TASK_TIMEOUT_MARGIN_SECONDS
    )
    assert machine.inputs["name"] == "droughtwatch-dev-pipeline"
    assert machine.inputs["type"] == "STANDARD"
    assert (
        stack.value
        == "arn:aws:states:eu-west-1:123456789012:stateMachine:droughtwatch-dev-pipeline"
    )


def test_role_may_invoke_only_the_three_functions(infra: Any) -> None:
    stack = infra.run(build())
    statements = stack.one("aws:iam/rolePolicy:RolePolicy").json("policy")["Statement"]
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
    statements = stack.one("aws:iam/rolePolicy:RolePolicy").json("policy")["Statement"]
    actions = {a for s in statements for a in s["Action"]}
    assert actions == {"lambda:InvokeFunction"}
    assert not actions & set(LOG_DELIVERY_ACTIONS)
