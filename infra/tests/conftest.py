"""Running the Pulumi program (or one component) under Pulumi's unit-test mocks: no CLI, no AWS,
no Docker. The mocks record every resource's inputs (wire names, camelCase), answer the
data-source invokes the program makes and refuse any other, and give each resource the computed
outputs (ARNs, URLs, ids) real AWS would."""

from __future__ import annotations

import json
import runpy
import secrets
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pulumi
import pytest
import yaml
from pulumi.runtime.mocks import MockMonitor

with warnings.catch_warnings():
    # pulumi_aws warns on import about resource types it deprecates, none of which the stack
    # uses; load the modules the program uses once here, so no test sees those warnings.
    warnings.simplefilter("ignore", DeprecationWarning)
    import pulumi_aws as aws

    for _cls in (aws.ec2.Vpc, aws.s3.Bucket, aws.lambda_.Function, aws.vpc.SecurityGroupEgressRule):
        pass

REPOSITORY = Path(__file__).resolve().parents[2]
PROGRAM = REPOSITORY / "infra" / "__main__.py"
PROJECT = "droughtwatch"
ACCOUNT = "123456789012"
REGION = "eu-west-1"
AMI = "ami-0123456789abcdef0"
RDS_RESOURCE_ID = "db-ABCDEFGHIJKLMNOPQRSTUVWXY0"
CLUSTER_RESOURCE_ID = "cluster-ABCDEFGHIJKLMNOPQRSTUVWXY0"


@dataclass(frozen=True)
class Resource:
    typ: str
    name: str
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    # Inputs Pulumi keeps secret (encrypted in the state).
    secrets: frozenset[str] = frozenset()
    # The id the provider gave it (what other resources' inputs refer to).
    id: str = ""

    def json(self, key: str) -> Any:
        """An input that is a JSON document (policies, definitions)."""
        return json.loads(self.inputs[key])


def _service(typ: str) -> str:
    return typ.split(":")[1].split("/")[0]


