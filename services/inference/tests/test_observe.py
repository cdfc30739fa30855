"""Observe's metrics against hand counts: class counts and shares, missing labels, and the PSI /
Jensen-Shannon drift score of the predicted classes against the model's reference shares."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from droughtwatch_inference import predictions
from droughtwatch_inference.errors import InvalidPredictions
from droughtwatch_inference.logic.observe import observe_predictions, reference_labels
from droughtwatch_inference.model.manifest import ModelManifest

CLASSES = ("0", "1", "2", "3")
REFERENCE = {"0": 0.6, "1": 0.15, "2": 0.15, "3": 0.1}
MANIFEST = ModelManifest(
    name="baseline",
    version="2026.11.1",
    channels=("B1", "B2"),
    classes=CLASSES,
    reference_class_shares=REFERENCE,
)


def _read(tmp_path: Path, label_indices: list[int]) -> tuple:
    """A predictions file written and read back, whose predicted classes are ``label_indices``."""
    probabilities = np.full((len(label_indices), len(CLASSES)), 0.1, dtype=np.float32)
    probabilities[np.arange(len(label_indices)), label_indices] = 0.7
    ids = np.array([f"img-{i}" for i in range(len(label_indices))])
    path = tmp_path / "predictions.parquet"
    predictions.write([predictions.build_table(ids, probabilities, MANIFEST)], path)
    return predictions.read(path)


def _labels(counts: dict[int, int]) -> list[int]:
    return [k for k, n in counts.items() for _ in range(n)]


def _psi(current: list[float], reference: list[float]) -> float:
    # Evidently floors a zero share at 0.0001 (when the smallest non-zero share is larger).
    current = [c or 1e-4 for c in current]
    return sum((r - c) * math.log(r / c) for c, r in zip(current, reference, strict=True))


def _js_distance(current: list[float], reference: list[float]) -> float:
    mid = [(c + r) / 2 for c, r in zip(current, reference, strict=True)]

    def kl(p: list[float]) -> float:
        return sum(a * math.log(a / m) for a, m in zip(p, mid, strict=True) if a > 0)

    return math.sqrt((kl(current) + kl(reference)) / 2)


REF = [REFERENCE[c] for c in CLASSES]


def test_reference_frame_keeps_the_shares_with_largest_remainder_rounding() -> None:
    labels = reference_labels(CLASSES, REFERENCE)
    assert len(labels) == 10_000
    assert [labels.count(c) for c in CLASSES] == [6000, 1500, 1500, 1000]
    thirds = reference_labels(("a", "b", "c"), {"a": 1 / 3, "b": 1 / 3, "c": 1 / 3}, rows=10)
    assert [thirds.count(c) for c in "abc"] == [4, 3, 3]  # the tie goes to the first class
    # shares that sum to 1 only within the manifest's tolerance still give exactly `rows` labels
    # (normalised: 3335.33 and 6664.67 rows; the one row left over goes to b's larger remainder)
    off = reference_labels(("a", "b"), {"a": 0.3337, "b": 0.6668}, rows=10_000)
    assert (off.count("a"), off.count("b")) == (3335, 6665)


def test_class_counts_and_shares_match_a_hand_count(tmp_path: Path) -> None:
    df, meta = _read(tmp_path, [0, 0, 0, 1, 1, 2, 0, 0, 1, 0])
    values, snapshot = observe_predictions(df, meta, method="psi", threshold=0.25)
    assert snapshot is not None
    assert values["images"] == 10
    assert values["class_counts"] == {"0": 6, "1": 3, "2": 1, "3": 0}
    assert values["class_shares"] == {"0": 0.6, "1": 0.3, "2": 0.1, "3": 0.0}
    assert values["most_common_class"] == "0" and values["most_common_share"] == 0.6
    assert values["missing_share"] == 0.0
    assert values["model_name"] == "baseline" and values["model_version"] == "2026.11.1"
    assert values["drift_method"] == "psi" and values["drift_threshold"] == 0.25
    # class 3 is absent from the file: its share is floored, so it weighs as a vanished class
    expected = _psi([0.6, 0.3, 0.1, 0.0], REF)
    assert values["drift_score"] == pytest.approx(expected, rel=1e-9)
    assert values["drift_detected"] is (expected >= 0.25)
    # plain Python values, ready for JSON and SQL
    assert type(values["drift_score"]) is float and type(values["missing_share"]) is float
    assert all(type(v) is int for v in values["class_counts"].values())
    assert all(type(v) is float for v in values["class_shares"].values())
    json.dumps(values)


def test_drift_is_zero_when_the_file_matches_the_reference(tmp_path: Path) -> None:
    df, meta = _read(tmp_path, _labels({0: 12, 1: 3, 2: 3, 3: 2}))
    values, _ = observe_predictions(df, meta, method="psi", threshold=0.25)
    assert values["drift_score"] == pytest.approx(0.0, abs=1e-12)
    assert values["drift_detected"] is False


def test_strong_shift_is_detected_and_mild_shift_is_not(tmp_path: Path) -> None:
    df, meta = _read(tmp_path, _labels({0: 25, 1: 25, 2: 25, 3: 25}))
    strong, _ = observe_predictions(df, meta, method="psi", threshold=0.25)
    assert strong["drift_score"] == pytest.approx(_psi([0.25] * 4, REF), rel=1e-9)
    assert strong["drift_score"] == pytest.approx(0.5461, abs=1e-4)
    assert strong["drift_detected"] is True

    df, meta = _read(tmp_path, _labels({0: 55, 1: 17, 2: 16, 3: 12}))
    mild, _ = observe_predictions(df, meta, method="psi", threshold=0.25)
    assert mild["drift_score"] == pytest.approx(_psi([0.55, 0.17, 0.16, 0.12], REF), rel=1e-9)
    assert 0 < mild["drift_score"] < 0.1
    assert mild["drift_detected"] is False


def test_same_distribution_scores_alike_at_every_sample_size(tmp_path: Path) -> None:
    exact = []
    for n in (40, 400, 10_000):  # the same shifted proportions, 25% each
        df, meta = _read(tmp_path, _labels({k: n // 4 for k in range(4)}))
        exact.append(observe_predictions(df, meta, method="psi", threshold=0.25)[0]["drift_score"])
    assert exact == pytest.approx([exact[0]] * 3, rel=1e-9)

    # samples drawn from a distribution: the score settles near the same value at any size,
    # where a p-value test would drift towards 0 as the sample grows.
    rng = np.random.default_rng(7)
    for shares, expected in ((REF, 0.0), ([0.25] * 4, 0.5461)):
        scores = []
        for n in (500, 10_000):
            df, meta = _read(tmp_path, list(rng.choice(4, size=n, p=shares)))
            scores.append(
                observe_predictions(df, meta, method="psi", threshold=0.25)[0]["drift_score"]
            )
        assert scores == pytest.approx([expected, expected], abs=0.05)


def test_detected_flag_follows_the_threshold(tmp_path: Path) -> None:
    df, meta = _read(tmp_path, _labels({0: 25, 1: 25, 2: 25, 3: 25}))  # PSI 0.5461
    assert observe_predictions(df, meta, method="psi", threshold=0.5)[0]["drift_detected"] is True
    assert observe_predictions(df, meta, method="psi", threshold=0.6)[0]["drift_detected"] is False


def test_a_score_exactly_at_the_threshold_is_drift(tmp_path: Path) -> None:
    """The metrics row's side of the one drift rule (the alert and the demo table agree:
    tests/test_grafana_sql.py)."""
    df, meta = _read(tmp_path, _labels({0: 25, 1: 25, 2: 25, 3: 25}))
    score = observe_predictions(df, meta, method="psi", threshold=0.25)[0]["drift_score"]
    at, _ = observe_predictions(df, meta, method="psi", threshold=score)
    assert at["drift_score"] == at["drift_threshold"] == score
    assert at["drift_detected"] is True
    above, _ = observe_predictions(df, meta, method="psi", threshold=math.nextafter(score, 1.0))
    assert above["drift_detected"] is False


def test_jensenshannon_method_gives_the_distance(tmp_path: Path) -> None:
    df, meta = _read(tmp_path, _labels({0: 25, 1: 25, 2: 25, 3: 25}))
    values, _ = observe_predictions(df, meta, method="jensenshannon", threshold=0.1)
    assert values["drift_method"] == "jensenshannon" and values["drift_threshold"] == 0.1
    assert values["drift_score"] == pytest.approx(_js_distance([0.25] * 4, REF), rel=1e-9)
    assert values["drift_detected"] is True


def test_empty_file_has_zero_shares_and_no_drift_score(tmp_path: Path) -> None:
    df, meta = _read(tmp_path, [])
    values, snapshot = observe_predictions(df, meta, method="psi", threshold=0.25)
    assert snapshot is None
    assert values["images"] == 0
    assert values["class_counts"] == dict.fromkeys(CLASSES, 0)
    assert values["class_shares"] == dict.fromkeys(CLASSES, 0.0)
    assert values["most_common_class"] is None and values["most_common_share"] is None
    assert values["missing_share"] == 0.0
    assert values["drift_score"] is None and values["drift_detected"] is False
    assert values["drift_method"] == "psi"


def test_missing_labels_count_in_the_missing_share(tmp_path: Path) -> None:
    df, meta = _read(tmp_path, _labels({0: 6, 1: 2, 2: 1, 3: 1}))
    df.loc[[0, 1], "label"] = None
    values, _ = observe_predictions(df, meta, method="psi", threshold=0.25)
    assert values["missing_share"] == pytest.approx(0.2)
    assert values["class_counts"] == {"0": 4, "1": 2, "2": 1, "3": 1}
    # shares are over all rows, so they and the missing share add up to one
    assert values["class_shares"] == pytest.approx({"0": 0.4, "1": 0.2, "2": 0.1, "3": 0.1})
    # drift compares the labelled rows' distribution (4/8, 2/8, 1/8, 1/8)
    assert values["drift_score"] == pytest.approx(_psi([0.5, 0.25, 0.125, 0.125], REF), rel=1e-9)

    df.loc[:, "label"] = None
    values, snapshot = observe_predictions(df, meta, method="psi", threshold=0.25)
    assert snapshot is not None and values["missing_share"] == 1.0
    assert values["drift_score"] is None and values["drift_detected"] is False
    assert values["most_common_class"] is None


def test_labels_outside_the_model_classes_are_invalid(tmp_path: Path) -> None:
    df, meta = _read(tmp_path, [0, 1, 2])
    df.loc[1, "label"] = "7"
    with pytest.raises(InvalidPredictions, match="not among the model's classes"):
        observe_predictions(df, meta, method="psi", threshold=0.25)


def test_reference_shares_must_match_the_classes(tmp_path: Path) -> None:
    df, meta = _read(tmp_path, [0, 1, 2])
    meta = {**meta, "reference_class_shares": {"0": 0.5, "1": 0.5}}
    with pytest.raises(InvalidPredictions, match="do not match the classes"):
        observe_predictions(df, meta, method="psi", threshold=0.25)


def test_only_distance_methods_are_accepted(tmp_path: Path) -> None:
    df, meta = _read(tmp_path, [0, 1, 2])
    with pytest.raises(ValueError, match="drift method"):
        observe_predictions(df, meta, method="chisquare", threshold=0.05)
