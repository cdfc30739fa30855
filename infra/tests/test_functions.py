"""The functions component: a function per step of the workflow (Plan, the three stages, the day
step) from the one image, each with its own handler, sizing, DROUGHTWATCH_* environment, VPC
placement, log group, and a role granted only the S3 prefixes, the database user (IAM
authentication, no secret) and the log group that step uses."""

from __future__ import annotations

import os
from typing import Any

import pytest
from droughtwatch_contract.keys import KeyLayout
from droughtwatch_contract.settings import RDS_CA_BUNDLE
from droughtwatch_contract.stages import WORKFLOW
from droughtwatch_infra.config import FunctionsConfig, Retention
from droughtwatch_infra.functions import (
    AccountRef,
    BucketRef,
    DatabaseRef,
    Functions,
    FunctionsArgs,
)
from droughtwatch_infra.naming import Namer

IMAGE = (
    "123456789012.dkr.ecr.eu-west-1.amazonaws.com/droughtwatch-dev-inference@sha256:" + "cd" * 32
)
DATA = "arn:aws:s3:::droughtwatch-dev-data-123456789012"
MODELS = "arn:aws:s3:::droughtwatch-dev-models-123456789012"
HOST = "droughtwatch-dev-db.c0ffee.eu-west-1.rds.amazonaws.com"
RESOURCE_ID = "db-ABCDEFGHIJKLMNOPQRSTUVWXY0"
APP_USER_ARN = f"arn:aws:rds-db:eu-west-1:123456789012:dbuser:{RESOURCE_ID}/droughtwatch_app"


def build(functions: dict[str, Any] | None = None) -> Any:
    return lambda: Functions(
        "functions",
        FunctionsArgs(
            namer=Namer("droughtwatch", "dev"),
            image_uri=IMAGE,
            functions=FunctionsConfig.model_validate(functions or {}),
            log_retention_days=14,
            layout=KeyLayout(),
            model_prefix="models/v7/",
            drift_threshold=0.3,
            accuracy_margin=0.05,
            min_daily_images=500,
            data_bucket=BucketRef("droughtwatch-dev-data-123456789012", DATA),
            model_bucket=BucketRef("droughtwatch-dev-models-123456789012", MODELS),
            database=DatabaseRef(HOST, 5432, "droughtwatch", RESOURCE_ID),
            subnet_ids=["subnet-a", "subnet-b"],
            security_group_id="sg-lambda",
            account=AccountRef(partition="aws", region="eu-west-1", account_id="123456789012"),
            retention=Retention(
                processed_days=7,
                report_days=30,
                report_infrequent_access_days=None,
                noncurrent_version_days=7,
            ),
        ),
    )


@pytest.fixture(scope="module")
def stack(infra: Any) -> Any:
    return infra.run(build({"inference": {"memory_mb": 5120}}))


def function(stack: Any, stage: str) -> dict[str, Any]:
    return stack.one("aws:lambda/function:Function", f"functions-{stage}").inputs


def policy(stack: Any, stage: str) -> dict[str, dict[str, Any]]:
    document = stack.one("aws:iam/rolePolicy:RolePolicy", f"functions-{stage}").json("policy")
    return {s["Sid"]: s for s in document["Statement"]}


@pytest.mark.parametrize("stage", WORKFLOW.names)
def test_each_function_runs_its_handler_from_the_pinned_image(stack: Any, stage: str) -> None:
    fn = function(stack, stage)
    assert fn["name"] == f"droughtwatch-dev-{stage}"
    assert fn["packageType"] == "Image"
    assert fn["imageUri"] == IMAGE
    assert fn["imageConfig"] == {"commands": [WORKFLOW[stage].handler]}
    assert fn["architectures"] == ["x86_64"]
    assert fn["role"] == f"arn:aws:iam::123456789012:role/droughtwatch-dev-{stage}-function"
    assert fn["vpcConfig"] == {
        "subnetIds": ["subnet-a", "subnet-b"],
        "securityGroupIds": ["sg-lambda"],
    }
    log_group = stack.one("aws:cloudwatch/logGroup:LogGroup", f"functions-{stage}").inputs
    assert log_group == {"name": f"/aws/lambda/droughtwatch-dev-{stage}", "retentionInDays": 14}
    assert fn["loggingConfig"]["logGroup"] == log_group["name"]


def test_sizing_comes_from_config_with_per_stage_defaults(stack: Any) -> None:
    sizes = {
        s: (function(stack, s)["memorySize"], function(stack, s)["timeout"]) for s in WORKFLOW.names
    }
    assert sizes == {
        "plan": (512, 900),
        "processing": (2048, 900),
        "inference": (5120, 900),
        "observe": (2048, 900),
        "day": (2048, 900),
    }


