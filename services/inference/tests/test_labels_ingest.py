"""Label files in (logic/labels.py over adapters/labels.py) against a real PostgreSQL, as the
stages' role: each new file version read once, whole or not at all; bad files fail alone and are
recorded with their error; a later upload replaces a label and keeps what it replaced; ids of
images not predicted yet are counted, not refused. Then through the Plan handler, whose first
step this is, against moto S3."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path
from typing import Any

import psycopg
import pytest
from droughtwatch_contract.keys import KeyLayout
from droughtwatch_inference.adapters.folder_store import FolderStore
from droughtwatch_inference.adapters.labels import Labels
from droughtwatch_inference.adapters.ledger import Ledger
from droughtwatch_inference.handlers.plan import handler
from droughtwatch_inference.logic.labels import ingest_labels
from droughtwatch_inference.records import RawObject
from droughtwatch_preprocess import image_id

BUCKET = "data"
LAYOUT = KeyLayout()
PREDICTED = hashlib.sha256(b"a predicted raw file").hexdigest()
LATE = hashlib.sha256(b"a raw file not predicted yet").hexdigest()


@pytest.fixture
def conn(database_dsn: str):
    with psycopg.connect(database_dsn, autocommit=True) as connection:
        yield connection


@pytest.fixture
def store(tmp_path: Path) -> FolderStore:
    store = FolderStore(tmp_path / "buckets")
    store.create_bucket(BUCKET)
    return store


def predicted_file(conn: psycopg.Connection, digest: str, records: int) -> None:
    """A raw file that went through Processing and Inference, as the ledger records it."""
    ledger = Ledger(conn)
    raw_key = LAYOUT.raw_key(f"{digest[:8]}.tfrecord", dt.date(2026, 12, 1))
    ledger.register(BUCKET, [(RawObject(raw_key, "etag", 100), dt.date(2026, 12, 1))], "seed")
    claim = {"max_attempts": 3, "lease_seconds": 600}
    entry = ledger.claim("processing", **claim)
    ledger.complete(
        entry.id, "processing", source_digest=digest, processed_key="p", records=records,
        images=records, dropped=0,
    )  # fmt: skip
    entry = ledger.claim("inference", **claim)
    ledger.complete(
        entry.id, "inference", predictions_key=f"predictions/{digest[:12]}.parquet",
        predicted_images=records, model_name="m", model_version="v",
    )  # fmt: skip


def put(store: FolderStore, tmp_path: Path, name: str, body: bytes) -> str:
    path = tmp_path / "uploads" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(body)
    key = LAYOUT.label_key(name)
    store.upload(path, BUCKET, key)
    return key


def csv(*rows: tuple[str, str]) -> bytes:
    return ("id,label\n" + "".join(f"{i},{label}\n" for i, label in rows)).encode()


def labels_table(conn: psycopg.Connection) -> dict[str, tuple[Any, ...]]:
    rows = conn.execute(
        "SELECT image_id, label, source_key, previous_label, previous_source_key, seq FROM labels"
    ).fetchall()
    return {row[0]: row[1:] for row in rows}


def ingest(store: FolderStore, conn: psycopg.Connection, run_id: str = "run-1") -> dict:
    outcomes = ingest_labels(store, Labels(conn), BUCKET, LAYOUT, run_id)
    return {o.key: o for o in outcomes}


def test_good_files_load_and_each_bad_file_fails_alone_with_nothing_loaded(
    conn, store, tmp_path
) -> None:
    predicted_file(conn, PREDICTED, records=10)
    ids = [image_id(PREDICTED, k) for k in range(6)]
    good = put(store, tmp_path, "good.csv", csv((ids[0], "0"), (ids[1], "3")))
    bad = {
        put(store, tmp_path, "unknown-class.csv", csv((ids[2], "1"), (ids[3], "5"))): (
            "line 3: label '5' is neither a class name"
        ),
        put(store, tmp_path, "two-labels.csv", csv((ids[2], "1"), (ids[2], "2"))): (
            f"line 3: id {ids[2]} is labelled '2' here and '1' on line 2"
        ),
        put(store, tmp_path, "no-label-column.csv", f"id\n{ids[4]}\n".encode()): (
            "missing column(s) label"
        ),
        put(store, tmp_path, "scan.png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"): (
            "neither CSV (UTF-8 text) nor Parquet"
        ),
        put(store, tmp_path, "empty.csv", b""): "empty file (0 bytes)",
    }
    late = put(store, tmp_path, "zz-late.csv", csv((ids[5], "2")))
    outcomes = ingest(store, conn)
    assert set(outcomes) == {good, late, *bad}
    assert (outcomes[good].status, outcomes[good].new_labels) == ("ingested", 2)
    for key, message in bad.items():
        outcome = outcomes[key]
        assert outcome.status == "failed", key
        assert outcome.error.startswith(f"InvalidLabelFile: {key}: "), outcome.error
        assert message in outcome.error, outcome.error
    # only the good files' labels: nothing of a bad file, not even its good rows
    assert {i: row[0] for i, row in labels_table(conn).items()} == {
        ids[0]: "0",
        ids[1]: "3+",
        ids[5]: "2",
    }
    recorded = conn.execute(
        "SELECT key, status, label_rows, error IS NOT NULL, run_id FROM label_files ORDER BY key"
    ).fetchall()
    assert [(k, s) for k, s, *_ in recorded] == sorted(
        [(good, "ingested"), (late, "ingested")] + [(k, "failed") for k in bad]
    )
    assert all(run == "run-1" for *_, run in recorded)
    # every version is read once: a second run reads nothing
    assert ingest(store, conn, "run-2") == {}


def test_a_fixed_upload_of_a_failed_file_is_a_new_version_and_is_read(
    conn, store, tmp_path
) -> None:
    one = image_id(PREDICTED, 1)
    key = put(store, tmp_path, "survey.csv", csv((one, "seven")))
    assert ingest(store, conn)[key].status == "failed"
    put(store, tmp_path, "survey.csv", csv((one, "1")))
    fixed = ingest(store, conn, "run-2")[key]
    assert (fixed.status, fixed.new_labels) == ("ingested", 1)
    assert labels_table(conn)[one][:2] == ("1", key)


def test_a_later_label_replaces_the_earlier_one_and_says_what_it_replaced(
    conn, store, tmp_path
) -> None:
    a, b = image_id(PREDICTED, 0), image_id(PREDICTED, 1)
    first = put(store, tmp_path, "first.csv", csv((a, "0"), (b, "1")))
    ingest(store, conn)
    before = labels_table(conn)
    second = put(store, tmp_path, "second.csv", csv((a, "2"), (b, "1")))
    outcome = ingest(store, conn, "run-2")[second]
    assert (outcome.new_labels, outcome.replaced, outcome.unchanged) == (0, 1, 1)
    after = labels_table(conn)
    assert after[a][:4] == ("2", second, "0", first)
    assert after[a][4] > max(row[4] for row in before.values())  # a newer label number
    assert after[b] == before[b]  # the same label again changes nothing


def test_ids_of_images_not_predicted_yet_are_counted_and_kept(conn, store, tmp_path) -> None:
    predicted_file(conn, PREDICTED, records=3)
    rows = [
        (image_id(PREDICTED, 0), "0"),
        (image_id(PREDICTED, 2), "1"),
        (image_id(PREDICTED, 3), "1"),  # past the file's 3 records
        (image_id(LATE, 0), "2"),  # its file is not predicted yet
    ]
    key = put(store, tmp_path, "mixed.csv", csv(*rows))
    outcome = ingest(store, conn)[key]
    assert (outcome.status, outcome.label_rows, outcome.unknown_ids) == ("ingested", 4, 2)
    assert len(labels_table(conn)) == 4
    (unknown,) = conn.execute("SELECT unknown_ids FROM label_files").fetchone()
    assert unknown == 2


def test_a_file_the_parser_did_not_foresee_fails_alone_and_does_not_stop_the_run(
    conn, store, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from droughtwatch_inference.logic import labels as logic

    real = logic.parse_label_file

    def parse(body: bytes, name: str):
        if name.endswith("odd.csv"):
            raise RuntimeError("an unforeseen case")
        return real(body, name)

    monkeypatch.setattr(logic, "parse_label_file", parse)
    odd = put(store, tmp_path, "odd.csv", csv((image_id(PREDICTED, 0), "0")))
    fine = put(store, tmp_path, "fine.csv", csv((image_id(PREDICTED, 1), "1")))
    outcomes = ingest(store, conn)
    assert outcomes[odd].status == "failed"
    assert outcomes[odd].error == (
        "labels/odd.csv: cannot be read as a label file (RuntimeError: an unforeseen case)"
    )
    assert outcomes[fine].status == "ingested"
    assert list(labels_table(conn)) == [image_id(PREDICTED, 1)]


def test_a_version_another_run_has_taken_is_left_to_it(conn, database_dsn) -> None:
    labels = {image_id(PREDICTED, 0): "0"}
    with psycopg.connect(database_dsn, autocommit=True) as other:
        assert Labels(other).ingest(BUCKET, "labels/x.csv", "e1", 10, "run-a", labels)
    assert Labels(conn).ingest(BUCKET, "labels/x.csv", "e1", 10, "run-b", labels) is None
    assert Labels(conn).record_failed(BUCKET, "labels/x.csv", "e1", 10, "run-b", "no") is None
    assert conn.execute("SELECT count(*), min(run_id) FROM label_files").fetchone() == (1, "run-a")


def _plan_event(run_id: str) -> dict[str, Any]:
    return {"body": {"run_id": run_id, "input": {}, "rounds_done": 0, "concurrency": 1}}


def test_the_plan_handler_ingests_label_files_first(service_env, s3) -> None:
    bucket = service_env["DROUGHTWATCH_DATA_BUCKET"]
    s3.put_object(Bucket=bucket, Key="labels/ok.csv", Body=csv((image_id(LATE, 0), "3+")))
    s3.put_object(Bucket=bucket, Key="labels/bad.csv", Body=b"id,label\n")
    s3.put_object(Bucket=bucket, Key="labels/", Body=b"")  # a folder marker: not a file
    response = handler(_plan_event("run-1"), None)
    assert response["statusCode"] == 200, response
    files = {f["key"]: f for f in response["body"]["plan"]["label_files"]}
    assert set(files) == {"labels/ok.csv", "labels/bad.csv"}
    assert files["labels/ok.csv"]["status"] == "ingested"
    assert files["labels/ok.csv"]["unknown_ids"] == 1
    assert files["labels/bad.csv"]["status"] == "failed"
    assert "labels/bad.csv: empty file" in files["labels/bad.csv"]["error"]
    again = handler(_plan_event("run-2"), None)
    assert again["body"]["plan"]["label_files"] == []
