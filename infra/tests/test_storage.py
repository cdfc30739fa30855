"""The storage component: both buckets named from project, stack and account, encrypted,
versioned, private, TLS-only, with old versions expiring; and the data bucket's lifecycle rules
per product prefix, from the stack's retention settings and the key layout."""

from __future__ import annotations

from typing import Any

from droughtwatch_contract.keys import KeyLayout
from droughtwatch_infra.config import Retention, StackConfig
from droughtwatch_infra.naming import Namer
from droughtwatch_infra.storage import Storage, StorageArgs, lifecycle_rules

ACCOUNT = "123456789012"
DEFAULTS = StackConfig(region="eu-west-1").retention


def build(force_destroy: bool = False, retention: Retention = DEFAULTS) -> Any:
    return lambda: Storage(
        "storage",
        StorageArgs(Namer("droughtwatch", "dev"), ACCOUNT, force_destroy, retention),
    )


def rules_of(stack: Any, purpose: str) -> dict[str, dict[str, Any]]:
    bucket = f"droughtwatch-dev-{purpose}-{ACCOUNT}"
    (lifecycle,) = [
        r
        for r in stack.of_type("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration")
        if r.inputs["bucket"] == bucket
    ]
    return {rule["id"]: rule for rule in lifecycle.inputs["rules"]}


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
    for purpose in ("data", "models"):
        rule = rules_of(stack, purpose)["expire-old-versions"]
        assert rule["status"] == "Enabled"
        assert rule["filter"] == {}
        assert rule["noncurrentVersionExpiration"]["noncurrentDays"] == 30
        assert rule["expiration"] == {"expiredObjectDeleteMarker": True}
        assert rule["abortIncompleteMultipartUpload"]["daysAfterInitiation"] == 7


def test_processed_files_expire_and_file_reports_age_by_their_prefixes(infra: Any) -> None:
    """The defaults: processed files after 30 days; per-file reports to Standard-IA after 30
    days, gone after 365; raw data, predictions and the day's reports have no rule (kept)."""
    stack = infra.run(build())
    data = rules_of(stack, "data")
    assert set(data) == {"expire-old-versions", "expire-processed", "age-file-reports"}
    layout = KeyLayout()
    assert data["expire-processed"] == {
        "id": "expire-processed",
        "status": "Enabled",
        "filter": {"prefix": layout.processed},
        "expiration": {"days": 30},
    }
    assert data["age-file-reports"] == {
        "id": "age-file-reports",
        "status": "Enabled",
        "filter": {"prefix": layout.reports},
        "transitions": [{"days": 30, "storageClass": "STANDARD_IA"}],
        "expiration": {"days": 365},
    }
    kept = (layout.raw, layout.predictions, layout.daily_reports)
    prefixes = [rule["filter"].get("prefix", "") for rule in data.values()]
    # no rule's prefix is (or covers) a kept product's: the day's reports sit apart
    assert not [p for p in prefixes if p and any(k.startswith(p) for k in kept)]
    assert set(rules_of(stack, "models")) == {"expire-old-versions"}


def test_retention_zero_keeps_a_product(infra: Any) -> None:
    kept = Retention(
        processed_days=None,
        report_days=None,
        report_infrequent_access_days=None,
        noncurrent_version_days=30,
    )
    stack = infra.run(build(retention=kept))
    assert set(rules_of(stack, "data")) == {"expire-old-versions"}
    only_expiry = Retention(None, 30, None, 7)
    (reports,) = [
        r for r in lifecycle_rules(KeyLayout(), only_expiry) if r["id"] != "expire-old-versions"
    ]
    assert reports == {
        "id": "age-file-reports",
        "status": "Enabled",
        "filter": {"prefix": "reports/"},
        "expiration": {"days": 30},
    }


def test_force_destroy_follows_the_stack(infra: Any) -> None:
    kept = infra.run(build(force_destroy=False))
    assert all(b.inputs["forceDestroy"] is False for b in kept.of_type("aws:s3/bucket:Bucket"))
    disposable = infra.run(build(force_destroy=True))
    assert all(b.inputs["forceDestroy"] is True for b in disposable.of_type("aws:s3/bucket:Bucket"))
