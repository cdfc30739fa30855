"""Adding a stage is an entry in the stage registry: with a fourth stage in it, the functions
config, the functions (handler, sizing, environment, S3 grants), the state machine (in each
item's child workflow) and the role that invokes the functions all have it, with nothing else
edited. (The service's side, the ledger
and the state machine run:
services/inference/tests/test_new_stage_in_ledger_and_state_machine.py.)"""

from __future__ import annotations

from typing import Any

from droughtwatch_contract import statemachine
from droughtwatch_contract.keys import KeyLayout
from droughtwatch_contract.settings import CommonSettings
from droughtwatch_contract.stages import STAGES, WORKFLOW, Stage
from droughtwatch_infra.config import functions_config
from droughtwatch_infra.functions import (
    AccountRef,
    BucketRef,
    DatabaseRef,
    Functions,
    FunctionsArgs,
)
from droughtwatch_infra.naming import Namer
from droughtwatch_infra.pipeline import Pipeline, PipelineArgs


class ReviewSettings(CommonSettings):
    sample_share: float = 0.1


REVIEW = Stage(
    name="review",
    title="Review",
    handler="droughtwatch_inference.handlers.review.handler",
    settings=ReviewSettings,
    ledger_columns=frozenset({"review_key"}),
    completed_at="reviewed_at",
    reads=("predictions",),
    writes=("reports",),
    memory_mb=1024,
)
FOUR = STAGES.extended(REVIEW)
STEPS = WORKFLOW.with_stages(FOUR)
DATA = "arn:aws:s3:::droughtwatch-dev-data-123456789012"


def build() -> Any:
    def program() -> Any:
        namer = Namer("droughtwatch", "dev")
        functions = Functions(
            "functions",
            FunctionsArgs(
                namer=namer,
                image_uri="123456789012.dkr.ecr.eu-west-1.amazonaws.com/x@sha256:" + "ab" * 32,
                functions=functions_config(STEPS).model_validate({}),
                log_retention_days=7,
                layout=KeyLayout(),
                model_prefix="models/baseline/",
                drift_threshold=0.25,
                accuracy_margin=0.1,
                min_daily_images=200,
                data_bucket=BucketRef("droughtwatch-dev-data-123456789012", DATA),
                model_bucket=BucketRef("m", "arn:aws:s3:::m"),
                database=DatabaseRef("db.example", 5432, "droughtwatch", "db-EXAMPLE"),
                subnet_ids=["subnet-a"],
                security_group_id="sg-lambda",
                account=AccountRef(partition="aws", region="eu-west-1", account_id="123456789012"),
                workflow=STEPS,
            ),
        )
        Pipeline(
            "pipeline",
            PipelineArgs(namer, functions.arns, {}, "123456789012", 7, "OFF", workflow=STEPS),
        )
        return functions.arns

    return program


def test_a_fourth_stage_in_the_registry_reaches_every_part_of_the_stack(infra: Any) -> None:
    stack = infra.run(build())
    arns = stack.value

    # its function: the registry's handler and memory, its settings' environment, its grants
    assert list(arns) == ["plan", "processing", "inference", "observe", "review", "day"]
    function = stack.one("aws:lambda/function:Function", "functions-review").inputs
    assert function["name"] == "droughtwatch-dev-review"
    assert function["imageConfig"] == {"commands": [REVIEW.handler]}
    assert function["memorySize"] == 1024
    variables = function["environment"]["variables"]
    assert variables["DROUGHTWATCH_PREDICTIONS_PREFIX"] == "predictions/"
    assert "DROUGHTWATCH_MODEL_BUCKET" not in variables  # not a field of ReviewSettings
    policy = stack.one("aws:iam/rolePolicy:RolePolicy", "functions-review").json("policy")
    grants = {s["Sid"]: s["Resource"] for s in policy["Statement"]}
    assert grants["ReadDataObjects"] == [f"{DATA}/predictions/*"]
    assert grants["WriteDataObjects"] == [f"{DATA}/reports/*"]

    # the state machine runs it after Observe, and its role may invoke it
    machine = stack.one("aws:sfn/stateMachine:StateMachine")
    definition = machine.json("definition")
    assert definition == statemachine.definition(arns, {}, workflow=STEPS)
    child = definition["States"][statemachine.ITEMS]["ItemProcessor"]["States"]
    assert child["Observe succeeded?"]["Choices"][0]["Next"] == "Review"
    assert child["Review"]["Parameters"]["FunctionName"] == arns["review"]
    assert statemachine.item_path(FOUR)[-3:] == ["Review", "Review succeeded?", "Item done"]
    invoke = stack.one("aws:iam/rolePolicy:RolePolicy", "pipeline-state-machine").json("policy")
    assert arns["review"] in invoke["Statement"][0]["Resource"]


def test_the_functions_config_has_the_fourth_stage_with_its_default_memory() -> None:
    config = functions_config(STEPS).model_validate({"review": {"timeout_seconds": 300}})
    assert tuple(type(config).model_fields) == STEPS.names
    assert config.for_stage("review").memory_mb == 1024
    assert config.timeouts == {
        "plan": 900,
        "processing": 900,
        "inference": 900,
        "observe": 900,
        "review": 300,
        "day": 900,
    }
