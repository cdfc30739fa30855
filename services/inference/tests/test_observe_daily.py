"""Observe's new signals through the handler, against moto S3 and a real PostgreSQL: model
quality, input drift and data quality per file, and the day pooled from its files."""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg
import pytest
from droughtwatch_contract.keys import KeyLayout
from droughtwatch_contract.settings import ObserveSettings, env_name
from droughtwatch_inference import predictions
from droughtwatch_inference.handlers.day import handler as pool_days
from droughtwatch_inference.handlers.observe import handler as observe
from droughtwatch_inference.logic.model_quality import NO_LABELS
from droughtwatch_inference.model.manifest import ModelManifest
from droughtwatch_preprocess import PIXELS
from droughtwatch_preprocess.summaries import feature_column
from psycopg.rows import dict_row
from scipy import stats

CLASSES = ("0", "1", "2", "3+")
SHARES = {"0": 0.55, "1": 0.2, "2": 0.15, "3+": 0.1}
MANIFEST = ModelManifest(
    contract_version=2,
    name="baseline",
    version="v1",
    channels=("B4", "NDVI"),
    classes=CLASSES,
    reference_class_shares=SHARES,
    reference_features="reference_features.parquet",
    reference_metrics={"accuracy": 0.9, "macro_f1": 0.8, "images": 1000},
)
DAY = dt.date(2026, 11, 20)
LAYOUT = KeyLayout()
FEATURES = tuple(feature_column(c) for c in ("B4", "NDVI", "NDMI", "EVI"))
CENTRES = dict(zip(FEATURES, (0.19, 0.25, -0.04, 0.2), strict=True))


def handler(event, context) -> dict:
    """Observe, then the day step, as an execution runs them: the day step's response, with
    Observe's counts beside its own (or Observe's response when Observe failed)."""
    observed = observe(event, context)
    if observed["statusCode"] != 200:
        return observed
    pooled = pool_days(event, context)
    return {**pooled, "body": {**pooled["body"], "observe": observed["body"]["observe"]}}


def _summaries(rng: np.random.Generator, n: int, shift: float = 0.0) -> dict[str, np.ndarray]:
    out = {c: rng.normal(m, 0.08, n) for c, m in CENTRES.items()}
    for channel in ("NDVI", "NDMI"):
        out[feature_column(channel)] = out[feature_column(channel)] + shift
    return out


REFERENCE = pd.DataFrame(_summaries(np.random.default_rng(0), 1000)).astype(np.float32)
REFERENCE_BYTES = REFERENCE.to_parquet()
REFERENCE_KEY = LAYOUT.reference_features_key(hashlib.sha256(REFERENCE_BYTES).hexdigest())


def _predictions(
    path: Path, seed: int, n: int, *, shift: float = 0.0, labelled: bool = True
) -> tuple[bytes, pd.DataFrame]:
    """A predictions file as Inference writes it (labels, summaries, quality counts), and its
    frame. About 70% of its predictions are right; one raw record of each file was blank."""
    rng = np.random.default_rng(seed)
    predicted = rng.choice(4, n, p=list(SHARES.values()))
    true = np.where(rng.random(n) < 0.7, predicted, rng.choice(4, n))
    probabilities = np.full((n, 4), 0.1, np.float32)
    probabilities[np.arange(n), predicted] = 0.7
    features = _summaries(rng, n, shift)
    table = predictions.build_table(
        np.array([f"{seed}-{i}" for i in range(n)]),
        probabilities,
        MANIFEST,
        true_labels=[CLASSES[k] if labelled else None for k in true],
        features=features,
        reference_features_key=REFERENCE_KEY,
    )
    quality = {
        "records": n + 1,
        "dropped_blank": 1,
        "pixels": {
            "images": n,
            "pixels_per_image": PIXELS,
            "zero": {"B4": 0, "B9": 10 * n},
            "saturated": {"B4": n, "B9": 0},
            "nonfinite": {"NDVI": 0, "NDMI": 0, "EVI": 2},
        },
    }
    predictions.write([table], path, quality=quality)
    frame = pd.DataFrame({"label": [CLASSES[k] for k in predicted]})
    frame["true_label"] = [CLASSES[k] if labelled else None for k in true]
    for column, values in features.items():
        frame[column] = values.astype(np.float32)
    return path.read_bytes(), frame


@pytest.fixture
def env(service_env, s3, monkeypatch) -> dict[str, str]:
    s3.put_object(
        Bucket=service_env["DROUGHTWATCH_DATA_BUCKET"], Key=REFERENCE_KEY, Body=REFERENCE_BYTES
    )
    return service_env


