"""The policy builders as plain functions (no Pulumi): every Allow names explicit actions, a "*"
resource only for actions AWS authorizes on nothing narrower, and each stage may touch only
the prefixes the key layout gives it."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from droughtwatch_contract.keys import KeyLayout
from droughtwatch_contract.stages import STAGES
from droughtwatch_infra import policies
from droughtwatch_infra.policies import WILDCARD_ONLY_ACTIONS, FunctionGrants

GRANTS = FunctionGrants(
    data_bucket_arn="arn:aws:s3:::data",
    model_bucket_arn="arn:aws:s3:::models",
    secret_arn="arn:aws:secretsmanager:eu-west-1:123456789012:secret:rds!db-1-AbCdEf",
    log_group_arn="arn:aws:logs:eu-west-1:123456789012:log-group:/aws/lambda/fn",
    partition="aws",
    region="eu-west-1",
    account_id="123456789012",
)
FUNCTIONS = {s: f"arn:aws:lambda:eu-west-1:123456789012:function:{s}" for s in STAGES.names}


def all_identity_policies() -> dict[str, dict[str, Any]]:
    found = {
        f"function {stage.name}": policies.function_policy(stage, GRANTS, KeyLayout(), "models/x/")
        for stage in STAGES
    }
    found["state machine"] = policies.state_machine_policy(FUNCTIONS, logging=True)
    found["scheduler"] = policies.scheduler_policy("arn:aws:states:::sm", "arn:aws:sqs:::q")
    found["bastion"] = policies.bastion_policy("aws", "eu-west-1", "123456789012")
    return found


@pytest.mark.parametrize("name", sorted(all_identity_policies()))
def test_policy_names_only_narrow_actions_and_resources(name: str) -> None:
    document = all_identity_policies()[name]
    assert document["Version"] == "2012-10-17"
    sids = [s["Sid"] for s in document["Statement"]]
    assert len(sids) == len(set(sids))
    for statement in document["Statement"]:
        assert statement["Effect"] == "Allow"
        assert statement["Action"] and all("*" not in a for a in statement["Action"])
        if "*" in statement["Resource"]:
            assert statement["Resource"] == ["*"]
            assert set(statement["Action"]) <= WILDCARD_ONLY_ACTIONS, statement


def test_stage_access_follows_the_key_layout_chain() -> None:
    """Each stage reads what the previous one wrote; nobody writes raw/."""
    layout = KeyLayout()
    access = {s.name: policies.stage_access(s, layout, "models/x/") for s in STAGES}
    writes = {s: [a.prefix for a in access[s] if a.write] for s in STAGES.names}
    reads = {
        s: [a.prefix for a in access[s] if not a.write and a.bucket == "data"] for s in STAGES.names
    }
    assert reads["processing"] == [layout.raw]
    for before, after in itertools.pairwise(STAGES.names):
        assert reads[after] == writes[before]
    assert writes["observe"] == [layout.reports]
    assert all(layout.raw not in w for w in writes.values())
    assert [a.prefix for a in access["inference"] if a.bucket == "model"] == ["models/x/"]


def test_function_policy_without_the_model_bucket_outside_inference() -> None:
    for stage in ("processing", "observe"):
        document = policies.function_policy(STAGES[stage], GRANTS, KeyLayout(), "models/x/")
        resources = [r for s in document["Statement"] for r in s["Resource"]]
        assert not any(r.startswith("arn:aws:s3:::models") for r in resources), stage


def test_state_machine_logging_permissions_only_when_logging() -> None:
    quiet = policies.state_machine_policy(FUNCTIONS, logging=False)
    assert [s["Action"] for s in quiet["Statement"]] == [["lambda:InvokeFunction"]]
    assert quiet["Statement"][0]["Resource"] == list(FUNCTIONS.values())


def test_tls_only_bucket_policy_only_denies() -> None:
    document = policies.tls_only_bucket_policy("arn:aws:s3:::data")
    assert {s["Effect"] for s in document["Statement"]} == {"Deny"}
    assert all(
        s["Resource"] == ["arn:aws:s3:::data", "arn:aws:s3:::data/*"] for s in document["Statement"]
    )


def test_trust_policies_name_one_service() -> None:
    trust = policies.assume_role("scheduler.amazonaws.com", source_account="123456789012")
    (statement,) = trust["Statement"]
    assert statement["Principal"] == {"Service": "scheduler.amazonaws.com"}
    assert statement["Action"] == "sts:AssumeRole"
    assert statement["Condition"] == {"StringEquals": {"aws:SourceAccount": "123456789012"}}


def test_join_keeps_plain_strings_plain() -> None:
    assert policies.join("arn:aws:s3:::data", "/", "raw/", "*") == "arn:aws:s3:::data/raw/*"
