"""Every object under raw/ is accounted for in the ledger: a file of any name, an empty file,
a job marker, a README, a file whose first record fails its CRC, the same content under a
second name, and a replaced file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import psycopg
from droughtwatch_inference.handlers.plan import handler as plan
from droughtwatch_inference.handlers.processing import handler as process
from droughtwatch_preprocess import encode_example, write_tfrecord

DATA_BUCKET = "dw-test-data"
DAY = "raw/2026-11-27/"


class Context:
    def get_remaining_time_in_millis(self) -> int:
        return 900_000


def _raw_file(path: Path, n: int, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    payloads = [
        encode_example(rng.integers(2, 255, size=(11, 65, 65), dtype=np.uint8), label=i % 4)
        for i in range(n)
    ]
    write_tfrecord(path, payloads)
    return path


def _put_bytes(s3, key: str, data: bytes) -> None:
    s3.put_object(Bucket=DATA_BUCKET, Key=key, Body=data)


def _ledger(dsn: str) -> dict[str, dict]:
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT * FROM ledger ORDER BY id")
        names = [d.name for d in cur.description]
        rows = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    return {row["raw_key"].removeprefix(DAY) + f"@{row['id']}": row for row in rows}


def _by_name(dsn: str) -> dict[str, dict]:
    return {key.split("@")[0]: row for key, row in _ledger(dsn).items()}


def _run() -> dict:
    """Plan registers what is new, then Processing takes it: Processing's counts, and how
    many objects Plan registered (``registered``)."""
    planned = plan({"run_id": "r1"}, Context())
    assert planned["statusCode"] == 200, planned
    response = process({"run_id": "r1"}, Context())
    assert response["statusCode"] == 200, response
    return {**response["body"]["processing"], "registered": planned["body"]["plan"]["registered"]}


def test_a_data_file_named_with_an_underscore_is_registered_and_processed(
    service_env, s3, tmp_path
) -> None:
    s3.upload_file(str(_raw_file(tmp_path / "x", 4)), DATA_BUCKET, f"{DAY}_late.tfrecord")
    counts = _run()
    row = _by_name(service_env["DROUGHTWATCH_DATABASE_DSN"])["_late.tfrecord"]
    assert counts["files_done"] == 1
    assert (row["stage"], row["status"], row["records"]) == ("inference", "pending", 4)


def test_an_empty_file_fails_as_empty_and_a_job_marker_is_skipped(service_env, s3) -> None:
    _put_bytes(s3, f"{DAY}empty.tfrecord", b"")
    _put_bytes(s3, f"{DAY}_SUCCESS", b"")
    counts = _run()
    rows = _by_name(service_env["DROUGHTWATCH_DATABASE_DSN"])
    empty, marker = rows["empty.tfrecord"], rows["_SUCCESS"]
    assert empty["status"] == "failed" and empty["records"] is None
    assert "empty file (0 bytes)" in empty["last_error"]
    assert (marker["status"], marker["note"]) == ("skipped", "an empty job marker file, not data")
    assert counts["files_failed"] == 1 and counts["files_done"] == 0
    assert counts["not_taken"] == [
        {"key": f"{DAY}_SUCCESS", "status": "skipped", "reason": marker["note"]}
    ]


def test_a_text_file_is_skipped_with_its_reason(service_env, s3) -> None:
    _put_bytes(s3, f"{DAY}README.md", b"# notes about this folder\n" * 4)
    counts = _run()
    row = _by_name(service_env["DROUGHTWATCH_DATABASE_DSN"])["README.md"]
    assert row["status"] == "skipped" and "not a TFRecord" in row["note"]
    assert counts["not_taken"][0]["key"] == f"{DAY}README.md"
    # settled: a second run neither claims nor counts it again
    again = _run()
    assert again["files_done"] == again["files_failed"] == again["remaining"] == 0
    assert again["not_taken"] == []


def test_a_file_whose_first_record_fails_its_crc_is_registered_and_failed(
    service_env, s3, tmp_path
) -> None:
    data = bytearray(_raw_file(tmp_path / "x", 3).read_bytes())
    data[100] ^= 0xFF  # inside the first record's payload: framing intact, CRC broken
    _put_bytes(s3, f"{DAY}corrupt-first.tfrecord", bytes(data))
    counts = _run()
    row = _by_name(service_env["DROUGHTWATCH_DATABASE_DSN"])["corrupt-first.tfrecord"]
    assert counts["files_failed"] == 1
    assert row["status"] == "failed" and row["stage"] == "processing"
    assert "InvalidRawFile" in row["last_error"] and "record 0" in row["last_error"]
    assert "checksum of the payload does not match" in row["last_error"]


def test_the_same_content_under_a_second_name_is_a_duplicate_of_the_first(
    service_env, s3, tmp_path
) -> None:
    raw = _raw_file(tmp_path / "x", 6)
    s3.upload_file(str(raw), DATA_BUCKET, f"{DAY}first.tfrecord")
    _run()
    s3.upload_file(str(raw), DATA_BUCKET, f"{DAY}copy.tfrecord")
    counts = _run()
    rows = _by_name(service_env["DROUGHTWATCH_DATABASE_DSN"])
    first, copy = rows["first.tfrecord"], rows["copy.tfrecord"]
    assert counts["files_done"] == 0 and counts["images"] == 0
    assert (copy["status"], copy["duplicate_of"]) == ("duplicate", f"{DAY}first.tfrecord")
    assert copy["source_digest"] == first["source_digest"] and copy["records"] == 6
    assert copy["processed_key"] is None
    assert first["stage"] == "inference" and first["status"] == "pending"
    assert counts["not_taken"] == [
        {"key": f"{DAY}copy.tfrecord", "status": "duplicate", "reason": copy["note"]}
    ]
    products = s3.list_objects_v2(Bucket=DATA_BUCKET, Prefix="processed/")["Contents"]
    assert len(products) == 1


def test_two_copies_in_one_run_give_one_original(service_env, s3, tmp_path) -> None:
    raw = _raw_file(tmp_path / "x", 3)
    for name in ("a.tfrecord", "b.tfrecord", "c.tfrecord"):
        s3.upload_file(str(raw), DATA_BUCKET, f"{DAY}{name}")
    counts = _run()
    rows = _by_name(service_env["DROUGHTWATCH_DATABASE_DSN"])
    assert counts["files_done"] == 1 and len(counts["not_taken"]) == 2
    statuses = sorted(row["status"] for row in rows.values())
    assert statuses == ["duplicate", "duplicate", "pending"]
    original = next(key for key, row in rows.items() if row["status"] == "pending")
    assert {row["duplicate_of"] for row in rows.values() if row["duplicate_of"]} == {
        f"{DAY}{original}"
    }


def test_a_replaced_file_supersedes_its_failed_old_version(service_env, s3, tmp_path) -> None:
    key = f"{DAY}scene.tfrecord"
    broken = bytearray(_raw_file(tmp_path / "broken", 3).read_bytes())
    broken[100] ^= 0xFF
    _put_bytes(s3, key, bytes(broken))
    assert _run()["files_failed"] == 1
    s3.upload_file(str(_raw_file(tmp_path / "x", 5)), DATA_BUCKET, key)
    counts = _run()
    old, new = sorted(
        _ledger(service_env["DROUGHTWATCH_DATABASE_DSN"]).values(), key=lambda r: r["id"]
    )
    assert counts["registered"] == 1 and counts["files_done"] == 1
    assert old["status"] == "superseded" and old["superseded_by"] == new["id"]
    assert old["last_error"] is not None  # its history stays
    assert "newer upload" in old["note"]
    assert (new["stage"], new["status"], new["records"]) == ("inference", "pending", 5)
    # a superseded row is never claimed again
    assert _run()["remaining"] == 0


def test_reuploading_the_same_bytes_under_the_same_key_is_the_same_version(
    service_env, s3, tmp_path
) -> None:
    raw = _raw_file(tmp_path / "x", 2)
    s3.upload_file(str(raw), DATA_BUCKET, f"{DAY}same.tfrecord")
    _run()
    s3.upload_file(str(raw), DATA_BUCKET, f"{DAY}same.tfrecord")
    counts = _run()
    assert counts["registered"] == 0 and counts["files_done"] == 0
    assert len(_ledger(service_env["DROUGHTWATCH_DATABASE_DSN"])) == 1


def test_gzip_and_zlib_tfrecords_are_processed_not_skipped(service_env, s3, tmp_path) -> None:
    import gzip
    import zlib

    plain = _raw_file(tmp_path / "x", 5).read_bytes()
    _put_bytes(s3, f"{DAY}a.tfrecord.gz", gzip.compress(plain))  # what `gzip` makes
    _put_bytes(s3, f"{DAY}b.tfrecord.zz", zlib.compress(plain))  # TensorFlow's "ZLIB"
    counts = _run()
    rows = _by_name(service_env["DROUGHTWATCH_DATABASE_DSN"])
    assert counts["files_done"] == 2 and counts["not_taken"] == []
    for name in ("a.tfrecord.gz", "b.tfrecord.zz"):
        assert (rows[name]["stage"], rows[name]["status"], rows[name]["records"]) == (
            "inference",
            "pending",
            5,
        )


def test_a_skipped_file_names_what_it_is(service_env, s3) -> None:
    _put_bytes(s3, f"{DAY}notes.txt", b"field notes, day 3\n" * 10)
    _put_bytes(s3, f"{DAY}photo.png", b"\x89PNG\r\n\x1a\n" + bytes(200))
    _run()
    rows = _by_name(service_env["DROUGHTWATCH_DATABASE_DSN"])
    assert rows["notes.txt"]["note"] == "not a TFRecord file: text file"
    assert rows["photo.png"]["note"] == "not a TFRecord file: PNG image"