def _rows(dsn: str, sql: str, params: tuple = ()) -> list[dict]:
    with psycopg.connect(dsn, row_factory=dict_row) as conn:
        return conn.execute(sql, params).fetchall()


def _psi(counts: dict[str, int]) -> float:
    total = sum(counts.values())
    current = {c: (counts.get(c, 0) / total) or 1e-4 for c in CLASSES}
    return sum((SHARES[c] - current[c]) * math.log(SHARES[c] / current[c]) for c in CLASSES)


def _normed_wasserstein(current: pd.Series) -> float:
    reference = REFERENCE[current.name].astype(np.float64)
    return stats.wasserstein_distance(reference, current.astype(np.float64)) / float(
        np.std(reference)
    )


def _macro_f1(true: pd.Series, predicted: pd.Series) -> float:
    f1 = []
    for c in sorted(set(true) | set(predicted)):
        tp = int(((predicted == c) & (true == c)).sum())
        fp = int(((predicted == c) & (true != c)).sum())
        fn = int(((predicted != c) & (true == c)).sum())
        f1.append(2 * tp / (2 * tp + fp + fn))
    return sum(f1) / len(f1)


@pytest.mark.parametrize("file_reports", [True, False], ids=["with its report", "row only"])
def test_a_labelled_file_gets_quality_input_drift_and_data_quality(
    env, s3, tmp_path, ready_for_observe, monkeypatch, file_reports
) -> None:
    """The file's row holds the same values whether Evidently computed them for its report or
    logic.scores did without one."""
    monkeypatch.setenv(env_name(ObserveSettings, "save_file_reports"), str(file_reports).lower())
    body, frame = _predictions(tmp_path / "a", seed=1, n=120, shift=-0.1)
    seeded = ready_for_observe("scene-a", body, manifest=MANIFEST, day=DAY)

    response = handler({"run_id": "r1"}, None)

    assert response["statusCode"] == 200, response
    (row,) = _rows(env["DROUGHTWATCH_DATABASE_DSN"], "SELECT * FROM metrics")
    assert row["ledger_id"] == seeded["id"]
    assert row["labelled_images"] == 120
    assert row["accuracy"] == pytest.approx((frame["label"] == frame["true_label"]).mean())
    assert row["macro_f1"] == pytest.approx(_macro_f1(frame["true_label"], frame["label"]))
    confusion = pd.crosstab(frame["true_label"], frame["label"])
    assert row["confusion"]["0"]["0"] == confusion.at["0", "0"]
    assert sum(sum(r.values()) for r in row["confusion"].values()) == 120
    assert row["per_class"]["1"]["support"] == (frame["true_label"] == "1").sum()
    assert row["reference_accuracy"] == 0.9
    assert row["accuracy_drop"] == pytest.approx(0.9 - row["accuracy"])
    assert row["accuracy_alert"] is (row["accuracy_drop"] > 0.1)
    # input drift: NDVI and NDMI moved by more than one reference standard deviation
    assert set(row["feature_drift"]) == set(FEATURES)
    for column in FEATURES:
        assert row["feature_drift"][column] == pytest.approx(
            _normed_wasserstein(frame[column]), rel=1e-6
        )
    assert row["drifted_features"] == 2 and row["feature_drift_share"] == 0.5
    assert row["feature_drift_method"] == "wasserstein" and row["feature_drift_threshold"] == 0.3
    assert row["input_drift_detected"] is True
    # data quality from the file's counts
    assert (row["records"], row["dropped_blank"]) == (121, 1)
    assert row["blank_share"] == pytest.approx(1 / 121)
    assert row["missing_label_share"] == 0.0
    assert row["zero_share"]["B9"] == pytest.approx(10 / PIXELS)
    assert row["saturated_share"]["B4"] == pytest.approx(1 / PIXELS)
    assert row["nonfinite_share"]["EVI"] == pytest.approx(2 / (120 * PIXELS))
    assert row["notes"] == []

    if not file_reports:
        assert row["report_key"] is None
        return
    html = s3.get_object(Bucket=env["DROUGHTWATCH_DATA_BUCKET"], Key=row["report_key"])
    text = html["Body"].read().decode()
    for shown in (
        "Prediction drift",
        "Model quality",
        "Input drift",
        "Data quality",
        "Accuracy",
        "Drift detection method: Wasserstein distance (normed)",
        "blank records (dropped)",
        f"accuracy {row['accuracy']:.3f}",
    ):
        assert shown in text, shown


