"""The tools around late labels: `labels strip` (raw files without their labels, and the labels
by the ids the pipeline will give their images) and the check before `labels upload` (the
pipeline's own parser; ids of raw files without predictions counted from the bucket)."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from droughtwatch_contract.keys import KeyLayout
from droughtwatch_inference.adapters.folder_store import FolderStore
from droughtwatch_inference.errors import InvalidLabelFile
from droughtwatch_preprocess import CLASS_NAMES, decode_example, image_id, iter_records
from droughtwatch_tools import synthetic
from droughtwatch_tools.cli import app
from droughtwatch_tools.label_upload import check_and_upload
from droughtwatch_tools.strip_labels import strip_labels, stripped_paths
from typer.testing import CliRunner

LAYOUT = KeyLayout()
BUCKET = "data"


def test_a_stripped_file_keeps_every_record_but_its_label_and_the_labels_name_its_ids(
    tmp_path: Path,
) -> None:
    source = tmp_path / "scene.tfrecord"
    labels = synthetic.write_raw_file(source, np.random.default_rng(1), 12)
    raw, label_file = stripped_paths(source, tmp_path / "out")
    result = strip_labels(source, raw, label_file)
    assert (result.records, result.labelled) == (12, 12)
    assert label_file == tmp_path / "out" / "labels" / "scene.tfrecord.csv"
    before = [decode_example(p) for p in iter_records(source)]
    after = [decode_example(p) for p in iter_records(raw)]
    for old, new in zip(before, after, strict=True):
        assert "label" not in new
        assert {k: v for k, v in old.items() if k != "label"} == new
    digest = hashlib.sha256(raw.read_bytes()).hexdigest()
    with label_file.open(newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["id", "label"]
    assert rows[1:] == [[image_id(digest, k), CLASS_NAMES[int(c)]] for k, c in enumerate(labels)]


def test_the_upload_check_counts_ids_of_raw_files_without_predictions(tmp_path: Path) -> None:
    store = FolderStore(tmp_path / "buckets")
    store.create_bucket(BUCKET)
    predicted, late = (hashlib.sha256(name).hexdigest() for name in (b"a", b"b"))
    raw_key = LAYOUT.raw_key("a.tfrecord", dt.date(2026, 12, 1))
    products = tmp_path / "p.parquet"
    products.write_bytes(b"not read")
    store.upload(products, BUCKET, LAYOUT.predictions_key(raw_key, predicted))
    store.upload(products, BUCKET, LAYOUT.reference_features_key(late))  # not a predictions file
    path = tmp_path / "survey.csv"
    path.write_text(
        f"id,label\n{image_id(predicted, 0)},0\n{image_id(predicted, 1)},3\n{image_id(late, 0)},2\n"
    )
    checked, key = check_and_upload(path, store, BUCKET)
    assert key == "labels/survey.csv"
    assert checked.unknown_ids == 1 and checked.class_counts == {"0": 1, "2": 1, "3+": 1}
    assert store.path(BUCKET, key).read_bytes() == path.read_bytes()


def test_a_file_that_fails_the_check_is_not_uploaded(tmp_path: Path) -> None:
    store = FolderStore(tmp_path / "buckets")
    store.create_bucket(BUCKET)
    path = tmp_path / "survey.csv"
    path.write_text(f"id,label\n{image_id('ab' * 32, 0)},5\n")
    with pytest.raises(InvalidLabelFile, match=r"survey.csv: 1 bad row\(s\) of 1.*line 2"):
        check_and_upload(path, store, BUCKET)
    assert list(store.list(BUCKET, LAYOUT.labels)) == []


def test_upload_to_a_stacks_data_bucket_named_by_flag(
    s3: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "400")
    path = tmp_path / "survey.parquet"
    pq.write_table(pa.table({"id": [image_id("cd" * 32, 5)], "label": [3]}), path)
    result = CliRunner().invoke(
        app,
        ["labels", "upload", str(path), "--data-bucket", "dw-test-data", "--region", "eu-west-1"],
    )
    assert result.exit_code == 0, result.output
    assert "Parquet, 1 image id labelled (3+: 1)" in result.output
    assert "1 of 1 ids name a raw file without predictions yet" in result.output
    body = s3.get_object(Bucket="dw-test-data", Key="labels/survey.parquet")["Body"].read()
    assert body == path.read_bytes()
