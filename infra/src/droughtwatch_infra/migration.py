"""The database's migrations, run once per deploy: a migrate function from the service image
(its own command) with its own role, the only one that may read the RDS-managed master secret;
the read-only Grafana user's secret (a generated password); and an invocation of the function
after the database and the image exist, run again only when the migrations' digest or the
Grafana password changes.

On Aurora the function runs outside the VPC and sends its SQL through the cluster's RDS Data
API (a public AWS endpoint that reads the master secret on the service side); with an RDS
instance it runs in the VPC like the stages and reads the secrets through the Secrets Manager
endpoint.

The stage functions are rolled out after the invocation (infra/__main__.py), so new code never
meets an old schema: a stage that does checks the version and fails with "run the migration".
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_aws as aws
import pulumi_random as random
from droughtwatch_contract.database import (
    GRAFANA_USER,
    MIGRATE_HANDLER,
    MIGRATIONS_DIR,
    migrations_digest,
)
from droughtwatch_contract.settings import MigrateSettings, env_name

from droughtwatch_infra import policies
from droughtwatch_infra.children import ChildNames
from droughtwatch_infra.functions import AccountRef, DatabaseRef, database_environment
from droughtwatch_infra.naming import Namer

# Migrations are quick DDL; the function mostly waits for the database.
MEMORY_MB = 512
TIMEOUT_SECONDS = 300
# Letters and digits only: the password passes through environment variables and Grafana's
# provisioning file, where '$' and quotes would need escaping. 40 of 62 symbols: 238 bits.
GRAFANA_PASSWORD_LENGTH = 40


def grafana_secret_name(namer: Namer) -> str:
    return namer.name("grafana-db")


def grafana_secret_arn_pattern(namer: Namer, account: AccountRef) -> pulumi.Output[str]:
    """An ARN matching the Grafana user's secret before it exists (Secrets Manager appends six
    random characters to the name), for the Secrets Manager endpoint's policy."""
    return pulumi.Output.concat(
        "arn:", account.partition, ":secretsmanager:", account.region, ":", account.account_id,
        ":secret:", grafana_secret_name(namer), "-??????",
    )  # fmt: skip


def repository_migrations_digest(repository: Path) -> str:
    """The digest of the migration files in the repository (read as files: the Pulumi program
    does not import the service)."""
    folder = repository / MIGRATIONS_DIR
    paths = sorted(folder.iterdir()) if folder.is_dir() else []
    files = [(path.name, path.read_bytes()) for path in paths if path.is_file()]
    if not any(name.endswith(".sql") for name, _ in files):
        raise FileNotFoundError(f"no migrations in {folder}: run the program from the repository")
    return migrations_digest(files)


@dataclass(frozen=True)
class MigrationArgs:
    namer: Namer
    image_uri: pulumi.Input[str]
    database: DatabaseRef
    master_secret_arn: pulumi.Input[str]
    migrations_sha256: str
    log_retention_days: int
    subnet_ids: Sequence[pulumi.Input[str]]
    security_group_id: pulumi.Input[str]
    account: AccountRef
    # What must exist before the function can reach the database and Secrets Manager (the
    # security group rules, the endpoints, the database instance that takes connections).
    network: Sequence[pulumi.Resource] = ()
    # The Aurora cluster's ARN: migrate through its RDS Data API, outside the VPC. None (an
    # RDS instance): over PostgreSQL from the private subnets.
    data_api_arn: pulumi.Input[str] | None = None


