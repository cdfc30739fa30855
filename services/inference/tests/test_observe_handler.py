"""The Observe handler against moto S3 and a real PostgreSQL: metrics row, HTML report, ledger."""

from __future__ import annotations

import datetime as dt
import json
import socket
from pathlib import Path

import numpy as np
import psycopg
import pytest
from droughtwatch_contract.keys import KeyLayout
from droughtwatch_contract.settings import ObserveSettings, env_name
from droughtwatch_inference import predictions
from droughtwatch_inference.handlers.day import handler as pool_days
from droughtwatch_inference.handlers.observe import handler
from droughtwatch_inference.model.manifest import ModelManifest
from droughtwatch_inference.runtime_settings import cached
from psycopg.rows import dict_row

CLASSES = ("0", "1", "2", "3")
MANIFEST = ModelManifest(
    name="baseline",
    version="2026.11.1",
    channels=("B1", "B2"),
    classes=CLASSES,
    reference_class_shares={"0": 0.6, "1": 0.15, "2": 0.15, "3": 0.1},
)
BATCH_DATE = dt.date(2026, 11, 20)
LAYOUT = KeyLayout()  # the default prefixes, as service_env leaves them
FILE_REPORTS = env_name(ObserveSettings, "save_file_reports")
DAY_REPORT = env_name(ObserveSettings, "save_html_report")


def _predictions_file(path: Path, label_indices: list[int]) -> bytes:
    probabilities = np.full((len(label_indices), len(CLASSES)), 0.1, dtype=np.float32)
    probabilities[np.arange(len(label_indices)), label_indices] = 0.7
    ids = np.array([f"img-{i}" for i in range(len(label_indices))])
    predictions.write([predictions.build_table(ids, probabilities, MANIFEST)], path)
    return path.read_bytes()


def _rows(dsn: str, table: str) -> list[dict]:
    with psycopg.connect(dsn, row_factory=dict_row) as conn:
        return conn.execute(f"SELECT * FROM {table} ORDER BY id").fetchall()


def _report_keys(s3, bucket: str, daily: bool = False) -> list[str]:
    """The reports of files (or, with ``daily``, of days) in the bucket."""
    prefix = LAYOUT.daily_reports if daily else LAYOUT.reports
    listing = s3.list_objects_v2(Bucket=bucket, Prefix=prefix)
    return [item["Key"] for item in listing.get("Contents", [])]


def test_observe_records_metrics_uploads_the_report_and_completes_the_file(
    service_env, s3, tmp_path, ready_for_observe, monkeypatch
) -> None:
    monkeypatch.setenv(FILE_REPORTS, "true")
    dsn, bucket = service_env["DROUGHTWATCH_DATABASE_DSN"], service_env["DROUGHTWATCH_DATA_BUCKET"]
    labels = [0, 0, 0, 0, 0, 1, 1, 2, 2, 3]  # shares 0.5, 0.2, 0.2, 0.1
    seeded = ready_for_observe(
        "scene-a", _predictions_file(tmp_path / "a", labels), manifest=MANIFEST, day=BATCH_DATE
    )

    response = handler({"run_id": "run-obs-1", "input": {"trigger": "test"}}, None)

    assert response["statusCode"] == 200, response
    counts = response["body"]["observe"]
    assert counts["files_done"] == 1 and counts["files_failed"] == 0 and counts["images"] == 10
    assert counts["remaining"] == 0
    (metrics,) = _rows(dsn, "metrics")
    assert metrics["ledger_id"] == seeded["id"]
    assert metrics["predictions_key"] == seeded["predictions_key"]
    assert metrics["report_key"] == seeded["report_key"]
    assert metrics["batch_date"] == BATCH_DATE
    assert metrics["run_id"] == "run-obs-1"
    assert (metrics["model_name"], metrics["model_version"]) == ("baseline", "2026.11.1")
    assert metrics["images"] == 10
    assert metrics["class_counts"] == {"0": 5, "1": 2, "2": 2, "3": 1}
    assert metrics["class_shares"] == {"0": 0.5, "1": 0.2, "2": 0.2, "3": 0.1}
    assert metrics["most_common_class"] == "0" and metrics["most_common_share"] == 0.5
    assert metrics["missing_share"] == 0.0
    # PSI by hand: (0.6-0.5)ln(0.6/0.5) + 2 x (0.15-0.2)ln(0.15/0.2) + 0
    psi = 0.1 * np.log(0.6 / 0.5) + 2 * (-0.05) * np.log(0.15 / 0.2)
    assert metrics["drift_score"] == pytest.approx(psi, rel=1e-9)
    assert metrics["drift_method"] == "psi" and metrics["drift_threshold"] == 0.25
    assert metrics["drift_detected"] is False
    assert metrics["computed_at"] is not None

    report = s3.get_object(Bucket=bucket, Key=seeded["report_key"])
    assert report["ContentType"] == "text/html"
    html = report["Body"].read()
    assert html.lstrip().lower().startswith(b"<!doctype html")
    assert html.rstrip().endswith(b"</html>")
    assert b"Unique Value Count: label" in html and b"Column 'label' missing values" in html
    assert b"Drift detection method: PSI. Drift score: 0.047" in html

    (row,) = _rows(dsn, "ledger")
    assert (row["stage"], row["status"]) == ("done", "done")
    assert row["report_key"] == seeded["report_key"] and row["observed_at"] is not None
    assert row["last_error"] is None
    (run,) = _rows(dsn, "runs")
    assert (run["stage"], run["status"], run["files_done"], run["images"]) == (
        "observe",
        "succeeded",
        1,
        10,
    )


