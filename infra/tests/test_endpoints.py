"""The endpoints component: S3 through a gateway endpoint on the private route table, whose
policy lets through this stack's buckets only (a function cannot copy data to another bucket:
the endpoint is the private subnets' only way out); for the ``instance`` database kind, Secrets
Manager through an interface endpoint in the private subnets behind its own security group,
for the database secrets only; on Aurora, no interface endpoint at all."""

from __future__ import annotations

import fnmatch
from typing import Any

from droughtwatch_infra import policies


def test_endpoints_serve_s3_and_secrets_manager_privately(infra: Any) -> None:
    stack = infra.run(infra.network(bastion=False))
    s3 = stack.one("aws:ec2/vpcEndpoint:VpcEndpoint", "endpoints-s3-endpoint").inputs
    assert s3["serviceName"] == "com.amazonaws.eu-west-1.s3"
    assert s3["vpcEndpointType"] == "Gateway"
    assert s3["routeTableIds"] == ["network-private-routes-id"]
    secrets = stack.one("aws:ec2/vpcEndpoint:VpcEndpoint", "endpoints-secretsmanager-endpoint")
    assert secrets.inputs["serviceName"] == "com.amazonaws.eu-west-1.secretsmanager"
    assert secrets.inputs["vpcEndpointType"] == "Interface"
    assert secrets.inputs["privateDnsEnabled"] is True
    assert secrets.inputs["subnetIds"] == ["subnet-network-private-0", "subnet-network-private-1"]
    assert secrets.inputs["securityGroupIds"] == ["sg-endpoints-endpoints-sg"]
    group = stack.one("aws:ec2/securityGroup:SecurityGroup", "endpoints-endpoints-sg").inputs
    assert group["name"] == "droughtwatch-dev-endpoints"


def test_the_s3_endpoint_lets_through_this_stacks_buckets_only(infra: Any) -> None:
    stack = infra.run(infra.network(bastion=False))
    policy = stack.one("aws:ec2/vpcEndpoint:VpcEndpoint", "endpoints-s3-endpoint").json("policy")
    data, models = infra.DATA_BUCKET_ARN, infra.MODEL_BUCKET_ARN
    same_account = {"StringEquals": {"aws:PrincipalAccount": infra.ACCOUNT}}
    assert policy["Statement"] == [
        {
            "Sid": "ThisStacksObjects",
            "Effect": "Allow",
            "Principal": "*",
            "Action": ["s3:AbortMultipartUpload", "s3:GetObject", "s3:PutObject"],
            "Resource": [f"{data}/*", f"{models}/*"],
            "Condition": same_account,
        },
        {
            "Sid": "ListThisStacksBuckets",
            "Effect": "Allow",
            "Principal": "*",
            "Action": ["s3:ListBucket"],
            "Resource": [data, models],
            "Condition": same_account,
        },
    ]
    # whatever a stage may do to S3, the endpoint lets through (and nothing else)
    stage_actions = {*policies.S3_READ_ACTIONS, *policies.S3_WRITE_ACTIONS}
    stage_actions |= set(policies.S3_LIST_ACTIONS)
    assert {a for s in policy["Statement"] for a in s["Action"]} == stage_actions


def test_another_bucket_is_not_reachable_through_the_s3_endpoint(infra: Any) -> None:
    """As IAM evaluates the policy's ARNs (wildcards and all): the stack's objects match, an
    object of any other bucket (even one whose name starts the same) does not."""
    stack = infra.run(infra.network(bastion=False))
    policy = stack.one("aws:ec2/vpcEndpoint:VpcEndpoint", "endpoints-s3-endpoint").json("policy")
    (objects,) = [s for s in policy["Statement"] if "s3:PutObject" in s["Action"]]

    def allowed(arn: str) -> bool:
        return any(fnmatch.fnmatchcase(arn, pattern) for pattern in objects["Resource"])

    assert allowed(f"{infra.DATA_BUCKET_ARN}/processed/2026-12-01/a/abc.npz")
    assert not allowed("arn:aws:s3:::someone-elses-bucket/stolen.npz")
    assert not allowed(f"{infra.DATA_BUCKET_ARN}-copy/stolen.npz")


def test_the_secrets_manager_endpoint_serves_the_database_secrets_only(infra: Any) -> None:
    stack = infra.run(infra.network(bastion=False))
    secrets = stack.one("aws:ec2/vpcEndpoint:VpcEndpoint", "endpoints-secretsmanager-endpoint")
    (statement,) = secrets.json("policy")["Statement"]
    assert statement["Action"] == ["secretsmanager:GetSecretValue"]
    assert statement["Resource"] == [infra.MASTER_SECRET_ARN, infra.GRAFANA_SECRET_ARN]
    assert statement["Condition"] == {"StringEquals": {"aws:PrincipalAccount": infra.ACCOUNT}}
    # the Grafana secret's pattern matches its name with Secrets Manager's six-character suffix
    grafana = infra.GRAFANA_SECRET_ARN.replace("-??????", "-AbCdEf")
    assert fnmatch.fnmatchcase(grafana, infra.GRAFANA_SECRET_ARN)
    assert not fnmatch.fnmatchcase(grafana + "x", infra.GRAFANA_SECRET_ARN)


def test_on_aurora_no_interface_endpoint_runs(infra: Any) -> None:
    """The migrate function uses the RDS Data API from outside the VPC: no Secrets Manager
    endpoint, no endpoints' security group, no rule to it."""
    stack = infra.run(infra.network(bastion=False, secrets_endpoint=False))
    endpoints = stack.of_type("aws:ec2/vpcEndpoint:VpcEndpoint")
    assert [e.name for e in endpoints] == ["endpoints-s3-endpoint"]
    groups = {g.inputs["name"] for g in stack.of_type("aws:ec2/securityGroup:SecurityGroup")}
    assert "droughtwatch-dev-endpoints" not in groups