def computed_outputs(typ: str, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(id, outputs beyond the inputs) for a new resource, shaped like AWS's."""
    physical = (
        inputs.get("name")
        or inputs.get("bucket")
        or inputs.get("identifier")
        or inputs.get("clusterIdentifier")
        or name
    )
    arn = f"arn:aws:{_service(typ)}:{REGION}:{ACCOUNT}:{physical}"
    match typ:
        case "aws:s3/bucket:Bucket":
            return physical, {"arn": f"arn:aws:s3:::{physical}", "bucket": physical}
        case "aws:iam/role:Role":
            return physical, {"arn": f"arn:aws:iam::{ACCOUNT}:role/{physical}", "name": physical}
        case "aws:iam/instanceProfile:InstanceProfile":
            return physical, {"arn": f"arn:aws:iam::{ACCOUNT}:instance-profile/{physical}"}
        case "aws:lambda/function:Function":
            return physical, {"arn": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{physical}"}
        case "aws:cloudwatch/logGroup:LogGroup":
            return physical, {"arn": f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{physical}"}
        case "aws:sfn/stateMachine:StateMachine":
            return f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{physical}", {
                "arn": f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{physical}"
            }
        case "aws:sqs/queue:Queue":
            url = f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{physical}"
            return url, {"arn": arn, "url": url}
        case "aws:ecr/repository:Repository":
            return physical, {
                "arn": f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/{physical}",
                "registryId": ACCOUNT,
                "repositoryUrl": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/{physical}",
            }
        case "docker:index/image:Image":
            repository = inputs["imageName"].rsplit(":", 1)[0]
            return f"{repository}@sha256:{'ab' * 32}", {
                "repoDigest": f"{repository}@sha256:{'ab' * 32}"
            }
        case "aws:rds/instance:Instance":
            address = f"{physical}.c0ffee.{REGION}.rds.amazonaws.com"
            port = int(inputs.get("port", 5432))  # numbers cross the wire as floats
            return physical, {
                "address": address,
                "port": port,
                "endpoint": f"{address}:{port}",
                "arn": f"arn:aws:rds:{REGION}:{ACCOUNT}:db:{physical}",
                "resourceId": RDS_RESOURCE_ID,
                "masterUserSecrets": [
                    {
                        "secretArn": f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:"
                        f"rds!db-{physical}-AbCdEf",
                        "secretStatus": "active",
                        "kmsKeyId": "aws/secretsmanager",
                    }
                ],
            }
        case "aws:rds/cluster:Cluster":
            address = f"{physical}.cluster-c0ffee.{REGION}.rds.amazonaws.com"
            return physical, {
                "endpoint": address,
                "readerEndpoint": address.replace(".cluster-", ".cluster-ro-"),
                "port": int(inputs.get("port", 5432)),
                "arn": f"arn:aws:rds:{REGION}:{ACCOUNT}:cluster:{physical}",
                "clusterResourceId": CLUSTER_RESOURCE_ID,
                "masterUserSecrets": [
                    {
                        "secretArn": f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:"
                        f"rds!cluster-{physical}-AbCdEf",
                        "secretStatus": "active",
                        "kmsKeyId": "aws/secretsmanager",
                    }
                ],
            }
        case "aws:rds/clusterInstance:ClusterInstance":
            return physical, {
                "arn": f"arn:aws:rds:{REGION}:{ACCOUNT}:db:{physical}",
                "dbiResourceId": "db-WRITER0000000000000000000",
            }
        case "aws:secretsmanager/secret:Secret":
            secret_arn = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:{physical}-AbCdEf"
            return secret_arn, {"arn": secret_arn}
        case "aws:secretsmanager/secretVersion:SecretVersion":
            return f"{name}-version", {"versionId": "terraform-20261202000000000000000001"}
        case "aws:lambda/invocation:Invocation":
            return f"{name}-invocation", {"result": json.dumps({"schema_version": 3})}
        # pulumi-random: new random values for each new resource, as the provider makes them.
        case "random:index/randomPassword:RandomPassword":
            return f"{name}-password", {"result": secrets.token_urlsafe(30)}
        case "random:index/randomId:RandomId":
            value = secrets.token_bytes(int(inputs["byteLength"]))
            return f"{name}-id", {"hex": value.hex(), "b64Url": value.hex()}
        case "aws:ec2/vpcEndpoint:VpcEndpoint":
            return f"vpce-{name}", {"prefixListId": "pl-6da54004"}
        case "aws:ec2/instance:Instance":
            return "i-0123456789abcdef0", {"arn": arn}
        case "aws:ec2/vpc:Vpc" | "aws:ec2/subnet:Subnet" | "aws:ec2/securityGroup:SecurityGroup":
            prefix = {"vpc": "vpc", "subnet": "subnet", "securityGroup": "sg"}[
                typ.split("/")[1].split(":")[0]
            ]
            return f"{prefix}-{name}", {"arn": arn}
    return f"{name}-id", {"arn": arn}


# What aws.get_partition answers in a region of each partition (the program takes ARNs' partition
# from it).
PARTITIONS = {
    "aws": ("amazonaws.com", "com.amazonaws"),
    "aws-us-gov": ("amazonaws.com", "com.amazonaws"),
    "aws-cn": ("amazonaws.com.cn", "cn.com.amazonaws"),
}


def _invokes(partition: str = "aws") -> dict[str, Callable[[dict[str, Any]], dict[str, Any]]]:
    dns_suffix, reverse_dns_prefix = PARTITIONS[partition]
    return {
        "aws:index/getCallerIdentity:getCallerIdentity": lambda a: {
            "accountId": ACCOUNT,
            "arn": f"arn:aws:iam::{ACCOUNT}:user/test",
            "userId": "AIDATEST",
            "id": ACCOUNT,
        },
        "aws:index/getPartition:getPartition": lambda a: {
            "partition": partition,
            "dnsSuffix": dns_suffix,
            "reverseDnsPrefix": reverse_dns_prefix,
            "id": partition,
        },
        "aws:index/getAvailabilityZones:getAvailabilityZones": lambda a: {
            "names": [f"{REGION}a", f"{REGION}b", f"{REGION}c"],
            "zoneIds": ["euw1-az1", "euw1-az2", "euw1-az3"],
            "groupNames": [REGION],
            "id": REGION,
        },
        "aws:ecr/getAuthorizationToken:getAuthorizationToken": lambda a: {
            "userName": "AWS",
            "password": "mock-ecr-password",
            "authorizationToken": "QVdTOm1vY2s=",
            "proxyEndpoint": f"https://{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com",
            "expiresAt": "2030-01-01T00:00:00Z",
            "id": ACCOUNT,
        },
        "aws:ssm/getParameter:getParameter": lambda a: {
            "name": a["name"],
            "value": AMI,
            "type": "String",
            "arn": f"arn:aws:ssm:{REGION}::parameter{a['name']}",
            "version": 1,
            "insecureValue": AMI,
            "id": a["name"],
        },
    }


SECRET_SIG = "4dabf18193072939515e22adb298388d"  # Pulumi's marker of a secret value


def unwrap_secrets(value: Any) -> Any:
    if isinstance(value, dict):
        if value.get(SECRET_SIG) is not None and "value" in value:
            return unwrap_secrets(value["value"])
        return {k: unwrap_secrets(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap_secrets(v) for v in value]
    return value


class UnknownInvoke(Exception):
    pass


class RecordingMocks(pulumi.runtime.Mocks):
    def __init__(self, partition: str = "aws") -> None:
        self.partition = partition
        self.resources: list[Resource] = []
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        inputs = unwrap_secrets(dict(args.inputs))
        secrets = frozenset(
            k for k, v in args.inputs.items() if isinstance(v, dict) and SECRET_SIG in v
        )
        resource_id, extra = computed_outputs(args.typ, args.name, inputs)
        outputs = {**inputs, **extra}
        self.resources.append(
            Resource(args.typ, args.name, inputs, outputs, secrets, str(resource_id))
        )
        return resource_id, outputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict[str, Any]:
        answers = _invokes(self.partition)
        if args.token not in answers:
            # A new data-source lookup must be added here on purpose, never pass silently.
            raise UnknownInvoke(f"the tests do not mock the invoke {args.token}")
        self.calls.append((args.token, dict(args.args)))
        return answers[args.token](args.args)


@dataclass(frozen=True)
class Registration:
    """A resource as the engine sees it: its URN, its parent's URN and its aliases (name, type
    and parent URN of each former identity; "" where the alias keeps the current one)."""

    urn: str
    parent: str
    typ: str
    name: str
    aliases: tuple[tuple[str, str, str], ...]
    # The URNs it waits for: depends_on, and the resources whose outputs its inputs use.
    dependencies: frozenset[str] = frozenset()


class RecordingMonitor(MockMonitor):
    def __init__(self, mocks: pulumi.runtime.Mocks) -> None:
        super().__init__(mocks)
        self.registrations: list[Registration] = []

    def RegisterResource(self, request: Any) -> Any:  # the gRPC method, by its name
        response = super().RegisterResource(request)
        aliases = tuple((a.spec.name, a.spec.type, a.spec.parentUrn) for a in request.aliases)
        dependencies = {*request.dependencies}
        for urns in request.propertyDependencies.values():
            dependencies.update(urns.urns)
        self.registrations.append(
            Registration(
                response.urn,
                request.parent,
                request.type,
                request.name,
                aliases,
                frozenset(dependencies),
            )
        )
        return response


@dataclass
class Run:
    """What a program run registered."""

    resources: list[Resource]
    calls: list[tuple[str, dict[str, Any]]]
    value: Any = None
    exports: dict[str, Any] = field(default_factory=dict)
    registrations: list[Registration] = field(default_factory=list)

    def of_type(self, typ: str) -> list[Resource]:
        return [r for r in self.resources if r.typ == typ]

    def waits_for(self, typ: str, name: str) -> set[tuple[str, str]]:
        """(type, name) of every resource that the resource ``typ``/``name`` waits for,
        directly or through the resources it waits for."""
        by_urn = {r.urn: r for r in self.registrations}
        (start,) = [r for r in self.registrations if (r.typ, r.name) == (typ, name)]
        seen: set[str] = set()
        todo = list(start.dependencies)
        while todo:
            urn = todo.pop()
            if urn not in seen and urn in by_urn:
                seen.add(urn)
                todo.extend(by_urn[urn].dependencies)
        return {(by_urn[u].typ, by_urn[u].name) for u in seen}

    def one(self, typ: str, name: str | None = None) -> Resource:
        found = [r for r in self.of_type(typ) if name is None or r.name == name]
        assert len(found) == 1, f"expected one {typ} {name or ''}, found {[r.name for r in found]}"
        return found[0]

    def physical_names(self) -> set[str]:
        """Account-wide names (inline role policy names live inside their role)."""
        names = set()
        for r in self.resources:
            if r.typ == "aws:iam/rolePolicy:RolePolicy":
                continue
            for key in ("name", "bucket", "identifier", "clusterIdentifier"):
                value = r.inputs.get(key)
                if isinstance(value, str):
                    names.add(value)
        return names


def config_values(values: dict[str, Any]) -> dict[str, str]:
    """Stack-file config as Pulumi hands it to the program: strings, JSON for objects."""
    out = {}
    for key, value in values.items():
        if value is None:  # unset
            continue
        if isinstance(value, str):
            out[key] = value
        elif isinstance(value, bool):
            out[key] = "true" if value else "false"
        elif isinstance(value, int | float):
            out[key] = str(value)
        else:
            out[key] = json.dumps(value)
    return out


def stack_file_config(stack: str) -> dict[str, Any]:
    data = yaml.safe_load((REPOSITORY / f"Pulumi.{stack}.yaml").read_text())
    return dict(data.get("config") or {})


def run(
    build: Callable[[], Any],
    *,
    stack: str = "dev",
    config: dict[str, Any] | None = None,
    partition: str = "aws",
) -> Run:
    """Run ``build`` as a Pulumi program under the mocks with the given config (the project's
    ``aws:region`` defaults to eu-west-1; ``partition`` is what aws.get_partition answers) and
    return what it registered."""
    mocks = RecordingMocks(partition)
    monitor = RecordingMonitor(mocks)
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack, preview=False, monitor=monitor)
    pulumi.runtime.set_all_config(config_values({"aws:region": REGION, **(config or {})}))
    result = Run(mocks.resources, mocks.calls, registrations=monitor.registrations)

    @pulumi.runtime.test
    def program() -> Any:
        value = build()
        return pulumi.Output.from_input(value).apply(lambda v: setattr(result, "value", v))

    program()
    return result


def run_main(
    stack: str = "dev",
    config: dict[str, Any] | None = None,
    *,
    stack_file: bool = True,
    partition: str = "aws",
) -> Run:
    """The whole program (infra/__main__.py) for a stack, with its Pulumi.<stack>.yaml when
    ``stack_file`` and that file exists, plus ``config``; the exports are resolved."""
    values = {}
    if stack_file and (REPOSITORY / f"Pulumi.{stack}.yaml").exists():
        values.update(stack_file_config(stack))
    values.update(config or {})
    exports: dict[str, Any] = {}
    original = pulumi.export

    def build() -> Any:
        pulumi.export = lambda name, value: exports.__setitem__(str(name), value)
        try:
            runpy.run_path(str(PROGRAM), run_name="__main__")
        finally:
            pulumi.export = original
        return exports

    result = run(build, stack=stack, config=values, partition=partition)
    result.exports = result.value
    return result


DATA_BUCKET_ARN = f"arn:aws:s3:::droughtwatch-dev-data-{ACCOUNT}"
MODEL_BUCKET_ARN = f"arn:aws:s3:::droughtwatch-dev-models-{ACCOUNT}"
MASTER_SECRET_ARN = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:rds!db-1234-AbCdEf"
GRAFANA_SECRET_ARN = (
    f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:droughtwatch-dev-grafana-db-??????"
)


def network(bastion: bool, secrets_endpoint: bool = True) -> Callable[[], Any]:
    """A program of the network components wired as infra/__main__.py wires them: the VPC, the
    security groups, and the endpoints the Lambdas' group may reach (with the Secrets Manager
    endpoint of the ``instance`` database kind when ``secrets_endpoint``)."""
    from droughtwatch_infra.endpoints import Endpoints, EndpointsArgs
    from droughtwatch_infra.naming import Namer
    from droughtwatch_infra.security_groups import SecurityGroups, SecurityGroupsArgs
    from droughtwatch_infra.vpc import Vpc, VpcArgs

    def build() -> Any:
        namer = Namer(PROJECT, "dev")
        vpc = Vpc("network", VpcArgs(namer, "10.42.0.0/16", public_subnet=bastion))
        groups = SecurityGroups("security-groups", SecurityGroupsArgs(namer, vpc.vpc_id, bastion))
        Endpoints(
            "endpoints",
            EndpointsArgs(
                namer,
                REGION,
                vpc.vpc_id,
                vpc.private_subnet_ids,
                vpc.private_route_table_id,
                groups.lambda_security_group_id,
                ACCOUNT,
                [DATA_BUCKET_ARN, MODEL_BUCKET_ARN],
                [MASTER_SECRET_ARN, GRAFANA_SECRET_ARN] if secrets_endpoint else None,
            ),
        )
        return vpc.vpc_id

    return build


@pytest.fixture(scope="session")
def infra() -> SimpleNamespace:
    """The harness for the tests: ``infra.run(build)``, ``infra.run_main(stack)``,
    ``infra.network(bastion)`` and the account, region and AMI the mocks answer with."""
    return SimpleNamespace(
        run=run,
        run_main=run_main,
        network=network,
        ACCOUNT=ACCOUNT,
        REGION=REGION,
        AMI=AMI,
        REPOSITORY=REPOSITORY,
        RDS_RESOURCE_ID=RDS_RESOURCE_ID,
        CLUSTER_RESOURCE_ID=CLUSTER_RESOURCE_ID,
        DATA_BUCKET_ARN=DATA_BUCKET_ARN,
        MODEL_BUCKET_ARN=MODEL_BUCKET_ARN,
        MASTER_SECRET_ARN=MASTER_SECRET_ARN,
        GRAFANA_SECRET_ARN=GRAFANA_SECRET_ARN,
    )


@pytest.fixture(scope="module")
def dev_stack() -> Iterator[Run]:
    """The dev stack as Pulumi.dev.yaml configures it (resources are read-only records)."""
    yield run_main("dev")
