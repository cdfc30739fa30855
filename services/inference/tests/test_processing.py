"""The Processing handler against moto S3 and a real PostgreSQL, after Plan registered the raw
objects (as an execution's steps run; invoked without an item, Processing takes any file)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import psycopg
import pytest
from droughtwatch_inference.handlers.plan import handler as plan
from droughtwatch_inference.handlers.processing import handler as process
from droughtwatch_preprocess import ProcessedReader, encode_example, write_tfrecord

DATA_BUCKET = "dw-test-data"


class Context:
    def __init__(self, seconds: float = 900) -> None:
        self.seconds = seconds

    def get_remaining_time_in_millis(self) -> int:
        return int(self.seconds * 1000)


def handler(event, context) -> dict:
    """Plan, then Processing: Processing's response, with Plan's under ``plan`` (or Plan's
    response when Plan failed)."""
    planned = plan(event, context)
    if planned["statusCode"] != 200:
        return planned
    return {**process(event, context), "plan": planned["body"]["plan"]}


def _raw_file(path: Path, n: int, seed: int = 0, blank: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    payloads = []
    for i in range(n):
        bands = rng.integers(2, 255, size=(11, 65, 65), dtype=np.uint8)
        if i < blank:
            bands[:] = 0
        payloads.append(encode_example(bands, label=int(i % 4), filename=f"scene-{i}"))
    write_tfrecord(path, payloads)
    return path


def _put(s3, key: str, path: Path) -> None:
    s3.upload_file(str(path), DATA_BUCKET, key)


def _rows(dsn: str) -> list[dict]:
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT * FROM ledger ORDER BY id")
        names = [d.name for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def test_real_shard_is_processed_and_recorded(service_env, s3, shard_path, tmp_path) -> None:
    key = "raw/2026-11-27/part-r-00012"
    _put(s3, key, shard_path)
    response = handler({"run_id": "run-1", "input": {"trigger": "test"}}, Context())
    assert response["statusCode"] == 200, response
    body = response["body"]
    assert body["run_id"] == "run-1" and body["input"] == {"trigger": "test"}
    counts = body["processing"]
    assert counts["files_done"] == 1 and counts["files_failed"] == 0 and counts["remaining"] == 0
    assert response["plan"]["registered"] == 1
    (row,) = _rows(service_env["DROUGHTWATCH_DATABASE_DSN"])
    assert row["raw_key"] == key and row["bucket"] == DATA_BUCKET
    assert row["stage"] == "inference" and row["status"] == "pending" and row["attempts"] == 0
    assert row["records"] == 81
    assert row["images"] + row["dropped"] == 81 and row["images"] == counts["images"]
    assert row["batch_date"] == dt.date(2026, 11, 27)
    assert row["size_bytes"] == shard_path.stat().st_size
    assert row["processed_key"].startswith("processed/2026-11-27/part-r-00012/")
    assert row["processed_key"].endswith(f"{row['source_digest'][:12]}.npz")
    local = tmp_path / "p.npz"
    s3.download_file(DATA_BUCKET, row["processed_key"], str(local))
    with ProcessedReader(local) as reader:
        chunk = reader.read()
    assert len(chunk.ids) == row["images"] and len(set(chunk.ids)) == row["images"]
    with psycopg.connect(service_env["DROUGHTWATCH_DATABASE_DSN"]) as conn:
        runs = conn.execute("SELECT stage, status, files_done, images FROM runs ORDER BY id")
    assert runs.fetchall() == [
        ("plan", "succeeded", 1, 0),  # Plan's files are those it planned
        ("processing", "succeeded", 1, row["images"]),
    ]


def test_running_twice_changes_nothing(service_env, s3, tmp_path) -> None:
    _put(s3, "raw/2026-11-27/a", _raw_file(tmp_path / "a", 5))
    first = handler({"run_id": "r1"}, Context())
    before = _rows(service_env["DROUGHTWATCH_DATABASE_DSN"])
    second = handler({"run_id": "r2"}, Context())
    assert first["body"]["processing"]["files_done"] == 1
    assert second["statusCode"] == 200
    assert second["body"]["processing"] | {"run_id": "r1"} == {
        **second["body"]["processing"],
        "run_id": "r1",
        "files_done": 0,
        "images": 0,
    }
    assert second["plan"]["registered"] == 0
    assert _rows(service_env["DROUGHTWATCH_DATABASE_DSN"]) == before


def test_corrupt_file_fails_alone_and_is_not_retried_forever(service_env, s3, tmp_path) -> None:
    good = _raw_file(tmp_path / "good", 6, blank=2)
    bad = tmp_path / "bad"
    data = bytearray(_raw_file(tmp_path / "tmp", 3).read_bytes())
    data[200] ^= 0xFF  # inside the first record's payload: CRC mismatch
    bad.write_bytes(bytes(data))
    _put(s3, "raw/2026-11-27/good", good)
    _put(s3, "raw/2026-11-27/bad", bad)
    dsn = service_env["DROUGHTWATCH_DATABASE_DSN"]
    response = handler({"run_id": "r1"}, Context())
    assert response["statusCode"] == 200
    counts = response["body"]["processing"]
    assert (counts["files_done"], counts["files_failed"], counts["images"], counts["dropped"]) == (
        1,
        1,
        4,
        2,
    )
    assert counts["failures"][0]["key"] == "raw/2026-11-27/bad"
    rows = {r["raw_key"]: r for r in _rows(dsn)}
    assert rows["raw/2026-11-27/good"]["stage"] == "inference"
    failed = rows["raw/2026-11-27/bad"]
    assert failed["status"] == "failed" and failed["stage"] == "processing"
    assert failed["last_error"].startswith("InvalidRawFile:")
    assert "record 0" in failed["last_error"] and "bad" in failed["last_error"]
    for _ in range(3):
        handler({"run_id": "again"}, Context())
    failed = {r["raw_key"]: r for r in _rows(dsn)}["raw/2026-11-27/bad"]
    assert failed["attempts"] == 3 and failed["status"] == "failed"


def test_changed_reupload_is_processed_again(service_env, s3, tmp_path) -> None:
    key = "raw/2026-11-27/scene"
    _put(s3, key, _raw_file(tmp_path / "v1", 3, seed=1))
    handler({"run_id": "r1"}, Context())
    _put(s3, key, _raw_file(tmp_path / "v2", 4, seed=2))
    response = handler({"run_id": "r2"}, Context())
    assert response["body"]["processing"]["files_done"] == 1
    rows = _rows(service_env["DROUGHTWATCH_DATABASE_DSN"])
    assert [r["images"] for r in rows] == [3, 4]
    assert rows[0]["processed_key"] != rows[1]["processed_key"]


def test_file_name_with_quote_and_spaces(service_env, s3, tmp_path) -> None:
    key = "raw/2026-11-27/farmer's field 'north' \"A\"; DROP TABLE ledger;--.tfrecord"
    _put(s3, key, _raw_file(tmp_path / "q", 3))
    response = handler({"run_id": "r1"}, Context())
    assert response["statusCode"] == 200
    (row,) = _rows(service_env["DROUGHTWATCH_DATABASE_DSN"])
    assert row["raw_key"] == key and row["stage"] == "inference"
    s3.head_object(Bucket=DATA_BUCKET, Key=row["processed_key"])


def test_short_time_budget_leaves_the_rest_for_the_next_run(service_env, s3, tmp_path) -> None:
    for i in range(3):
        _put(s3, f"raw/2026-11-27/f{i}", _raw_file(tmp_path / f"f{i}", 2, seed=i))
    response = handler({"run_id": "r1"}, Context(seconds=30))  # margin is 60 s
    counts = response["body"]["processing"]
    assert response["statusCode"] == 200
    assert (counts["files_done"], counts["remaining"]) == (0, 3)
    assert response["plan"]["registered"] == 3
    later = handler({"run_id": "r2"}, Context())
    assert later["body"]["processing"]["files_done"] == 3


def test_unreachable_database_fails_the_stage_without_leaking_the_password(
    service_env,
    monkeypatch,
    s3,
) -> None:
    from droughtwatch_inference.runtime_settings import cached

    monkeypatch.setenv(
        "DROUGHTWATCH_DATABASE_DSN", "postgresql://dw:s3cr3t-pw@127.0.0.1:1/droughtwatch"
    )
    monkeypatch.setenv("DROUGHTWATCH_DATABASE_CONNECT_TIMEOUT_SECONDS", "2")
    # a refused connection may be a paused database resuming: waited for, within its bound
    monkeypatch.setenv("DROUGHTWATCH_DATABASE_RESUME_SECONDS", "1")
    cached.cache_clear()
    response = handler({"run_id": "r1"}, Context())
    assert response["statusCode"] == 500
    assert response["body"]["error"] == "DatabaseUnavailable"
    assert "127.0.0.1:1/droughtwatch" in response["body"]["cause"]
    assert "still not taking connections after waiting 1 s" in response["body"]["cause"]
    assert "s3cr3t-pw" not in json.dumps(response)


def test_invalid_settings_fail_the_stage_naming_the_variable(service_env, monkeypatch) -> None:
    from droughtwatch_inference.runtime_settings import cached

    monkeypatch.setenv("DROUGHTWATCH_MAX_ATTEMPTS", "0")
    cached.cache_clear()
    response = handler({"run_id": "r1"}, Context())
    assert response["statusCode"] == 500
    assert response["body"]["error"] == "ConfigurationError"
    assert "DROUGHTWATCH_MAX_ATTEMPTS" in response["body"]["cause"]


def test_database_secret_from_secrets_manager(service_env, monkeypatch, s3, tmp_path) -> None:
    """The RDS-managed secret's shape (username, password) plus host settings."""
    import boto3
    from droughtwatch_inference.adapters import database
    from droughtwatch_inference.runtime_settings import cached
    from psycopg.conninfo import conninfo_to_dict

    info = conninfo_to_dict(service_env["DROUGHTWATCH_DATABASE_DSN"])
    secret = boto3.client("secretsmanager").create_secret(
        Name="rds!db-test",
        SecretString=json.dumps({"username": info["user"], "password": info["password"]}),
    )
    monkeypatch.delenv("DROUGHTWATCH_DATABASE_DSN")
    monkeypatch.setenv("DROUGHTWATCH_DATABASE_SECRET_ARN", secret["ARN"])
    monkeypatch.setenv("DROUGHTWATCH_DATABASE_HOST", info["host"])
    monkeypatch.setenv("DROUGHTWATCH_DATABASE_PORT", info["port"])
    monkeypatch.setenv("DROUGHTWATCH_DATABASE_NAME", info["dbname"])
    monkeypatch.setenv("DROUGHTWATCH_DATABASE_SSLMODE", "disable")
    cached.cache_clear()
    database._secret_cache.clear()
    _put(s3, "raw/2026-11-27/a", _raw_file(tmp_path / "a", 2))
    response = handler({"run_id": "r1"}, Context())
    assert response["statusCode"] == 200, response
    assert response["body"]["processing"]["files_done"] == 1
    assert info["password"] not in json.dumps(response)


