"""The storage component: both buckets named from project, stack and account, encrypted,
versioned, private, TLS-only, with old versions expiring."""

from __future__ import annotations

from typing import Any

from droughtwatch_infra.naming import Namer
from droughtwatch_infra.storage import Storage, StorageArgs

ACCOUNT = "123456789012"


def build(force_destroy: bool = False) -> Any:
    return lambda: Storage(
        "storage",
        StorageArgs(
            Namer("droughtwatch", "dev"), ACCOUNT, force_destroy, noncurrent_version_days=30
        ),
    )


def by_bucket(stack: Any, typ: str) -> dict[str, dict[str, Any]]:
    return {r.inputs["bucket"]: r.inputs for r in stack.of_type(typ)}


def test_buckets_are_named_from_project_stack_and_account(infra: Any) -> None:
    stack = infra.run(build())
    names = sorted(b.inputs["bucket"] for b in stack.of_type("aws:s3/bucket:Bucket"))
    assert names == [f"droughtwatch-dev-data-{ACCOUNT}", f"droughtwatch-dev-models-{ACCOUNT}"]


def test_every_bucket_is_encrypted_versioned_and_private(infra: Any) -> None:
    stack = infra.run(build())
    buckets = {b.inputs["bucket"] for b in stack.of_type("aws:s3/bucket:Bucket")}
    sse = by_bucket(stack, "aws:s3/bucketServerSideEncryptionConfiguration:"
                    "BucketServerSideEncryptionConfiguration")  # fmt: skip
    versioning = by_bucket(stack, "aws:s3/bucketVersioning:BucketVersioning")
    blocks = by_bucket(stack, "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")
    ownership = by_bucket(stack, "aws:s3/bucketOwnershipControls:BucketOwnershipControls")
    assert set(sse) == set(versioning) == set(blocks) == set(ownership) == buckets
    for bucket in buckets:
        rule = sse[bucket]["rules"][0]["applyServerSideEncryptionByDefault"]
        assert rule["sseAlgorithm"] == "AES256"
        assert versioning[bucket]["versioningConfiguration"]["status"] == "Enabled"
        assert blocks[bucket] == {
            "bucket": bucket,
            "blockPublicAcls": True,
            "blockPublicPolicy": True,
            "ignorePublicAcls": True,
            "restrictPublicBuckets": True,
        }
        assert ownership[bucket]["rule"]["objectOwnership"] == "BucketOwnerEnforced"


def test_bucket_policies_deny_plain_http_and_old_tls(infra: Any) -> None:
    stack = infra.run(build())
    policies = stack.of_type("aws:s3/bucketPolicy:BucketPolicy")
    assert len(policies) == 2
    for policy in policies:
        bucket = policy.inputs["bucket"]
        arn = f"arn:aws:s3:::{bucket}"
        statements = policy.json("policy")["Statement"]
        assert [s["Effect"] for s in statements] == ["Deny", "Deny"]
        assert all(s["Resource"] == [arn, f"{arn}/*"] for s in statements)
        assert statements[0]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        assert statements[1]["Condition"] == {"NumericLessThan": {"s3:TlsVersion": "1.2"}}


def test_old_versions_and_partial_uploads_expire(infra: Any) -> None:
    stack = infra.run(build())
    for lifecycle in stack.of_type(
        "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration"
    ):
        (rule,) = lifecycle.inputs["rules"]
        assert rule["status"] == "Enabled"
        assert rule["noncurrentVersionExpiration"]["noncurrentDays"] == 30
        assert rule["abortIncompleteMultipartUpload"]["daysAfterInitiation"] == 7


def test_force_destroy_follows_the_stack(infra: Any) -> None:
    kept = infra.run(build(force_destroy=False))
    assert all(b.inputs["forceDestroy"] is False for b in kept.of_type("aws:s3/bucket:Bucket"))
    disposable = infra.run(build(force_destroy=True))
    assert all(b.inputs["forceDestroy"] is True for b in disposable.of_type("aws:s3/bucket:Bucket"))
