"""The whole program (infra/__main__.py) under mocks: the dev stack creates every resource the
pipeline needs, the security properties hold on the inputs, every IAM policy is narrow, the state
machine is the contract's single-source definition, and stacks do not share names."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from droughtwatch_contract import statemachine
from droughtwatch_contract.outputs import StackOutput
from droughtwatch_contract.stages import WORKFLOW
from droughtwatch_infra.config import ConfigError
from droughtwatch_infra.policies import WILDCARD_ONLY_ACTIONS

ACCOUNT, REGION = "123456789012", "eu-west-1"  # what the mocks answer (conftest.py)
Run = Any

EXPECTED_TYPES = {
    # network
    "aws:ec2/vpc:Vpc": 1,
    "aws:ec2/subnet:Subnet": 3,
    # S3 only: on Aurora no interface endpoint (and so no endpoints group) runs all month
    "aws:ec2/vpcEndpoint:VpcEndpoint": 1,
    "aws:ec2/securityGroup:SecurityGroup": 3,
    "aws:ec2/internetGateway:InternetGateway": 1,
    # storage
    "aws:s3/bucket:Bucket": 2,
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock": 2,
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration": 2,
    "aws:s3/bucketVersioning:BucketVersioning": 2,
    "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration": 2,
    "aws:s3/bucketPolicy:BucketPolicy": 2,
    # database: Aurora Serverless v2, one db.serverless writer, TLS forced by its parameters
    "aws:rds/subnetGroup:SubnetGroup": 1,
    "aws:rds/cluster:Cluster": 1,
    "aws:rds/clusterInstance:ClusterInstance": 1,
    "aws:rds/clusterParameterGroup:ClusterParameterGroup": 1,
    "aws:rds/instance:Instance": 0,
    # image
    "aws:ecr/repository:Repository": 1,
    "aws:ecr/lifecyclePolicy:LifecyclePolicy": 1,
    "docker:index/image:Image": 1,
    # functions (Plan, three stages, the day step, and migrate), the migration run and
    # Grafana's secret
    "aws:lambda/function:Function": 6,
    "aws:lambda/invocation:Invocation": 1,
    "aws:secretsmanager/secret:Secret": 1,
    "aws:secretsmanager/secretVersion:SecretVersion": 1,
    "random:index/randomPassword:RandomPassword": 1,
    # pipeline, schedule
    "aws:sfn/stateMachine:StateMachine": 1,
    "aws:scheduler/schedule:Schedule": 1,
    "aws:sqs/queue:Queue": 1,
    # bastion, kept stopped
    "aws:ec2/instance:Instance": 1,
    "aws:ec2transitgateway/instanceState:InstanceState": 1,
    "aws:iam/instanceProfile:InstanceProfile": 1,
    # alerts
    "aws:sns/topic:Topic": 1,
    "aws:cloudwatch/eventRule:EventRule": 1,
    "aws:cloudwatch/eventTarget:EventTarget": 1,
    # roles: six functions, the state machine, the schedule, the bastion; the state machine's
    # role has two policies (invoking the functions, running its Map's children)
    "aws:iam/role:Role": 9,
    "aws:iam/rolePolicy:RolePolicy": 10,
    # log groups: six functions and the state machine
    "aws:cloudwatch/logGroup:LogGroup": 7,
}


def test_dev_stack_creates_every_resource(dev_stack: Run) -> None:
    counts = {typ: len(dev_stack.of_type(typ)) for typ in EXPECTED_TYPES}
    assert counts == EXPECTED_TYPES


def test_dev_stack_exports_what_the_cli_reads(dev_stack: Run) -> None:
    exports = dev_stack.exports
    assert set(exports) == {o.value for o in StackOutput}
    assert exports["data_bucket"] == f"droughtwatch-dev-data-{ACCOUNT}"
    assert exports["model_bucket"] == f"droughtwatch-dev-models-{ACCOUNT}"
    assert exports["region"] == REGION
    assert exports["state_machine_arn"].endswith(":stateMachine:droughtwatch-dev-pipeline")
    assert exports["database_secret_arn"].startswith("arn:aws:secretsmanager:")
    assert exports["database_endpoint"] == f"{exports['database_address']}:5432"
    assert exports["bastion_instance_id"] == "i-0123456789abcdef0"
    assert exports["tunnel_command"] == (
        f"aws ssm start-session --region {REGION} --target i-0123456789abcdef0 "
        "--document-name AWS-StartPortForwardingSessionToRemoteHost --parameters "
        f"""'{{"host":["{exports["database_address"]}"],"portNumber":["5432"],"""
        """"localPortNumber":["5432"]}'"""
    )
    assert exports["image_uri"].endswith("@sha256:" + "ab" * 32)


