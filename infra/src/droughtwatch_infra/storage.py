"""The data bucket (raw/, processed/, predictions/, reports/) and the model bucket: encrypted,
versioned, private, TLS-only, with old versions expiring."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from droughtwatch_infra import policies
from droughtwatch_infra.children import ChildNames
from droughtwatch_infra.naming import Namer


@dataclass(frozen=True)
class StorageArgs:
    namer: Namer
    account_id: pulumi.Input[str]
    # When true (dev), `pulumi destroy` deletes the buckets with their objects.
    force_destroy: bool
    noncurrent_version_days: int


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
            rules=[
                {
                    "id": "expire-old-versions",
                    "status": "Enabled",
                    "filter": {},
                    "noncurrent_version_expiration": {
                        "noncurrent_days": args.noncurrent_version_days
                    },
                    "expiration": {"expired_object_delete_marker": True},
                    "abort_incomplete_multipart_upload": {"days_after_initiation": 7},
                }
            ],
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
            child.name("data"), bucket_name("data"), args, opts=child.opts("data")
        )
        self.models = SecureBucket(
            child.name("models"), bucket_name("models"), args, opts=child.opts("models")
        )
        self.register_outputs({"data_bucket": self.data.name, "model_bucket": self.models.name})