def test_rerun_inserts_nothing_new(service_env, tmp_path, ready_for_observe) -> None:
    dsn = service_env["DROUGHTWATCH_DATABASE_DSN"]
    seeded = ready_for_observe(
        "scene-a", _predictions_file(tmp_path / "a", [0, 1, 2]), manifest=MANIFEST, day=BATCH_DATE
    )
    assert handler({"run_id": "r1"}, None)["body"]["observe"]["files_done"] == 1
    first = _rows(dsn, "metrics")

    again = handler({"run_id": "r2"}, None)
    assert again["statusCode"] == 200 and again["body"]["observe"]["files_done"] == 0

    # a file observed again (a retry after the metrics were written) keeps its one metrics row
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "UPDATE ledger SET stage = 'observe', status = 'pending' WHERE id = %s",
            (seeded["id"],),
        )
    retried = handler({"run_id": "r3"}, None)
    assert retried["body"]["observe"]["files_done"] == 1
    assert _rows(dsn, "metrics") == first
    assert _rows(dsn, "ledger")[0]["stage"] == "done"


def test_corrupt_predictions_file_fails_alone(
    service_env, s3, tmp_path, ready_for_observe, monkeypatch
) -> None:
    monkeypatch.setenv(FILE_REPORTS, "true")
    dsn = service_env["DROUGHTWATCH_DATABASE_DSN"]
    good = ready_for_observe(
        "good", _predictions_file(tmp_path / "g", [0, 1, 1, 3]), manifest=MANIFEST, day=BATCH_DATE
    )
    bad = ready_for_observe(
        "bad", b"PAR1 this is not parquet", manifest=MANIFEST, day=BATCH_DATE, images=4
    )

    response = handler({"run_id": "r1"}, None)

    assert response["statusCode"] == 200, response
    counts = response["body"]["observe"]
    assert counts["files_done"] == 1 and counts["files_failed"] == 1 and counts["images"] == 4
    (failure,) = counts["failures"]
    assert failure["key"] == bad["raw_key"] and failure["error"].startswith("InvalidPredictions:")
    rows = {row["id"]: row for row in _rows(dsn, "ledger")}
    assert (rows[good["id"]]["stage"], rows[good["id"]]["status"]) == ("done", "done")
    assert (rows[bad["id"]]["stage"], rows[bad["id"]]["status"]) == ("observe", "failed")
    assert rows[bad["id"]]["last_error"].startswith("InvalidPredictions:")
    assert rows[bad["id"]]["report_key"] is None
    assert [m["ledger_id"] for m in _rows(dsn, "metrics")] == [good["id"]]
    assert _report_keys(s3, service_env["DROUGHTWATCH_DATA_BUCKET"]) == [good["report_key"]]


def test_empty_predictions_file_is_observed_without_a_report(
    service_env, s3, tmp_path, ready_for_observe
) -> None:
    dsn = service_env["DROUGHTWATCH_DATABASE_DSN"]
    ready_for_observe(
        "empty", _predictions_file(tmp_path / "e", []), manifest=MANIFEST, day=BATCH_DATE
    )

    response = handler({"run_id": "r1"}, None)

    assert response["body"]["observe"]["files_done"] == 1, response
    (metrics,) = _rows(dsn, "metrics")
    assert metrics["images"] == 0 and metrics["class_counts"] == dict.fromkeys(CLASSES, 0)
    assert metrics["drift_score"] is None and metrics["drift_detected"] is False
    assert metrics["report_key"] is None and metrics["most_common_class"] is None
    assert _rows(dsn, "ledger")[0]["stage"] == "done"
    assert _report_keys(s3, service_env["DROUGHTWATCH_DATA_BUCKET"]) == []


def _observe_then_pool_days(run_id: str) -> dict:
    """Observe, then the execution's day step (as the state machine runs them); Observe's
    counts."""
    observed = handler({"run_id": run_id}, None)
    pooled = pool_days({"run_id": run_id}, None)
    assert pooled["statusCode"] == 200 and not pooled["body"]["day"]["days_failed"], pooled
    return observed["body"]["observe"]


