"""The policy builders as plain functions (no Pulumi): every Allow names explicit actions, a "*"
resource only for actions AWS authorizes on nothing narrower, and each stage may touch only
the prefixes the key layout gives it."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from droughtwatch_contract.keys import KeyLayout
from droughtwatch_contract.stages import STAGES, WORKFLOW
from droughtwatch_infra import policies
from droughtwatch_infra.policies import WILDCARD_ONLY_ACTIONS, FunctionGrants, LambdaGrants

ACCOUNT = "123456789012"
APP_USER_ARN = f"arn:aws:rds-db:eu-west-1:{ACCOUNT}:dbuser:db-ABCDEFGHIJKL/droughtwatch_app"
MASTER_SECRET = f"arn:aws:secretsmanager:eu-west-1:{ACCOUNT}:secret:rds!db-1-AbCdEf"
GRAFANA_SECRET = f"arn:aws:secretsmanager:eu-west-1:{ACCOUNT}:secret:grafana-AbCdEf"
RUNTIME = LambdaGrants(
    log_group_arn=f"arn:aws:logs:eu-west-1:{ACCOUNT}:log-group:/aws/lambda/fn",
    partition="aws",
    region="eu-west-1",
    account_id=ACCOUNT,
)
GRANTS = FunctionGrants(
    **vars(RUNTIME),
    data_bucket_arn="arn:aws:s3:::data",
    model_bucket_arn="arn:aws:s3:::models",
    database_user_arn=APP_USER_ARN,
)
FUNCTIONS = {s: f"arn:aws:lambda:eu-west-1:{ACCOUNT}:function:{s}" for s in WORKFLOW.names}
MACHINE = f"arn:aws:states:eu-west-1:{ACCOUNT}:stateMachine:dw-pipeline"
INSTANCE = "i-0123456789abcdef0"


def all_identity_policies() -> dict[str, dict[str, Any]]:
    found = {
        f"function {stage.name}": policies.function_policy(stage, GRANTS, KeyLayout(), "models/x/")
        for stage in WORKFLOW
    }
    found["state machine"] = policies.state_machine_policy(FUNCTIONS, logging=True)
    found["map children"] = policies.map_run_policy(
        MACHINE, policies.children_executions_arn(MACHINE)
    )
    found["scheduler"] = policies.scheduler_policy("arn:aws:states:::sm", "arn:aws:sqs:::q")
    found["bastion"] = policies.bastion_policy("aws", "eu-west-1", ACCOUNT)
    found["migrate"] = policies.migrate_policy(RUNTIME, [MASTER_SECRET, GRAFANA_SECRET])
    found["operator"] = policies.operator_policy("aws", "eu-west-1", ACCOUNT, INSTANCE,
                                                 GRAFANA_SECRET)  # fmt: skip
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
    day = policies.stage_access(WORKFLOW.day, layout, "models/x/")
    assert [a.prefix for a in day if a.write] == [layout.daily_reports]
    assert all(layout.raw not in w for w in writes.values())
    assert [a.prefix for a in access["inference"] if a.bucket == "model"] == ["models/x/"]


def test_only_the_ingesting_step_reads_label_files_and_no_step_writes_them() -> None:
    """Late labels (labels/) are read where they are ingested (Plan's first work), and
    nowhere else: the day step reads the labels table, not the files."""
    layout = KeyLayout()
    for stage in WORKFLOW:
        document = policies.function_policy(stage, GRANTS, layout, "models/x/")
        readable = {
            r for s in document["Statement"] if "s3:GetObject" in s["Action"] for r in s["Resource"]
        }
        writable = {
            r for s in document["Statement"] if "s3:PutObject" in s["Action"] for r in s["Resource"]
        }
        label_files = f"arn:aws:s3:::data/{layout.labels}*"
        assert (label_files in readable) == (stage.name == "plan"), stage.name
        assert label_files not in writable, stage.name


def test_function_policy_without_the_model_bucket_outside_inference() -> None:
    for stage in ("processing", "observe"):
        document = policies.function_policy(STAGES[stage], GRANTS, KeyLayout(), "models/x/")
        resources = [r for s in document["Statement"] for r in s["Resource"]]
        assert not any(r.startswith("arn:aws:s3:::models") for r in resources), stage


def test_the_maps_children_are_executions_of_the_machine_under_its_name() -> None:
    assert policies.children_executions_arn(MACHINE) == (
        f"arn:aws:states:eu-west-1:{ACCOUNT}:execution:dw-pipeline/*"
    )
    # another machine's executions, and this machine's own top-level ones, do not match
    assert not f"arn:aws:states:eu-west-1:{ACCOUNT}:execution:dw-pipeline:cli-1".startswith(
        policies.children_executions_arn(MACHINE).rstrip("*")
    )


def test_plan_lists_the_data_bucket_and_reads_label_files_only() -> None:
    """Plan registers raw objects from a listing (no raw object read) and ingests the late label
    files, so it reads labels/ only; reading makes the listing the bucket's (see
    function_policy)."""
    statements = _statements(
        policies.function_policy(WORKFLOW.plan, GRANTS, KeyLayout(), "models/x/")
    )
    s3 = {sid: s for sid, s in statements.items() if any(a.startswith("s3:") for a in s["Action"])}
    assert s3 == {
        "ListDataBucket": {
            "Sid": "ListDataBucket",
            "Effect": "Allow",
            "Action": ["s3:ListBucket"],
            "Resource": ["arn:aws:s3:::data"],
        },
        "ReadDataObjects": {
            "Sid": "ReadDataObjects",
            "Effect": "Allow",
            "Action": ["s3:GetObject"],
            "Resource": ["arn:aws:s3:::data/labels/*"],
        },
    }


def test_a_step_that_only_lists_may_list_only_under_its_prefixes() -> None:
    from dataclasses import replace

    lister = replace(WORKFLOW.plan, reads=())
    statements = _statements(policies.function_policy(lister, GRANTS, KeyLayout(), "models/x/"))
    assert statements["ListDataPrefixes"]["Condition"] == {"StringLike": {"s3:prefix": ["raw/*"]}}
    assert not any("s3:GetObject" in s["Action"] for s in statements.values())


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


def _statements(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["Sid"]: s for s in document["Statement"]}


@pytest.mark.parametrize("stage", STAGES)
def test_a_stage_connects_as_the_app_user_and_reads_no_secret(stage: Any) -> None:
    document = policies.function_policy(stage, GRANTS, KeyLayout(), "models/x/")
    actions = [a for s in document["Statement"] for a in s["Action"]]
    assert not any(a.startswith("secretsmanager:") for a in actions)
    connect = [s for s in document["Statement"] if "rds-db:connect" in s["Action"]]
    assert connect == [
        {
            "Sid": "ConnectAsAppUser",
            "Effect": "Allow",
            "Action": ["rds-db:connect"],
            "Resource": [APP_USER_ARN],
        }
    ]


@pytest.mark.parametrize("stage", STAGES)
def test_a_stage_lists_the_buckets_it_reads_so_a_missing_key_is_a_404(stage: Any) -> None:
    """S3's 404-or-403 check on a missing key evaluates s3:ListBucket without any s3:prefix:
    a ListBucket grant that a condition limits never passes it. Each bucket the stage reads
    from is listable without a condition; the objects stay limited to the stage's prefixes."""
    statements = _statements(policies.function_policy(stage, GRANTS, KeyLayout(), "models/x/"))
    listing = {sid: s for sid, s in statements.items() if "s3:ListBucket" in s["Action"]}
    read = {sid: s for sid, s in statements.items() if s["Action"] == ["s3:GetObject"]}
    buckets = {r.split("/", 1)[0] for s in read.values() for r in s["Resource"]}
    assert {r for s in listing.values() for r in s["Resource"]} == buckets
    for statement in listing.values():
        assert statement["Action"] == ["s3:ListBucket"]
        assert "Condition" not in statement


