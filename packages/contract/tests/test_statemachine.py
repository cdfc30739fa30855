"""The state machine definition's structure, checked without AWS."""

from __future__ import annotations

import pytest
from droughtwatch_contract.stages import STAGES, WORKFLOW, Stage, Step
from droughtwatch_contract.statemachine import (
    ANOTHER_ROUND,
    IDLE_PATH,
    ITEM_PATH,
    ITEMS,
    LAMBDA_SERVICE_ERRORS,
    SUCCESS_PATH,
    choice_name,
    definition,
    exceeds_tolerance,
    fail_name,
    success_path,
)

ARNS = {
    step: f"arn:aws:lambda:eu-west-1:123456789012:function:dw-{step}" for step in WORKFLOW.names
}


def _targets(state: dict) -> list[str]:
    found = [state[k] for k in ("Next", "Default") if k in state]
    found += [c["Next"] for c in state.get("Choices", [])]
    found += [c["Next"] for c in state.get("Catch", [])]
    return found


def _child(asl: dict) -> dict:
    return asl["States"][ITEMS]["ItemProcessor"]


def _all_states(asl: dict) -> dict:
    return {**asl["States"], **_child(asl)["States"]}


@pytest.mark.parametrize("scope", ["parent", "child"])
def test_every_next_exists_and_every_state_is_reachable(scope: str) -> None:
    asl = definition(ARNS)
    machine = asl if scope == "parent" else _child(asl)
    states = machine["States"]
    for name, state in states.items():
        for target in _targets(state):
            assert target in states, f"{name} points at missing state {target}"
    seen, todo = set(), [machine["StartAt"]]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(_targets(states[name]))
    assert seen == set(states)


def test_state_names_are_unique_across_the_parent_and_the_child() -> None:
    asl = definition(ARNS)
    parent, child = set(asl["States"]), set(_child(asl)["States"])
    assert not parent & child


def _walk(machine: dict, *, rounds: int = 1, max_rounds: int = 10) -> list[str]:
    """The states a run passes when every step succeeds and Plan finds items to do in the first
    ``rounds`` rounds."""
    name = machine["StartAt"]
    walked = [name]
    planned = 0
    while machine["States"][name]["Type"] != "Succeed":
        state = machine["States"][name]
        if name == "Items to do?":
            planned += 1
            name = state["Choices"][0]["Next"] if planned <= rounds else state["Default"]
        elif name == ANOTHER_ROUND:
            name = state["Choices"][0]["Next"] if planned < max_rounds else state["Default"]
        elif state["Type"] == "Choice":
            name = state["Choices"][0]["Next"]
        else:
            name = state["Next"]
        walked.append(name)
    return walked


def test_success_paths_plan_then_fan_out_until_nothing_waits_then_pool_the_days() -> None:
    asl = definition(ARNS)
    assert SUCCESS_PATH == [
        "Start",
        "Plan",
        "Plan succeeded?",
        "Items to do?",
        "Items",
        "Another round?",
        "Plan",  # the next round finds nothing waiting
        "Plan succeeded?",
        "Items to do?",
        "Pool days",
        "Pool days succeeded?",
        "Done",
    ]
    assert _walk(asl) == SUCCESS_PATH
    assert _walk(asl, rounds=0) == IDLE_PATH == [
        "Start", "Plan", "Plan succeeded?", "Items to do?", "Pool days", "Pool days succeeded?",
        "Done",
    ]  # fmt: skip
    assert _walk(asl, rounds=2) == success_path(rounds=2)
    assert success_path(rounds=2).count("Items") == 2


def test_the_rounds_are_bounded_even_if_work_never_ends() -> None:
    walked = _walk(definition(ARNS, max_rounds=3), rounds=100, max_rounds=3)
    assert walked.count("Items") == 3 and walked[-3:] == [
        "Pool days",
        "Pool days succeeded?",
        "Done",
    ]


def test_each_child_is_task_then_choice_for_each_stage() -> None:
    assert ITEM_PATH == [
        "Processing",
        "Processing succeeded?",
        "Inference",
        "Inference succeeded?",
        "Observe",
        "Observe succeeded?",
        "Item done",
    ]
    assert _walk(_child(definition(ARNS))) == ITEM_PATH


def test_the_map_is_distributed_bounded_and_keeps_its_output_small() -> None:
    items = definition(ARNS, max_concurrency=7, tolerated_failure_percentage=5)["States"][ITEMS]
    assert items["Type"] == "Map"
    assert items["ItemProcessor"]["ProcessorConfig"] == {
        "Mode": "DISTRIBUTED",
        "ExecutionType": "STANDARD",
    }
    assert items["ItemsPath"] == "$.body.plan.items"
    assert "ItemBatcher" not in items and "ItemReader" not in items  # moto rejects/needs S3
    assert items["MaxConcurrency"] == 7
    # a float literal: moto's parser takes no integer here
    assert items["ToleratedFailurePercentage"] == 5.0
    assert isinstance(items["ToleratedFailurePercentage"], float)
    assert items["ResultPath"] is None  # the children's results never reach the state
    assert _child({"States": {ITEMS: items}})["States"]["Item done"]["OutputPath"] is None
    # a child carries the parent's run id and exactly its item
    selector = items["ItemSelector"]["body"]
    assert selector["run_id.$"] == "$$.Execution.Name"  # the parent's, where the Map runs
    assert selector["item.$"] == "$$.Map.Item.Value"
    # uncaught: past its tolerance the Map fails the execution with its own error
    assert "Catch" not in items