def test_functions_run_the_pushed_image_by_digest(dev_stack: Run) -> None:
    functions = dev_stack.of_type("aws:lambda/function:Function")
    assert {f.inputs["imageUri"] for f in functions} == {dev_stack.exports["image_uri"]}


def test_database_is_private_encrypted_and_managed(dev_stack: Run) -> None:
    db = dev_stack.one("aws:rds/cluster:Cluster").inputs
    assert db["storageEncrypted"] is True
    assert db["manageMasterUserPassword"] is True
    assert "masterPassword" not in db
    assert (
        dev_stack.one("aws:rds/clusterInstance:ClusterInstance").inputs["publiclyAccessible"]
        is False
    )
    # Pulumi.dev.yaml turns deletion protection off; the default (prod) keeps it on.
    assert db["deletionProtection"] is False
    # it pauses when idle (the dev stack's reason to be Aurora)
    assert db["serverlessv2ScalingConfiguration"]["minCapacity"] == 0


def test_prod_like_defaults_protect_the_database(infra: Any) -> None:
    stack = infra.run_main("prod", stack_file=False)
    db = stack.one("aws:rds/instance:Instance").inputs
    assert db["deletionProtection"] is True
    assert db["skipFinalSnapshot"] is False
    suffix = stack.one("random:index/randomId:RandomId").outputs["hex"]
    assert db["finalSnapshotIdentifier"] == f"droughtwatch-prod-db-final-{suffix}"
    assert all(b.inputs["forceDestroy"] is False for b in stack.of_type("aws:s3/bucket:Bucket"))


def test_buckets_block_public_access(dev_stack: Run) -> None:
    blocks = dev_stack.of_type("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")
    buckets = {b.inputs["bucket"] for b in dev_stack.of_type("aws:s3/bucket:Bucket")}
    assert {b.inputs["bucket"] for b in blocks} == buckets
    for block in blocks:
        flags = (
            "blockPublicAcls",
            "blockPublicPolicy",
            "ignorePublicAcls",
            "restrictPublicBuckets",
        )
        assert all(block.inputs[f] is True for f in flags)


def test_bastion_security_group_has_no_ingress(dev_stack: Run) -> None:
    groups = {g.name: g for g in dev_stack.of_type("aws:ec2/securityGroup:SecurityGroup")}
    bastion_id = "sg-security-groups-bastion-sg"
    assert "security-groups-bastion-sg" in groups
    assert not groups["security-groups-bastion-sg"].inputs.get("ingress")
    ingress = dev_stack.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
    assert [r.name for r in ingress if r.inputs["securityGroupId"] == bastion_id] == []


def _policies(stack: Run) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for r in stack.of_type("aws:iam/rolePolicy:RolePolicy"):
        found.append((f"role policy {r.name}", r.json("policy")))
    return found