def test_rds_db_user_arn_names_one_user_of_one_instance() -> None:
    arn = policies.rds_db_user_arn("aws-us-gov", "us-gov-west-1", ACCOUNT, "db-XYZ", "app")
    assert arn == f"arn:aws-us-gov:rds-db:us-gov-west-1:{ACCOUNT}:dbuser:db-XYZ/app"


def test_the_migrate_role_reads_the_two_database_secrets_only() -> None:
    statements = _statements(policies.migrate_policy(RUNTIME, [MASTER_SECRET, GRAFANA_SECRET]))
    assert statements["ReadDatabaseSecrets"]["Action"] == ["secretsmanager:GetSecretValue"]
    assert statements["ReadDatabaseSecrets"]["Resource"] == [MASTER_SECRET, GRAFANA_SECRET]
    assert set(statements) == {
        "ReadDatabaseSecrets", "WriteOwnLogs", "DescribeNetwork", "ManageNetworkInterfaces"
    }  # fmt: skip


def test_the_operator_policy_allows_port_forwarding_on_the_bastion_only() -> None:
    statements = _statements(
        policies.operator_policy("aws", "eu-west-1", ACCOUNT, INSTANCE, GRAFANA_SECRET)
    )
    start = statements["PortForwardThroughTheBastionOnly"]
    assert start["Action"] == ["ssm:StartSession"]
    assert start["Resource"] == [
        f"arn:aws:ec2:eu-west-1:{ACCOUNT}:instance/{INSTANCE}",
        "arn:aws:ssm:eu-west-1::document/AWS-StartPortForwardingSessionToRemoteHost",
    ]
    # Without it, a session that names no document gets the default shell.
    assert start["Condition"] == {"BoolIfExists": {"ssm:SessionDocumentAccessCheck": "true"}}
    # Only this statement may start a session, and no other document (no shell) is named.
    starting = [s for s in statements.values() if "ssm:StartSession" in s["Action"]]
    assert starting == [start]
    documents = [r for s in statements.values() for r in s["Resource"] if ":document/" in r]
    assert documents == [start["Resource"][1]]
    own = f"arn:aws:ssm:eu-west-1:{ACCOUNT}:session/${{aws:userid}}-*"
    assert statements["OwnSessions"]["Resource"] == [own]
    assert statements["OwnSessionChannels"]["Resource"] == [own]
    assert statements["ReadGrafanaSecret"]["Resource"] == [GRAFANA_SECRET]