def test_an_unlabelled_file_has_no_quality_and_says_so(env, tmp_path, ready_for_observe) -> None:
    body, _ = _predictions(tmp_path / "a", seed=2, n=50, labelled=False)
    ready_for_observe("scene-a", body, manifest=MANIFEST, day=DAY)
    assert handler({"run_id": "r1"}, None)["body"]["observe"]["files_done"] == 1
    (row,) = _rows(env["DROUGHTWATCH_DATABASE_DSN"], "SELECT * FROM metrics")
    assert row["labelled_images"] == 0 and row["missing_label_share"] == 1.0
    assert row["accuracy"] is None and row["macro_f1"] is None
    assert row["per_class"] is None and row["confusion"] is None
    assert row["accuracy_drop"] is None and row["accuracy_alert"] is False
    assert row["notes"] == [NO_LABELS]
    assert row["feature_drift"] is not None  # the other signals are there


def test_the_day_pools_its_files(env, s3, tmp_path, ready_for_observe) -> None:
    dsn = env["DROUGHTWATCH_DATABASE_DSN"]
    body_a, a = _predictions(tmp_path / "a", seed=3, n=120)
    body_b, b = _predictions(tmp_path / "b", seed=4, n=100, shift=-0.2)
    ready_for_observe("scene-a", body_a, manifest=MANIFEST, day=DAY)
    ready_for_observe("scene-b", body_b, manifest=MANIFEST, day=DAY)

    response = handler({"run_id": "r1"}, None)

    assert response["statusCode"] == 200 and response["body"]["observe"]["failures"] == []
    assert response["body"]["day"]["failures"] == [] and response["body"]["day"]["days_done"] == 1
    (day,) = _rows(dsn, "SELECT * FROM daily_metrics")
    pooled = pd.concat([a, b], ignore_index=True)
    assert (day["batch_date"], day["model_name"], day["model_version"]) == (DAY, "baseline", "v1")
    assert day["files"] == 2 and day["images"] == 220 and day["run_id"] == "r1"
    assert day["min_images"] == 200 and day["enough_data"] is True
    counts = pooled["label"].value_counts().to_dict()
    assert day["class_counts"] == {c: counts.get(c, 0) for c in CLASSES}
    assert day["drift_score"] == pytest.approx(_psi(counts), rel=1e-9)
    assert day["labelled_images"] == 220
    assert day["accuracy"] == pytest.approx((pooled["label"] == pooled["true_label"]).mean())
    assert day["macro_f1"] == pytest.approx(_macro_f1(pooled["true_label"], pooled["label"]))
    for column in FEATURES:
        assert day["feature_drift"][column] == pytest.approx(
            _normed_wasserstein(pooled[column]), rel=1e-6
        )
    assert day["blank_share"] == pytest.approx(2 / 222)
    assert day["nonfinite_share"]["EVI"] == pytest.approx(4 / (220 * PIXELS))
    metrics_ids = [r["id"] for r in _rows(dsn, "SELECT id FROM metrics ORDER BY id")]
    assert day["last_metrics_id"] == max(metrics_ids)
    assert day["report_key"] == LAYOUT.daily_report_key(DAY, "baseline", "v1")
    s3.head_object(Bucket=env["DROUGHTWATCH_DATA_BUCKET"], Key=day["report_key"])

    # nothing new: the day is not recomputed
    assert handler({"run_id": "r2"}, None)["statusCode"] == 200
    (again,) = _rows(dsn, "SELECT * FROM daily_metrics")
    assert again == day
    # a third file of the same day: the day is pooled again, with it
    body_c, _ = _predictions(tmp_path / "c", seed=5, n=30)
    ready_for_observe("scene-c", body_c, manifest=MANIFEST, day=DAY)
    assert handler({"run_id": "r3"}, None)["statusCode"] == 200
    (third,) = _rows(dsn, "SELECT * FROM daily_metrics")
    assert (third["files"], third["images"], third["run_id"]) == (3, 250, "r3")