def test_html_report_can_be_switched_off(
    service_env, s3, tmp_path, ready_for_observe, monkeypatch
) -> None:
    monkeypatch.setenv("DROUGHTWATCH_SAVE_HTML_REPORT", "false")
    dsn = service_env["DROUGHTWATCH_DATABASE_DSN"]
    ready_for_observe(
        "scene-a", _predictions_file(tmp_path / "a", [0, 1, 2]), manifest=MANIFEST, day=BATCH_DATE
    )

    assert _observe_then_pool_days("r1")["files_done"] == 1
    (metrics,) = _rows(dsn, "metrics")
    assert metrics["report_key"] is None and metrics["drift_score"] is not None
    assert _rows(dsn, "ledger")[0]["report_key"] is None
    assert _report_keys(s3, service_env["DROUGHTWATCH_DATA_BUCKET"]) == []
    assert _report_keys(s3, service_env["DROUGHTWATCH_DATA_BUCKET"], daily=True) == []


def test_by_default_a_file_gets_its_row_and_the_day_its_report(
    service_env, s3, tmp_path, ready_for_observe
) -> None:
    """Per-file reports are off by default: the file's row holds every value (counted, not
    run through Evidently), and the day's report is the one a user opens."""
    dsn, bucket = service_env["DROUGHTWATCH_DATABASE_DSN"], service_env["DROUGHTWATCH_DATA_BUCKET"]
    labels = [0, 0, 0, 0, 0, 1, 1, 2, 2, 3]  # shares 0.5, 0.2, 0.2, 0.1
    ready_for_observe(
        "scene-a", _predictions_file(tmp_path / "a", labels), manifest=MANIFEST, day=BATCH_DATE
    )

    assert _observe_then_pool_days("r1")["files_done"] == 1
    (metrics,) = _rows(dsn, "metrics")
    assert metrics["report_key"] is None and _rows(dsn, "ledger")[0]["report_key"] is None
    assert metrics["class_counts"] == {"0": 5, "1": 2, "2": 2, "3": 1}
    psi = 0.1 * np.log(0.6 / 0.5) + 2 * (-0.05) * np.log(0.15 / 0.2)
    assert metrics["drift_score"] == pytest.approx(psi, rel=1e-9)
    assert _report_keys(s3, bucket) == []
    with psycopg.connect(dsn) as conn:
        ((day_report,),) = conn.execute("SELECT report_key FROM daily_metrics").fetchall()
    assert day_report == LAYOUT.daily_report_key(BATCH_DATE, "baseline", "2026.11.1")
    assert _report_keys(s3, bucket, daily=True) == [day_report]


@pytest.mark.parametrize(
    ("day_report", "file_reports"), [(True, True), (False, True), (True, False), (False, False)]
)
def test_the_day_report_and_the_file_reports_have_a_switch_each(
    service_env, s3, tmp_path, ready_for_observe, monkeypatch, day_report, file_reports
) -> None:
    monkeypatch.setenv(DAY_REPORT, str(day_report).lower())
    monkeypatch.setenv(FILE_REPORTS, str(file_reports).lower())
    dsn, bucket = service_env["DROUGHTWATCH_DATABASE_DSN"], service_env["DROUGHTWATCH_DATA_BUCKET"]
    seeded = ready_for_observe(
        "scene-a", _predictions_file(tmp_path / "a", [0, 1, 2]), manifest=MANIFEST, day=BATCH_DATE
    )

    assert _observe_then_pool_days("r1")["files_done"] == 1
    (metrics,) = _rows(dsn, "metrics")
    expected = seeded["report_key"] if file_reports else None
    assert metrics["report_key"] == expected == _rows(dsn, "ledger")[0]["report_key"]
    assert metrics["drift_score"] is not None
    assert _report_keys(s3, bucket) == ([expected] if file_reports else [])
    daily = _report_keys(s3, bucket, daily=True)
    assert len(daily) == (1 if day_report else 0)


def test_unreachable_database_fails_the_stage_without_leaking_the_password(
    service_env, monkeypatch
) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    password = "s3cret-Pa55word"
    dsn = f"postgresql://droughtwatch:{password}@127.0.0.1:{port}/droughtwatch"
    monkeypatch.setenv("DROUGHTWATCH_DATABASE_DSN", dsn)
    monkeypatch.setenv("DROUGHTWATCH_DATABASE_RESUME_SECONDS", "0")  # no waiting for a resume
    cached.cache_clear()

    response = handler({"run_id": "r1"}, None)

    assert response["statusCode"] == 500
    assert response["body"]["error"] == "DatabaseUnavailable"
    assert f"127.0.0.1:{port}" in response["body"]["cause"]
    assert "after waiting" not in response["body"]["cause"]
    text = json.dumps(response)
    assert password not in text and dsn not in text
