"""The README's worked example of labels that arrive later, through the `droughtwatch` command:
the real shard without its labels is predicted (accuracy empty, with a note), its labels are
uploaded as a label file, and the next run fills in the day's accuracy with the hand count over
the predictions, every image labelled. And a bad label file, refused before the upload, or
failed by the run that reads it (exit code 3), with nothing of it loaded."""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd
import psycopg
import pytest
from droughtwatch_inference.logic.daily import LABELS_LATER
from droughtwatch_inference.logic.model_quality import NO_LABELS
from droughtwatch_tools.cli import app
from psycopg.rows import dict_row
from typer.testing import CliRunner

runner = CliRunner()
DATE = "2026-11-27"
DATA_BUCKET = "droughtwatch-local-data"


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, admin_dsn: str, tmp_path: Path, aws_env: None) -> str:
    monkeypatch.setenv("DROUGHTWATCH_DATABASE_DSN", admin_dsn)
    monkeypatch.setenv("DROUGHTWATCH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("COLUMNS", "400")
    return admin_dsn


def _day(dsn: str) -> dict:
    with psycopg.connect(dsn, row_factory=dict_row) as conn:
        (row,) = conn.execute("SELECT * FROM daily_metrics").fetchall()
        return row


def test_the_worked_example_fills_in_the_days_accuracy_when_its_labels_arrive(
    cli_env: str, tmp_path: Path, stored_model: Path, shard_path: Path
) -> None:
    folder = tmp_path / "unlabelled"
    stripped = runner.invoke(app, ["labels", "strip", str(shard_path), "--out", str(folder)])
    assert stripped.exit_code == 0, stripped.output
    labels_csv = folder / "labels" / "part-r-00012.csv"
    assert "81 records" in stripped.output and str(labels_csv) in stripped.output

    first = runner.invoke(app, ["local", "run", str(folder), "--date", DATE])
    assert first.exit_code == 0, first.output
    day = _day(cli_env)
    assert day["images"] == 79 and day["labelled_images"] == 0 and day["accuracy"] is None
    assert NO_LABELS in day["notes"] and LABELS_LATER in day["notes"]
    assert f"{DATE}: {NO_LABELS}; {LABELS_LATER}" in first.output  # under the days table

    upload = runner.invoke(app, ["labels", "upload", str(labels_csv), "--local"])
    assert upload.exit_code == 0, upload.output
    assert "CSV, 81 image ids labelled (0: 46, 1: 16, 2: 14, 3+: 5)" in upload.output
    assert "without predictions yet" not in upload.output  # the shard is predicted
    assert f"s3://{DATA_BUCKET}/labels/part-r-00012.csv" in upload.output

    second = runner.invoke(app, ["local", "run", str(folder), "--date", DATE])
    assert second.exit_code == 0, second.output
    assert "labels/part-r-00012.csv: 81 labels (81 new, 0 replaced, 0 unchanged)" in second.output
    day = _day(cli_env)
    # the hand count over the predictions file: its predicted label against the uploaded one
    home = tmp_path / "home" / "buckets" / DATA_BUCKET
    with psycopg.connect(cli_env) as conn:
        (key,) = conn.execute("SELECT predictions_key FROM ledger").fetchone()
    predicted = pd.read_parquet(home / key, columns=["id", "label"])
    with labels_csv.open(newline="") as f:
        truth = {row["id"]: row["label"] for row in csv.DictReader(f)}
    right = sum(
        truth[i] == label for i, label in zip(predicted["id"], predicted["label"], strict=True)
    )
    assert day["accuracy"] == pytest.approx(right / len(predicted))
    assert day["accuracy"] == pytest.approx(0.53, abs=0.01)  # the baseline on the real shard
    assert day["labelled_images"] == day["images"] == 79  # a labelled share of 1.0
    assert (day["late_labels"], day["embedded_labels"]) == (79, 0)
    row = next(x for x in second.output.splitlines() if x.strip().startswith(DATE))
    assert " 100% " in row and f" {day['accuracy']:.2f} " in row


def test_a_bad_label_file_is_refused_before_upload_or_fails_alone_in_the_run(
    cli_env: str, tmp_path: Path, stored_model: Path
) -> None:
    bad = tmp_path / "survey.csv"
    bad.write_text("id,label\n7e3c3030a68724bbab00-000003,seven\n")
    refused = runner.invoke(app, ["labels", "upload", str(bad), "--local"])
    assert refused.exit_code == 2
    assert "line 2: label 'seven' is neither a class name" in refused.output
    assert "nothing was uploaded" in refused.output
    assert runner.invoke(app, ["labels", "upload", str(bad)]).exit_code == 2  # no destination
    # the same file put in the bucket by other means: the run that reads it fails it alone
    labels = tmp_path / "home" / "buckets" / DATA_BUCKET / "labels"
    labels.mkdir(parents=True)
    (labels / "survey.csv").write_bytes(bad.read_bytes())
    (labels / "ok.csv").write_text("id,label\n7e3c3030a68724bbab00-000004,3\n")
    empty = tmp_path / "incoming"
    empty.mkdir()
    run = runner.invoke(app, ["local", "run", str(empty), "--date", DATE])
    assert run.exit_code == 3, run.output
    assert "labels/survey.csv: failed: InvalidLabelFile: labels/survey.csv:" in run.output
    assert "labels/ok.csv: 1 label (1 new" in run.output
    assert "1 label file failed" in run.output
    with psycopg.connect(cli_env) as conn:
        assert conn.execute("SELECT image_id, label FROM labels").fetchall() == [
            ("7e3c3030a68724bbab00-000004", "3+")
        ]


@pytest.mark.slow  # trains the demo's baseline, then five runs
def test_the_demo_with_late_labels_fills_in_the_drought_days_accuracy_and_alert_later(
    cli_env: str, tmp_path: Path
) -> None:
    import datetime as dt
    import json

    out = tmp_path / "demo-late"
    args = "demo --days 2 --drought-days 1 --images-per-day 220 --late-labels --out"
    result = runner.invoke(app, [*args.split(), str(out)])
    assert result.exit_code == 0, result.output
    summary = {d["date"]: d for d in json.loads((out / "summary.json").read_text())}
    *normal, drought = sorted(summary)
    # three days of imagery, then runs without imagery until the drought day's labels arrive
    arrived = (dt.date.fromisoformat(drought) + dt.timedelta(days=3)).isoformat()
    assert sorted(p.stem for p in (out / "executions").glob("*.json")) == [
        f"demo-{(dt.date.fromisoformat(normal[0]) + dt.timedelta(days=k)).isoformat()}"
        for k in range(5)
    ]
    day = summary[drought]
    assert day["labels_arrived"] == arrived and day["label_file"] == f"labels/drought-{drought}.csv"
    assert day["late_labels"] == day["labelled_images"] == day["images"] >= 200
    assert day["accuracy"] is not None and day["accuracy_alert"] is True
    assert all(
        summary[d]["late_labels"] == 0 and summary[d]["labels_arrived"] is None for d in normal
    )
    with psycopg.connect(cli_env) as conn:
        # the day's row was written by the run that read its labels, not by its own
        (run_id,) = conn.execute(
            "SELECT run_id FROM daily_metrics WHERE batch_date = %s", (drought,)
        ).fetchone()
        (read_by,) = conn.execute("SELECT run_id FROM label_files").fetchone()
    assert run_id == read_by == f"demo-{arrived}"
    said = " ".join(result.output.split())  # the table's caption wraps
    assert f"{drought}: labels/drought-{drought}.csv read by the run of {arrived}" in said
    assert "late labels, accuracy" in said and "+: from labels that arrived later" in said
    assert "1 of 2 days with the accuracy alert" in said