def test_every_iam_policy_names_only_narrow_actions_and_resources(dev_stack: Run) -> None:
    policies = _policies(dev_stack)
    assert len(policies) == 10
    for where, policy in policies:
        for statement in policy["Statement"]:
            assert statement["Effect"] == "Allow", where
            actions = statement["Action"]
            resources = statement["Resource"]
            assert all("*" not in action for action in actions), (where, actions)
            if "*" in resources:
                assert resources == ["*"], (where, statement)
                assert set(actions) <= WILDCARD_ONLY_ACTIONS, (where, actions)
            for resource in resources:
                assert resource == "*" or resource.startswith("arn:aws:"), (where, resource)
    # No role carries an AWS managed policy (those grant more than the stack uses).
    for role in dev_stack.of_type("aws:iam/role:Role"):
        assert not role.inputs.get("managedPolicyArns"), role.name


def test_state_machine_is_the_single_source_definition(dev_stack: Run) -> None:
    machine = dev_stack.one("aws:sfn/stateMachine:StateMachine")
    functions = {
        f.inputs["name"]: f.outputs["arn"]
        for f in dev_stack.of_type("aws:lambda/function:Function")
    }
    arns = {step: functions[f"droughtwatch-dev-{step}"] for step in WORKFLOW.names}
    expected = statemachine.definition(arns, {step: 900 for step in arns})
    assert machine.json("definition") == expected
    child = expected["States"][statemachine.ITEMS]["ItemProcessor"]["States"]
    referenced = {
        state["Parameters"]["FunctionName"]
        for state in [*expected["States"].values(), *child.values()]
        if state["Type"] == "Task"
    }
    # The schedule starts executions only once the role may run the Map's children.
    (schedule,) = dev_stack.of_type("aws:scheduler/schedule:Schedule")
    waits = dev_stack.waits_for(schedule.typ, schedule.name)
    assert ("aws:iam/rolePolicy:RolePolicy", "pipeline-map-children") in waits
    # The steps' functions; the migrate function is the deploy's, never the pipeline's.
    assert referenced == set(functions.values()) - {functions["droughtwatch-dev-migrate"]}


def test_default_cadence_is_every_24_hours_in_utc(dev_stack: Run) -> None:
    schedule = dev_stack.one("aws:scheduler/schedule:Schedule").inputs
    assert schedule["scheduleExpression"] == "rate(24 hours)"
    assert schedule["scheduleExpressionTimezone"] == "UTC"
    assert schedule["state"] == "ENABLED"


def test_config_changes_the_schedule(infra: Any) -> None:
    stack = infra.run_main(
        "dev",
        {
            "droughtwatch:schedule_expression": "cron(30 5 ? * MON-FRI *)",
            "droughtwatch:schedule_timezone": "Africa/Nairobi",
            "droughtwatch:schedule_enabled": "false",
        },
    )
    schedule = stack.one("aws:scheduler/schedule:Schedule").inputs
    assert schedule["scheduleExpression"] == "cron(30 5 ? * MON-FRI *)"
    assert schedule["scheduleExpressionTimezone"] == "Africa/Nairobi"
    assert schedule["state"] == "DISABLED"


def test_invalid_cadence_fails_before_any_resource(infra: Any) -> None:
    with pytest.raises(ConfigError) as raised:
        infra.run_main("dev", {"droughtwatch:schedule_expression": "rate(24 hour)"})
    message = str(raised.value)
    assert "droughtwatch:schedule_expression" in message
    assert "rate(<n> minute|minutes|hour|hours|day|days)" in message
    assert "'rate(24 hour)'" in message


def test_two_stacks_yield_different_physical_names(dev_stack: Run, infra: Any) -> None:
    other = infra.run_main("staging")
    dev_names, other_names = dev_stack.physical_names(), other.physical_names()
    assert len(dev_names) >= 20
    assert dev_names.isdisjoint(other_names)
    assert all("droughtwatch-dev-" in name for name in dev_names), dev_names
    assert all("droughtwatch-staging-" in name for name in other_names), other_names


def test_stack_without_bastion_exports_no_tunnel(infra: Any) -> None:
    stack = infra.run_main("dev", {"droughtwatch:bastion": "off"})
    assert stack.of_type("aws:ec2/instance:Instance") == []
    assert stack.of_type("aws:ec2/internetGateway:InternetGateway") == []
    assert "tunnel_command" not in stack.exports
    assert "bastion_instance_id" not in stack.exports