class Migration(pulumi.ComponentResource):
    function_name: pulumi.Output[str]
    grafana_secret_arn: pulumi.Output[str]
    invocation: aws.lambda_.Invocation

    def __init__(
        self, name: str, args: MigrationArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("droughtwatch:infra:Migration", name, None, opts)
        child = ChildNames(self, name)
        function_name = args.namer.name("migrate")

        password = random.RandomPassword(
            child.name("grafana-password"),
            length=GRAFANA_PASSWORD_LENGTH,
            special=False,
            opts=child.opts("grafana-password"),
        )
        secret = aws.secretsmanager.Secret(
            child.name("grafana"),
            name=grafana_secret_name(args.namer),
            description="droughtwatch: the read-only droughtwatch_grafana user's credentials",
            # Nothing to recover: the password is in the stack's state, and the migrate function
            # applies whatever the secret holds. Deleting at once lets a recreated stack reuse
            # the name.
            recovery_window_in_days=0,
            opts=child.opts("grafana"),
        )
        version = aws.secretsmanager.SecretVersion(
            child.name("grafana"),
            secret_id=secret.id,
            secret_string=pulumi.Output.json_dumps(
                {"username": GRAFANA_USER, "password": password.result}
            ),
            opts=child.opts("grafana"),
        )

        log_group = aws.cloudwatch.LogGroup(
            child.name(),
            name=f"/aws/lambda/{function_name}",
            retention_in_days=args.log_retention_days,
            opts=child.opts(),
        )
        role = aws.iam.Role(
            child.name(),
            name=args.namer.name("migrate-function"),
            description="droughtwatch migrate function: the master and Grafana secrets, its logs",
            assume_role_policy=pulumi.Output.json_dumps(
                policies.assume_role("lambda.amazonaws.com")
            ),
            opts=child.opts(),
        )
        account = args.account
        grants = policies.LambdaGrants(
            log_group_arn=log_group.arn,
            partition=account.partition,
            region=account.region,
            account_id=account.account_id,
        )
        policy = aws.iam.RolePolicy(
            child.name(),
            name="migrate-least-privilege",
            role=role.id,
            policy=pulumi.Output.json_dumps(
                policies.migrate_policy(
                    grants, [args.master_secret_arn, secret.arn], args.data_api_arn
                )
            ),
            opts=child.opts(),
        )
        if args.data_api_arn is not None:
            values = {
                "database_cluster_arn": args.data_api_arn,
                "database_secret_arn": args.master_secret_arn,
                "database_name": args.database.name,
            }
            environment = {env_name(MigrateSettings, k): v for k, v in values.items()}
            network = None
        else:
            environment = database_environment(
                MigrateSettings,
                args.database,
                database_auth="secret",
                database_secret_arn=args.master_secret_arn,
            )
            network = {
                "subnet_ids": list(args.subnet_ids),
                "security_group_ids": [args.security_group_id],
            }
        environment[env_name(MigrateSettings, "grafana_secret_arn")] = secret.arn
        function = aws.lambda_.Function(
            child.name(),
            name=function_name,
            role=role.arn,
            package_type="Image",
            image_uri=args.image_uri,
            image_config={"commands": [MIGRATE_HANDLER]},
            architectures=["x86_64"],
            memory_size=MEMORY_MB,
            timeout=TIMEOUT_SECONDS,
            environment={"variables": environment},
            vpc_config=network,
            logging_config={"log_format": "Text", "log_group": log_group.name},
            opts=child.opts(depends_on=[policy, log_group]),
        )
        # Invoked on creation and whenever the input or a trigger changes (not on every
        # `pulumi up`): the migrations' digest, which the function checks against its own, and
        # the Grafana password's version. A failed migration fails the deploy with its error.
        self.invocation = aws.lambda_.Invocation(
            child.name(),
            function_name=function.name,
            input=json.dumps({"migrations_sha256": args.migrations_sha256}),
            triggers={
                "migrations_sha256": args.migrations_sha256,
                "grafana_secret_version": version.version_id,
            },
            opts=child.opts(depends_on=[function, version, *args.network]),
        )
        self.function_name = function.name
        self.grafana_secret_arn = secret.arn
        self.register_outputs(
            {"function_name": self.function_name, "grafana_secret_arn": self.grafana_secret_arn}
        )
