"""Late labels through the Observe handler and the day step after it, against moto S3 and a
real PostgreSQL: a day whose images get labels after it was observed is recomputed from all its
labelled images (late labels merged by id, overriding the raw records'), counts where its labels
came from, re-evaluates the accuracy alert with the same rule and minimum, and regenerates its
report; the per-file rows keep what their files carried."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg
import pytest
from droughtwatch_contract.keys import KeyLayout
from droughtwatch_inference import predictions
from droughtwatch_inference.adapters.labels import Labels
from droughtwatch_inference.handlers.day import handler as pool_days
from droughtwatch_inference.handlers.observe import handler
from droughtwatch_inference.logic.daily import LABELS_LATER
from droughtwatch_inference.logic.model_quality import NO_LABELS
from droughtwatch_inference.model.manifest import ModelManifest
from droughtwatch_preprocess import image_id
from psycopg.rows import dict_row

CLASSES = ("0", "1", "2", "3+")
MANIFEST = ModelManifest(
    contract_version=2,
    name="baseline",
    version="v1",
    channels=("B4", "NDVI"),
    classes=CLASSES,
    reference_class_shares={"0": 0.55, "1": 0.2, "2": 0.15, "3+": 0.1},
    reference_metrics={"accuracy": 0.9, "macro_f1": 0.8, "images": 1000},
)
DAY = dt.date(2026, 12, 1)
LAYOUT = KeyLayout()


def _file(tmp: Path, name: str, n: int, seed: int, *, labelled: bool) -> tuple[bytes, pd.DataFrame]:
    """A predictions file of the raw file ``name`` (ids from the digest that the
    ready_for_observe fixture gives it), and its frame with the true classes."""
    digest = hashlib.sha256(name.encode()).hexdigest()
    rng = np.random.default_rng(seed)
    predicted = rng.choice(4, n)
    true = np.where(rng.random(n) < 0.6, predicted, rng.choice(4, n))
    probabilities = np.full((n, 4), 0.1, np.float32)
    probabilities[np.arange(n), predicted] = 0.7
    ids = np.array([image_id(digest, k) for k in range(n)])
    embedded = [CLASSES[k] if labelled else None for k in true]
    table = predictions.build_table(ids, probabilities, MANIFEST, true_labels=embedded)
    path = tmp / f"{name}.parquet"
    predictions.write([table], path)
    body = path.read_bytes()
    frame = pd.DataFrame(
        {"id": ids, "label": [CLASSES[k] for k in predicted], "true": [CLASSES[k] for k in true]}
    )
    return body, frame


def _day(dsn: str) -> dict:
    with psycopg.connect(dsn, row_factory=dict_row) as conn:
        (row,) = conn.execute("SELECT * FROM daily_metrics").fetchall()
    return row


def _add_labels(dsn: str, key: str, labels: dict[str, str]) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        assert Labels(conn).ingest("dw-test-data", key, "e", 1, "upload", labels) is not None


def _run(run_id: str) -> None:
    """What one execution does here: Observe (its item's files), then the day step."""
    assert handler({"run_id": run_id}, None)["statusCode"] == 200
    pooled = pool_days({"run_id": run_id}, None)
    assert pooled["statusCode"] == 200 and not pooled["body"]["day"]["days_failed"], pooled


def test_late_labels_recompute_the_days_quality_alert_and_report(
    service_env, s3, ready_for_observe, tmp_path
) -> None:
    dsn = service_env["DROUGHTWATCH_DATABASE_DSN"]
    body_a, a = _file(tmp_path, "unlabelled", 150, seed=1, labelled=False)
    body_b, b = _file(tmp_path, "labelled", 100, seed=2, labelled=True)
    ready_for_observe("unlabelled", body_a, manifest=MANIFEST, day=DAY)
    ready_for_observe("labelled", body_b, manifest=MANIFEST, day=DAY)
    _run("r1")
    before = _day(dsn)
    assert before["labelled_images"] == before["embedded_labels"] == 100
    assert before["late_labels"] == 0 and before["last_label_seq"] is None
    assert before["accuracy"] == pytest.approx((b["label"] == b["true"]).mean())
    # 100 labelled images are fewer than the minimum of 200: no accuracy alert, whatever it is
    assert before["accuracy_drop"] > before["accuracy_margin"]
    assert before["accuracy_alert"] is False
    assert any("fewer than 200: no accuracy alert" in n for n in before["notes"])
    with psycopg.connect(dsn) as conn:
        file_rows = conn.execute("SELECT * FROM metrics ORDER BY id").fetchall()

    # labels arrive for every image of the unlabelled file, and 20 of the labelled file's
    # images get a label other than the one their raw record carried
    overridden = b.iloc[:20]
    corrected = {
        i: CLASSES[(CLASSES.index(t) + 1) % 4]
        for i, t in zip(overridden["id"], overridden["true"], strict=True)
    }
    _add_labels(dsn, "labels/survey.csv", dict(zip(a["id"], a["true"], strict=True)))
    _add_labels(dsn, "labels/corrections.csv", corrected)
    _run("r2")

    after = _day(dsn)
    merged = pd.concat([a, b], ignore_index=True)
    merged["true"] = [
        corrected.get(i, t) for i, t in zip(merged["id"], merged["true"], strict=True)
    ]
    assert after["run_id"] == "r2" and after["files"] == 2
    assert after["labelled_images"] == 250
    assert (after["late_labels"], after["embedded_labels"], after["late_label_overrides"]) == (
        170,
        80,
        20,
    )
    assert after["accuracy"] == pytest.approx((merged["label"] == merged["true"]).mean())
    assert after["missing_label_share"] == 0.0
    # the same rule and minimum: 250 labelled images, the drop over the margin: the alert fires
    assert after["accuracy_drop"] == pytest.approx(0.9 - after["accuracy"])
    assert after["accuracy_alert"] is True
    with psycopg.connect(dsn) as conn:
        newest, received = conn.execute("SELECT max(seq), max(received_at) FROM labels").fetchone()
    assert after["last_label_seq"] == newest and after["labels_received_at"] == received
    assert any("170 labels come from label files" in n for n in after["notes"])
    # the day's report is written again, saying where its labels came from
    report = s3.get_object(Bucket=service_env["DROUGHTWATCH_DATA_BUCKET"], Key=after["report_key"])
    html = report["Body"].read().decode()
    assert "labels: 170 from label files" in html and "80 from the raw records" in html
    # the per-file rows stay as their files were observed
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT * FROM metrics ORDER BY id").fetchall() == file_rows

    # nothing new: the day is not recomputed
    _run("r3")
    assert _day(dsn) == after
    # labels of another raw file leave the day alone; a label that changes one of its images
    # makes it stale again
    _add_labels(dsn, "labels/elsewhere.csv", {image_id("ab" * 32, 0): "1"})
    _run("r4")
    assert _day(dsn) == after
    first = a["id"].iloc[0]
    _add_labels(dsn, "labels/fix.csv", {first: CLASSES[(CLASSES.index(a["true"].iloc[0]) + 2) % 4]})
    _run("r5")
    latest = _day(dsn)
    assert latest["run_id"] == "r5" and latest["last_label_seq"] > after["last_label_seq"]


def test_an_unlabelled_day_says_labels_may_come_later_and_fills_in_when_they_do(
    service_env, s3, ready_for_observe, tmp_path
) -> None:
    dsn = service_env["DROUGHTWATCH_DATABASE_DSN"]
    body, frame = _file(tmp_path, "field", 80, seed=3, labelled=False)
    ready_for_observe("field", body, manifest=MANIFEST, day=DAY)
    _run("r1")
    day = _day(dsn)
    assert day["accuracy"] is None and day["labelled_images"] == 0
    assert NO_LABELS in day["notes"] and LABELS_LATER in day["notes"]
    _add_labels(dsn, "labels/field.csv", dict(zip(frame["id"], frame["true"], strict=True)))
    _run("r2")
    day = _day(dsn)
    assert day["accuracy"] == pytest.approx((frame["label"] == frame["true"]).mean())
    assert day["labelled_images"] == day["late_labels"] == 80 and day["embedded_labels"] == 0
    assert LABELS_LATER not in day["notes"]