def test_alerts_mail_the_configured_address(infra: Any) -> None:
    stack = infra.run_main("dev", {"droughtwatch:alert_email": "oncall@example.org"})
    subscription = stack.one("aws:sns/topicSubscription:TopicSubscription").inputs
    assert subscription["protocol"] == "email"
    assert subscription["endpoint"] == "oncall@example.org"
    assert json.loads(stack.one("aws:cloudwatch/eventRule:EventRule").inputs["eventPattern"])


def test_dev_stack_without_email_has_no_subscription(dev_stack: Run) -> None:
    assert dev_stack.of_type("aws:sns/topicSubscription:TopicSubscription") == []


def test_mocks_refuse_a_data_source_they_do_not_know(infra: Any) -> None:
    """A new lookup in the program must be mocked on purpose, never answered silently."""
    import pulumi_aws as aws

    with pytest.raises(Exception, match="do not mock the invoke aws:index/getRegion:getRegion"):
        infra.run(lambda: aws.get_region_output().region)


FORMER_URNS = Path(__file__).parent / "data" / "urns-before-child-names.txt"


def _type_chain(urn: str) -> str:
    return urn.split("::")[2].split("$")[-1]


def _urn(parent: str, typ: str, name: str) -> str:
    """A URN as the engine (and the mocks' monitor) makes it."""
    prefix = f"{_type_chain(parent)}$" if parent else ""
    return f"urn:pulumi:dev::droughtwatch::{prefix}{typ}::{name}"


def _identities(stack: Run) -> dict[str, str]:
    """Every URN a resource answers to (its own and its aliases') -> its current URN; aliases
    resolved as the engine does, a child inheriting its parent's aliases (with the parent's
    former name in place of a `<parent>-` prefix of its own name)."""
    by_urn = {r.urn: r for r in stack.registrations}
    former: dict[str, list[str]] = {}

    def aliases(urn: str) -> list[str]:
        if urn not in former:
            r = by_urn[urn]
            found = [
                _urn(parent or r.parent, typ or r.typ, name or r.name)
                for name, typ, parent in r.aliases
            ]
            if r.parent in by_urn:
                parent_name = by_urn[r.parent].name
                for alias in aliases(r.parent):
                    name = r.name
                    if name.startswith(parent_name):
                        name = alias.rsplit("::", 1)[1] + name[len(parent_name) :]
                    found.append(_urn(alias, r.typ, name))
            former[urn] = found
        return former[urn]

    identities: dict[str, str] = {}
    for r in stack.registrations:
        for identity in [r.urn, *aliases(r.urn)]:
            assert identities.setdefault(identity, r.urn) == r.urn, f"{identity} claimed twice"
    return identities


def test_resources_of_stacks_deployed_before_keep_their_state(infra: Any) -> None:
    """Renaming children moves them in the state instead of replacing them: each URN a stack
    had before children were named after their component is still a resource's URN or alias
    (otherwise `pulumi up` would delete that resource and create another, the database too)."""
    stack = infra.run_main(
        "dev",
        {
            "droughtwatch:alert_email": "ops@example.org",
            # the database kind the stacks deployed before had
            "droughtwatch:database": {"kind": "instance"},
        },
    )
    identities = {urn.split("::", 2)[2] for urn in _identities(stack)}
    lines = FORMER_URNS.read_text().splitlines()
    before = {line for line in lines if line and not line.startswith("#")}
    # The one Network component itself is gone (a component holds no cloud resource); its
    # children moved under Vpc, SecurityGroups and Endpoints.
    gone = before - identities
    assert gone == {"pulumi:pulumi:Stack$droughtwatch:infra:Network::network"}


# -- who may do what: the database users, the secrets, the operators ---------------------------

STAGE_ROLE_POLICIES = {f"functions-{step}" for step in WORKFLOW.names}