def test_a_day_below_the_minimum_raises_no_alert(
    env, tmp_path, ready_for_observe, monkeypatch
) -> None:
    dsn = env["DROUGHTWATCH_DATABASE_DSN"]
    monkeypatch.setenv("DROUGHTWATCH_MIN_DAILY_IMAGES", "150")
    small, big = dt.date(2026, 11, 21), dt.date(2026, 11, 22)
    # 149 and exactly 150 images, both with strong input drift
    ready_for_observe(
        "small",
        _predictions(tmp_path / "s", seed=6, n=149, shift=-0.3)[0],
        manifest=MANIFEST,
        day=small,
    )
    ready_for_observe(
        "big",
        _predictions(tmp_path / "b", seed=7, n=150, shift=-0.3)[0],
        manifest=MANIFEST,
        day=big,
    )

    assert handler({"run_id": "r1"}, None)["statusCode"] == 200

    days = {
        r["batch_date"]: r for r in _rows(dsn, "SELECT * FROM daily_metrics ORDER BY batch_date")
    }
    below, at = days[small], days[big]
    assert below["enough_data"] is False and below["min_images"] == 150
    assert below["feature_drift_share"] == 0.5  # the scores are still recorded ...
    assert below["input_drift_detected"] is False and below["drift_detected"] is False
    assert below["accuracy_alert"] is False  # ... but nothing is detected
    assert any("not enough data: 149 images, fewer than 150" in n for n in below["notes"])
    assert at["enough_data"] is True and at["input_drift_detected"] is True
    # the per-file rows are not gated: the day is the unit of alerts
    file_rows = _rows(dsn, "SELECT input_drift_detected FROM metrics ORDER BY id")
    assert [r["input_drift_detected"] for r in file_rows] == [True, True]


def test_a_day_that_cannot_be_pooled_is_reported_and_tried_again(
    env, s3, tmp_path, ready_for_observe
) -> None:
    dsn, bucket = env["DROUGHTWATCH_DATABASE_DSN"], env["DROUGHTWATCH_DATA_BUCKET"]
    broken, fine = dt.date(2026, 11, 21), dt.date(2026, 11, 22)
    gone = ready_for_observe(
        "gone", _predictions(tmp_path / "g", seed=8, n=20)[0], manifest=MANIFEST, day=broken
    )
    ready_for_observe(
        "kept", _predictions(tmp_path / "k", seed=9, n=20)[0], manifest=MANIFEST, day=fine
    )
    response = handler({"run_id": "r1"}, None)
    assert response["statusCode"] == 200
    assert [r["batch_date"] for r in _rows(dsn, "SELECT batch_date FROM daily_metrics")] == [
        broken,
        fine,
    ]
    # now the file goes missing and another file of its day arrives: pooling fails for that day
    s3.delete_object(Bucket=bucket, Key=gone["predictions_key"])
    ready_for_observe(
        "late", _predictions(tmp_path / "l", seed=10, n=20)[0], manifest=MANIFEST, day=broken
    )
    response = handler({"run_id": "r2"}, None)
    assert response["statusCode"] == 200, response
    (failure,) = response["body"]["day"]["failures"]
    assert failure["key"] == "day 2026-11-21 baseline v1"
    assert failure["error"].startswith("ObjectMissing:")
    (day,) = _rows(dsn, "SELECT files, run_id FROM daily_metrics WHERE batch_date = %s", (broken,))
    assert day == {"files": 1, "run_id": "r1"}  # the old row stays; the day is still stale
    restored, _ = _predictions(tmp_path / "g", seed=8, n=20)
    s3.put_object(Bucket=bucket, Key=gone["predictions_key"], Body=restored)
    response = handler({"run_id": "r3"}, None)
    assert response["body"]["day"]["failures"] == []
    (day,) = _rows(dsn, "SELECT files, run_id FROM daily_metrics WHERE batch_date = %s", (broken,))
    assert day == {"files": 2, "run_id": "r3"}


def test_missing_reference_summaries_leave_input_drift_out_and_say_so(
    env, s3, tmp_path, ready_for_observe
) -> None:
    s3.delete_object(Bucket=env["DROUGHTWATCH_DATA_BUCKET"], Key=REFERENCE_KEY)
    ready_for_observe(
        "scene-a", _predictions(tmp_path / "a", seed=11, n=30)[0], manifest=MANIFEST, day=DAY
    )
    response = handler({"run_id": "r1"}, None)
    assert response["statusCode"] == 200 and response["body"]["observe"]["files_done"] == 1
    (row,) = _rows(env["DROUGHTWATCH_DATABASE_DSN"], "SELECT * FROM metrics")
    assert row["feature_drift"] is None and row["input_drift_detected"] is False
    assert f"s3://{env['DROUGHTWATCH_DATA_BUCKET']}/{REFERENCE_KEY} are missing" in row["notes"][0]
    assert row["accuracy"] is not None
