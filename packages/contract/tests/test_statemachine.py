"""The state machine definition's structure, checked without AWS."""

from __future__ import annotations

import pytest
from droughtwatch_contract.stages import STAGES, Stage
from droughtwatch_contract.statemachine import (
    LAMBDA_SERVICE_ERRORS,
    SUCCESS_PATH,
    choice_name,
    definition,
    fail_name,
)

ARNS = {
    stage: f"arn:aws:lambda:eu-west-1:123456789012:function:dw-{stage}" for stage in STAGES.names
}


def _targets(state: dict) -> list[str]:
    found = [state[k] for k in ("Next", "Default") if k in state]
    found += [c["Next"] for c in state.get("Choices", [])]
    found += [c["Next"] for c in state.get("Catch", [])]
    return found


def test_every_next_exists_and_every_state_is_reachable() -> None:
    asl = definition(ARNS)
    states = asl["States"]
    for name, state in states.items():
        for target in _targets(state):
            assert target in states, f"{name} points at missing state {target}"
    seen, todo = set(), [asl["StartAt"]]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(_targets(states[name]))
    assert seen == set(states)


def test_success_path_is_task_then_choice_for_each_stage() -> None:
    asl = definition(ARNS)
    assert SUCCESS_PATH == [
        "Processing",
        "Processing succeeded?",
        "Inference",
        "Inference succeeded?",
        "Observe",
        "Observe succeeded?",
        "Done",
    ]
    name = asl["StartAt"]
    walked = [name]
    while asl["States"][name]["Type"] != "Succeed":
        state = asl["States"][name]
        name = state["Choices"][0]["Next"] if state["Type"] == "Choice" else state["Next"]
        walked.append(name)
    assert walked == SUCCESS_PATH


@pytest.mark.parametrize("stage", STAGES, ids=STAGES.names)
def test_each_choice_has_a_failure_branch_to_its_own_fail_state(stage: Stage) -> None:
    states = definition(ARNS)["States"]
    choice = states[choice_name(stage)]
    assert choice["Type"] == "Choice"
    assert choice["Default"] == fail_name(stage)
    fail = states[fail_name(stage)]
    assert fail == {
        **fail,
        "Type": "Fail",
        "ErrorPath": "$.body.error",
        "CausePath": "$.body.cause",
    }
    rule = choice["Choices"][0]["And"]
    assert {"Variable": "$.statusCode", "NumericEquals": 200} in rule


@pytest.mark.parametrize("stage", STAGES, ids=STAGES.names)
def test_each_task_retries_service_errors_catches_the_rest_and_has_a_timeout(
    stage: Stage,
) -> None:
    asl = definition(ARNS, timeouts={stage.name: 300})
    task = asl["States"][stage.title]
    assert task["Parameters"]["FunctionName"] == ARNS[stage.name]
    (retry,) = task["Retry"]
    assert retry["ErrorEquals"] == LAMBDA_SERVICE_ERRORS
    assert retry["BackoffRate"] > 1 and retry["MaxAttempts"] >= 2
    (catch,) = task["Catch"]
    assert catch["ErrorEquals"] == ["States.ALL"]
    caught = asl["States"][catch["Next"]]
    assert caught["Next"] == fail_name(stage)
    assert task["TimeoutSeconds"] == 360


def test_missing_function_arn_is_an_error() -> None:
    with pytest.raises(ValueError, match="observe"):
        definition({k: v for k, v in ARNS.items() if k != "observe"})


def test_arns_are_placed_not_formatted() -> None:
    class Opaque:
        """Stands for a Pulumi Output: the builder must place it untouched."""

    arns = {stage: Opaque() for stage in STAGES.names}
    asl = definition(arns)
    placed = [
        asl["States"][t]["Parameters"]["FunctionName"]
        for t in ("Processing", "Inference", "Observe")
    ]
    assert [id(a) for a in placed] == [id(arns[s]) for s in STAGES.names]