def _role_policies(stack: Run) -> dict[str, dict[str, Any]]:
    return {r.name: r.json("policy") for r in stack.of_type("aws:iam/rolePolicy:RolePolicy")}


def _mentions(policy: dict[str, Any], text: str) -> bool:
    return text in json.dumps(policy)


def test_no_stage_role_can_read_the_master_secret(dev_stack: Run) -> None:
    master = dev_stack.exports["database_secret_arn"]
    policies = _role_policies(dev_stack)
    assert set(policies) >= STAGE_ROLE_POLICIES
    for name in STAGE_ROLE_POLICIES:
        actions = {a for s in policies[name]["Statement"] for a in s["Action"]}
        assert not any(a.startswith("secretsmanager:") for a in actions), name
        assert not _mentions(policies[name], master), name


def test_the_migrate_role_is_the_only_one_reading_the_master_secret(dev_stack: Run) -> None:
    master = dev_stack.exports["database_secret_arn"]
    readers = {
        name
        for name, policy in _role_policies(dev_stack).items()
        for s in policy["Statement"]
        if "secretsmanager:GetSecretValue" in s["Action"] and master in s["Resource"]
    }
    assert readers == {"migration"}
    assert not any(
        _mentions(p, master) for n, p in _role_policies(dev_stack).items() if n != "migration"
    )
    # Nor may the operators read it: their policy names the Grafana secret only.
    operator = json.loads(dev_stack.exports["operator_policy"])
    assert not _mentions(operator, master)
    assert _mentions(operator, dev_stack.exports["grafana_secret_arn"])


def test_each_role_connects_only_as_its_own_database_user(dev_stack: Run, infra: Any) -> None:
    """On Aurora rds-db:connect names the cluster's resource id (cluster-...)."""
    cluster = infra.CLUSTER_RESOURCE_ID
    app_user = f"arn:aws:rds-db:{REGION}:{ACCOUNT}:dbuser:{cluster}/droughtwatch_app"
    connecting = {
        name: [
            r for s in policy["Statement"] if "rds-db:connect" in s["Action"] for r in s["Resource"]
        ]
        for name, policy in _role_policies(dev_stack).items()
        if _mentions(policy, "rds-db:")
    }
    assert connecting == {name: [app_user] for name in STAGE_ROLE_POLICIES}
    db = dev_stack.one("aws:rds/cluster:Cluster").inputs
    assert db["iamDatabaseAuthenticationEnabled"] is True


def test_the_stages_hold_no_secret_and_grafana_gets_its_own(dev_stack: Run) -> None:
    exports = dev_stack.exports
    assert exports["grafana_secret_arn"].startswith("arn:aws:secretsmanager:")
    assert exports["grafana_secret_arn"] != exports["database_secret_arn"]
    for function in dev_stack.of_type("aws:lambda/function:Function"):
        variables = function.inputs["environment"]["variables"]
        secrets = {k: v for k, v in variables.items() if "SECRET" in k}
        if function.inputs["name"] == exports["migrate_function_name"]:
            assert set(secrets.values()) == {
                exports["database_secret_arn"], exports["grafana_secret_arn"]
            }  # fmt: skip
        else:
            assert secrets == {}, function.name
            assert variables["DROUGHTWATCH_DATABASE_AUTH"] == "iam"


