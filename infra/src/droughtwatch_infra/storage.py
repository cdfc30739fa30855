"""The data bucket (raw/, processed/, predictions/, reports/, daily-reports/) and the model
bucket: encrypted, versioned, private, TLS-only, with old versions expiring; and in the data
bucket, lifecycle rules per product prefix (``lifecycle_rules``): processed files expire,
per-file reports move to Standard-IA and expire, predictions and the day's reports are kept."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws
from droughtwatch_contract.keys import KeyLayout

from droughtwatch_infra import policies
from droughtwatch_infra.children import ChildNames
from droughtwatch_infra.config import Retention
from droughtwatch_infra.naming import Namer

INFREQUENT_ACCESS = "STANDARD_IA"


@dataclass(frozen=True)
class StorageArgs:
    namer: Namer
    account_id: pulumi.Input[str]
    # When true (dev), `pulumi destroy` deletes the buckets with their objects.
    force_destroy: bool
    retention: Retention
    layout: KeyLayout = field(default_factory=KeyLayout)


def version_rule(noncurrent_version_days: int) -> dict[str, Any]:
    """Every bucket: overwritten or deleted objects (and so expired products) stay
    recoverable this long, then go; lone delete markers and failed uploads are cleaned up."""
    return {
        "id": "expire-old-versions",
        "status": "Enabled",
        "filter": {},
        "noncurrent_version_expiration": {"noncurrent_days": noncurrent_version_days},
        "expiration": {"expired_object_delete_marker": True},
        "abort_incomplete_multipart_upload": {"days_after_initiation": 7},
    }


def lifecycle_rules(layout: KeyLayout, retention: Retention) -> list[dict[str, Any]]:
    """The data bucket's rules, by product prefix of the key layout. Raw data, predictions and
    the day's reports have none: they are kept."""
    rules = [version_rule(retention.noncurrent_version_days)]
    if retention.processed_days:
        rules.append(
            {
                "id": "expire-processed",
                "status": "Enabled",
                "filter": {"prefix": layout.processed},
                "expiration": {"days": retention.processed_days},
            }
        )
    reports: dict[str, Any] = {}
    if retention.report_infrequent_access_days:
        reports["transitions"] = [
            {"days": retention.report_infrequent_access_days, "storage_class": INFREQUENT_ACCESS}
        ]
    if retention.report_days:
        reports["expiration"] = {"days": retention.report_days}
    if reports:
        rules.append(
            {
                "id": "age-file-reports",
                "status": "Enabled",
                "filter": {"prefix": layout.reports},
                **reports,
            }
        )
    return rules


class SecureBucket(pulumi.ComponentResource):
    """One bucket with the stack's guarantees; its parts (versioning, encryption, policy...) are
    each a resource named as the component (their types tell them apart)."""

    name: pulumi.Output[str]
    arn: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        bucket_name: pulumi.Input[str],
        args: StorageArgs,
        rules: list[dict[str, Any]],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("droughtwatch:infra:SecureBucket", name, None, opts)
        child = ChildNames(self, name)
        bucket = aws.s3.Bucket(
            child.name(), bucket=bucket_name, force_destroy=args.force_destroy, opts=child.opts()
        )
        aws.s3.BucketOwnershipControls(
            child.name(),
            bucket=bucket.id,
            rule={"object_ownership": "BucketOwnerEnforced"},  # no ACLs
            opts=child.opts(),
        )
        block = aws.s3.BucketPublicAccessBlock(
            child.name(),
            bucket=bucket.id,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            opts=child.opts(),
        )
        aws.s3.BucketServerSideEncryptionConfiguration(
            child.name(),
            bucket=bucket.id,
            rules=[{"apply_server_side_encryption_by_default": {"sse_algorithm": "AES256"}}],
            opts=child.opts(),
        )
        versioning = aws.s3.BucketVersioning(
            child.name(),
            bucket=bucket.id,
            versioning_configuration={"status": "Enabled"},
            opts=child.opts(),
        )
        aws.s3.BucketLifecycleConfiguration(
            child.name(),
            bucket=bucket.id,
            rules=rules,
            # A lifecycle rule on versions needs versioning in place first.
            opts=child.opts(depends_on=[versioning]),
        )
        aws.s3.BucketPolicy(
            child.name(),
            bucket=bucket.id,
            policy=pulumi.Output.json_dumps(policies.tls_only_bucket_policy(bucket.arn)),
            # S3 rejects a policy while the public access block is being changed.
            opts=child.opts(depends_on=[block]),
        )
        self.name = bucket.bucket
        self.arn = bucket.arn
        self.register_outputs({"name": self.name, "arn": self.arn})


class Storage(pulumi.ComponentResource):
    data: SecureBucket
    models: SecureBucket

    def __init__(
        self, name: str, args: StorageArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("droughtwatch:infra:Storage", name, None, opts)
        child = ChildNames(self, name)

        def bucket_name(purpose: str) -> Any:
            # S3 names are global: the account id keeps the same stack in two accounts apart.
            return pulumi.Output.from_input(args.account_id).apply(
                lambda account: args.namer.global_name(purpose, account)
            )

        self.data = SecureBucket(
            child.name("data"),
            bucket_name("data"),
            args,
            lifecycle_rules(args.layout, args.retention),
            opts=child.opts("data"),
        )
        self.models = SecureBucket(
            child.name("models"),
            bucket_name("models"),
            args,
            [version_rule(args.retention.noncurrent_version_days)],
            opts=child.opts("models"),
        )
        self.register_outputs({"data_bucket": self.data.name, "model_bucket": self.models.name})
