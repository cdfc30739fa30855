"""The endpoints component: S3 through a gateway endpoint on the private route table, Secrets
Manager through an interface endpoint in the private subnets behind its own security group."""

from __future__ import annotations

from typing import Any


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