@pytest.mark.parametrize("stage", WORKFLOW.names)
def test_environment_builds_the_stage_settings(
    stack: Any, stage: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    variables = function(stack, stage)["environment"]["variables"]
    assert all(name.startswith("DROUGHTWATCH_") for name in variables)
    for name in [n for n in os.environ if n.startswith("DROUGHTWATCH_")]:
        monkeypatch.delenv(name)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    settings = WORKFLOW[stage].settings()
    assert settings.data_bucket == "droughtwatch-dev-data-123456789012"
    assert settings.database_host == HOST
    assert settings.database_port == 5432
    assert settings.database_dsn is None
    # droughtwatch_app with an IAM token, over TLS checked against the image's RDS CA bundle
    assert (settings.database_auth, settings.database_user) == ("iam", "droughtwatch_app")
    assert settings.database_secret_arn is None
    assert not any("SECRET" in name for name in variables)
    assert settings.database_sslmode == "verify-full"
    assert settings.database_sslrootcert == RDS_CA_BUNDLE
    assert KeyLayout.from_settings(settings) == KeyLayout()
    if stage == "inference":
        assert (settings.model_bucket, settings.model_prefix) == (
            "droughtwatch-dev-models-123456789012",
            "models/v7/",
        )
    if stage in ("observe", "day"):  # the day's signals are Observe's, on the day's pool
        assert settings.drift_threshold == 0.3
        assert (settings.accuracy_margin, settings.min_daily_images) == (0.05, 500)
    # each stage that writes an expiring product records its expiry from the lifecycle's days
    retention = {
        "processing": ("DROUGHTWATCH_PROCESSED_RETENTION_DAYS", "processed_retention_days", 7),
        "observe": ("DROUGHTWATCH_REPORT_RETENTION_DAYS", "report_retention_days", 30),
        "day": ("DROUGHTWATCH_REPORT_RETENTION_DAYS", "report_retention_days", 30),
    }
    expected = retention.get(stage)
    assert {n for n in variables if n.endswith("_RETENTION_DAYS")} == (
        {expected[0]} if expected else set()
    )
    if expected:
        assert getattr(settings, expected[1]) == expected[2]


def _s3_grants(statements: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {
        sid: (s["Action"], s["Resource"], s.get("Condition"))
        for sid, s in statements.items()
        if any(a.startswith("s3:") for a in s["Action"])
    }


def test_processing_reads_raw_and_writes_processed_only(stack: Any) -> None:
    assert _s3_grants(policy(stack, "processing")) == {
        "ListDataBucket": (["s3:ListBucket"], [DATA], None),
        "ReadDataObjects": (["s3:GetObject"], [f"{DATA}/raw/*"], None),
        "WriteDataObjects": (
            ["s3:AbortMultipartUpload", "s3:PutObject"], [f"{DATA}/processed/*"], None,
        ),
    }  # fmt: skip


def test_inference_reads_processed_and_the_model_and_writes_predictions(stack: Any) -> None:
    assert _s3_grants(policy(stack, "inference")) == {
        "ListDataBucket": (["s3:ListBucket"], [DATA], None),
        "ReadDataObjects": (["s3:GetObject"], [f"{DATA}/processed/*"], None),
        "WriteDataObjects": (
            ["s3:AbortMultipartUpload", "s3:PutObject"], [f"{DATA}/predictions/*"], None,
        ),
        "ListModelBucket": (["s3:ListBucket"], [MODELS], None),
        "ReadModelObjects": (["s3:GetObject"], [f"{MODELS}/models/v7/*"], None),
    }  # fmt: skip


def test_plan_reads_the_label_files_and_no_raw_object(stack: Any) -> None:
    # labels/: the run's first step ingests the late label files there
    assert _s3_grants(policy(stack, "plan")) == {
        "ListDataBucket": (["s3:ListBucket"], [DATA], None),
        "ReadDataObjects": (["s3:GetObject"], [f"{DATA}/labels/*"], None),
    }  # fmt: skip


def test_the_day_step_reads_predictions_and_writes_the_day_reports(stack: Any) -> None:
    assert _s3_grants(policy(stack, "day")) == {
        "ListDataBucket": (["s3:ListBucket"], [DATA], None),
        "ReadDataObjects": (["s3:GetObject"], [f"{DATA}/predictions/*"], None),
        "WriteDataObjects": (
            ["s3:AbortMultipartUpload", "s3:PutObject"], [f"{DATA}/daily-reports/*"], None,
        ),
    }  # fmt: skip


def test_observe_reads_predictions_and_writes_the_file_reports(stack: Any) -> None:
    assert _s3_grants(policy(stack, "observe")) == {
        "ListDataBucket": (["s3:ListBucket"], [DATA], None),
        "ReadDataObjects": (["s3:GetObject"], [f"{DATA}/predictions/*"], None),
        "WriteDataObjects": (
            ["s3:AbortMultipartUpload", "s3:PutObject"], [f"{DATA}/reports/*"], None,
        ),
    }  # fmt: skip


@pytest.mark.parametrize("stage", WORKFLOW.names)
def test_each_role_connects_as_the_app_user_reads_no_secret_and_writes_only_its_logs(
    stack: Any, stage: str
) -> None:
    statements = policy(stack, stage)
    assert statements["ConnectAsAppUser"]["Action"] == ["rds-db:connect"]
    assert statements["ConnectAsAppUser"]["Resource"] == [APP_USER_ARN]
    actions = {a for s in statements.values() for a in s["Action"]}
    assert not any(a.startswith("secretsmanager:") for a in actions)
    log_group = (
        f"arn:aws:logs:eu-west-1:123456789012:log-group:/aws/lambda/droughtwatch-dev-{stage}"
    )
    assert statements["WriteOwnLogs"]["Resource"] == [f"{log_group}:*"]
    assert statements["ManageNetworkInterfaces"]["Resource"] == [
        "arn:aws:ec2:eu-west-1:123456789012:*/*"
    ]
    role = stack.one("aws:iam/role:Role", f"functions-{stage}").json("assumeRolePolicy")
    assert role["Statement"][0]["Principal"] == {"Service": "lambda.amazonaws.com"}