def test_the_migration_runs_after_the_database_and_image_and_before_the_stages(
    dev_stack: Run, infra: Any
) -> None:
    """On Aurora: after the cluster's writer (the Data API needs one), outside the VPC."""
    from droughtwatch_infra.migration import repository_migrations_digest

    invocation = dev_stack.one("aws:lambda/invocation:Invocation")
    assert invocation.json("input") == {
        "migrations_sha256": repository_migrations_digest(infra.REPOSITORY)
    }
    waits = dev_stack.waits_for(invocation.typ, invocation.name)
    assert ("aws:rds/clusterInstance:ClusterInstance", "database-cluster-writer") in waits
    assert ("aws:rds/cluster:Cluster", "database-cluster") in waits
    assert ("docker:index/image:Image", "image") in waits
    migrate = dev_stack.one("aws:lambda/function:Function", "migration").inputs
    assert "vpcConfig" not in migrate
    variables = migrate["environment"]["variables"]
    cluster = dev_stack.one("aws:rds/cluster:Cluster").outputs["arn"]
    assert variables["DROUGHTWATCH_DATABASE_CLUSTER_ARN"] == cluster
    for stage in WORKFLOW.names:
        stage_waits = dev_stack.waits_for("aws:lambda/function:Function", f"functions-{stage}")
        assert ("aws:lambda/invocation:Invocation", "migration") in stage_waits, stage


def test_with_an_instance_the_migration_reads_the_secrets_through_the_endpoint(
    infra: Any,
) -> None:
    stack = infra.run_main("dev", {"droughtwatch:database": {"kind": "instance"}})
    invocation = stack.one("aws:lambda/invocation:Invocation")
    waits = stack.waits_for(invocation.typ, invocation.name)
    assert ("aws:rds/instance:Instance", "database-postgres") in waits
    # the network the function needs: the database's rule and the Secrets Manager endpoint
    assert ("aws:ec2/vpcEndpoint:VpcEndpoint", "endpoints-secretsmanager-endpoint") in waits
    assert (
        "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
        "security-groups-database-from-lambda",
    ) in waits
    migrate = stack.one("aws:lambda/function:Function", "migration").inputs
    assert migrate["vpcConfig"]["subnetIds"]
    assert "DROUGHTWATCH_DATABASE_CLUSTER_ARN" not in migrate["environment"]["variables"]
    # rds-db:connect names the instance's DbiResourceId
    policy = stack.one("aws:iam/rolePolicy:RolePolicy", "functions-processing").json("policy")
    (connect,) = [s for s in policy["Statement"] if s["Action"] == ["rds-db:connect"]]
    assert connect["Resource"] == [
        f"arn:aws:rds-db:{REGION}:{ACCOUNT}:dbuser:{infra.RDS_RESOURCE_ID}/droughtwatch_app"
    ]
    for stage in WORKFLOW.names:
        stage_waits = stack.waits_for("aws:lambda/function:Function", f"functions-{stage}")
        assert ("aws:lambda/invocation:Invocation", "migration") in stage_waits, stage


def test_final_snapshots_of_two_database_instances_do_not_collide(infra: Any) -> None:
    first, second = (infra.run_main("prod", stack_file=False) for _ in range(2))
    names = [
        s.one("aws:rds/instance:Instance").inputs["finalSnapshotIdentifier"]
        for s in (first, second)
    ]
    assert all(n.startswith("droughtwatch-prod-db-final-") for n in names)
    assert names[0] != names[1]
    keepers = first.one("random:index/randomId:RandomId").inputs["keepers"]
    assert keepers["identifier"] == "droughtwatch-prod-db"


def test_arns_the_program_builds_take_the_partition_of_the_region(infra: Any) -> None:
    """The ARNs the program writes itself (those of resources come from AWS, here the mocks):
    database users, network interfaces, the bastion, Session Manager, the Lambda integration."""
    stack = infra.run_main("dev", {"aws:region": "us-gov-west-1"}, partition="aws-us-gov")
    documents = [*_role_policies(stack).values(), json.loads(stack.exports["operator_policy"])]
    built = [
        r
        for policy in documents
        for s in policy["Statement"]
        for r in s["Resource"]
        if any(f":{service}:" in r for service in ("rds-db", "ec2", "ssm"))
    ]
    definition = stack.one("aws:sfn/stateMachine:StateMachine").json("definition")
    built += [s["Resource"] for s in definition["States"].values() if s["Type"] == "Task"]
    assert len(built) > 10
    assert all(r.startswith("arn:aws-us-gov:") for r in built), built