def test_plan_learns_the_concurrency_and_the_rounds_are_bounded() -> None:
    states = definition(ARNS, max_concurrency=3, max_rounds=4)["States"]
    payload = states["Plan"]["Parameters"]["Payload"]["body"]
    assert payload["concurrency"] == 3
    assert payload["run_id.$"] == "$$.Execution.Name"
    assert payload["rounds_done.$"] == "$.body.plan.round"
    assert states["Start"]["Result"] == {"body": {"plan": {"round": 0}}}
    again = states[ANOTHER_ROUND]["Choices"][0]
    assert again == {"Variable": "$.body.plan.round", "NumericLessThan": 4, "Next": "Plan"}


@pytest.mark.parametrize(
    "options",
    [{"max_concurrency": 0}, {"tolerated_failure_percentage": 101}, {"max_rounds": 0}],
)
def test_out_of_range_options_are_refused(options: dict) -> None:
    with pytest.raises(ValueError, match=next(iter(options))):
        definition(ARNS, **options)


@pytest.mark.parametrize("step", WORKFLOW, ids=WORKFLOW.names)
def test_each_choice_has_a_failure_branch_to_its_own_fail_state(step: Step) -> None:
    states = _all_states(definition(ARNS))
    choice = states[choice_name(step)]
    assert choice["Type"] == "Choice"
    assert choice["Default"] == fail_name(step)
    fail = states[fail_name(step)]
    assert fail == {
        **fail,
        "Type": "Fail",
        "ErrorPath": "$.body.error",
        "CausePath": "$.body.cause",
    }
    rule = choice["Choices"][0]["And"]
    assert {"Variable": "$.statusCode", "NumericEquals": 200} in rule


@pytest.mark.parametrize("step", WORKFLOW, ids=WORKFLOW.names)
def test_each_task_retries_service_errors_catches_the_rest_and_has_a_timeout(
    step: Step,
) -> None:
    asl = definition(ARNS, timeouts={step.name: 300})
    states = _all_states(asl)
    task = states[step.title]
    assert task["Parameters"]["FunctionName"] == ARNS[step.name]
    (retry,) = task["Retry"]
    assert retry["ErrorEquals"] == LAMBDA_SERVICE_ERRORS
    assert retry["BackoffRate"] > 1 and retry["MaxAttempts"] >= 2
    (catch,) = task["Catch"]
    assert catch["ErrorEquals"] == ["States.ALL"]
    caught = states[catch["Next"]]
    assert caught["Next"] == fail_name(step)
    assert task["TimeoutSeconds"] == 360


@pytest.mark.parametrize("stage", STAGES, ids=STAGES.names)
def test_every_stage_runs_inside_the_map_on_its_items_body(stage: Stage) -> None:
    asl = definition(ARNS)
    assert stage.title not in asl["States"]
    task = _child(asl)["States"][stage.title]
    assert task["Parameters"]["Payload"] == {"body.$": "$.body"}


def test_missing_function_arn_is_an_error() -> None:
    for step in ("observe", "plan", "day"):
        with pytest.raises(ValueError, match=step):
            definition({k: v for k, v in ARNS.items() if k != step})


def test_arns_are_placed_not_formatted() -> None:
    class Opaque:
        """Stands for a Pulumi Output: the builder must place it untouched."""

    arns = {step: Opaque() for step in WORKFLOW.names}
    states = _all_states(definition(arns))
    placed = [states[step.title]["Parameters"]["FunctionName"] for step in WORKFLOW]
    assert [id(a) for a in placed] == [id(arns[s]) for s in WORKFLOW.names]


@pytest.mark.parametrize(
    ("failed", "total", "tolerated", "fails"),
    [
        (0, 10, 0.0, False),
        (1, 10, 0.0, True),  # 0 tolerates no failure at all
        (1, 10, 10.0, False),  # 10 % failed: at the threshold, not past it
        (2, 10, 10.0, True),
        (10, 10, 100.0, False),  # 100 tolerates every failure
        (0, 0, 0.0, False),  # an empty map run fails nothing
    ],
)
def test_the_tolerance_fails_a_map_run_only_past_its_percentage(
    failed: int, total: int, tolerated: float, fails: bool
) -> None:
    assert exceeds_tolerance(failed, total, tolerated) is fails