@pytest.mark.parametrize("event", [None, {}, {"body": {"run_id": "prev"}}])
def test_event_shapes_are_accepted(event, service_env, s3) -> None:
    response = handler(event, Context())
    assert response["statusCode"] == 200
    assert response["body"]["run_id"]


# -- S3's two answers on an object the ledger knows: 404 (gone) and 403 (not allowed) ----------


def _stage_user(denied_key: str) -> dict[str, str]:
    """An IAM user in moto with Processing's S3 grants (list the bucket, read raw/, write
    processed/) and a Deny on one raw object; returns its credentials."""
    import boto3

    bucket = f"arn:aws:s3:::{DATA_BUCKET}"
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": bucket},
            {"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"{bucket}/raw/*"},
            {"Effect": "Allow", "Action": "s3:PutObject", "Resource": f"{bucket}/processed/*"},
            {"Effect": "Deny", "Action": "s3:GetObject", "Resource": f"{bucket}/{denied_key}"},
        ],
    }
    iam = boto3.client("iam")
    iam.create_user(UserName="processing")
    iam.put_user_policy(
        UserName="processing", PolicyName="stage", PolicyDocument=json.dumps(policy)
    )
    key = iam.create_access_key(UserName="processing")["AccessKey"]
    return {
        "AWS_ACCESS_KEY_ID": key["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"],
    }


def test_a_forbidden_object_fails_that_file_and_names_the_permission(
    service_env, s3, tmp_path, monkeypatch
) -> None:
    """S3 answers 403 (moto enforcing the user's IAM policy): the file fails with an error
    naming s3:GetObject, the other file is processed, the stage succeeds."""
    import boto3
    from moto.core.authorization import enable_iam_authentication

    denied = "raw/2026-11-27/denied"
    _put(s3, "raw/2026-11-27/allowed", _raw_file(tmp_path / "allowed", 3))
    _put(s3, denied, _raw_file(tmp_path / "denied", 3, seed=1))
    credentials = _stage_user(denied)
    monkeypatch.delenv("AWS_SESSION_TOKEN")
    for name, value in credentials.items():
        monkeypatch.setenv(name, value)
    # boto3's default session keeps the credentials it first read: start a new one
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    with enable_iam_authentication():
        response = handler({"run_id": "r1"}, Context())
    assert response["statusCode"] == 200, response
    counts = response["body"]["processing"]
    assert (counts["files_done"], counts["files_failed"]) == (1, 1)
    rows = {r["raw_key"]: r for r in _rows(service_env["DROUGHTWATCH_DATABASE_DSN"])}
    assert rows["raw/2026-11-27/allowed"]["stage"] == "inference"
    refused = rows[denied]
    assert (refused["stage"], refused["status"]) == ("processing", "failed")
    assert refused["last_error"].startswith("ObjectForbidden: access denied reading s3://")
    assert "s3:GetObject" in refused["last_error"]


def test_an_object_gone_since_it_was_registered_fails_that_file_as_missing(
    service_env, s3, tmp_path
) -> None:
    """S3 answers 404 (the stage may list the bucket): the file fails as missing."""
    from droughtwatch_inference.adapters.ledger import Ledger
    from droughtwatch_inference.records import RawObject

    gone = "raw/2026-11-26/gone"
    with psycopg.connect(service_env["DROUGHTWATCH_DATABASE_DSN"], autocommit=True) as conn:
        Ledger(conn).register(
            DATA_BUCKET, [(RawObject(gone, "0" * 32, 10), dt.date(2026, 11, 26))], "earlier"
        )
    _put(s3, "raw/2026-11-27/present", _raw_file(tmp_path / "present", 3))
    response = handler({"run_id": "r2"}, Context())
    assert response["statusCode"] == 200, response
    counts = response["body"]["processing"]
    assert (counts["files_done"], counts["files_failed"]) == (1, 1)
    row = {r["raw_key"]: r for r in _rows(service_env["DROUGHTWATCH_DATABASE_DSN"])}[gone]
    assert row["status"] == "failed"
    assert row["last_error"].startswith(f"ObjectMissing: s3://{DATA_BUCKET}/{gone} does not exist")
