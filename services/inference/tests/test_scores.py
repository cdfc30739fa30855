"""logic.scores gives Evidently's numbers: each function against the Evidently, scipy or
scikit-learn code it follows, and whole metrics rows computed without Evidently (a file whose
report is off) against the same rows computed by Evidently (the day, or a file whose report is
on), on varied data: the real shard's predictions by the seed model, tiny files, missing
classes, all-missing labels, two-class and one-class files, non-finite summaries."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from droughtwatch_contract.settings import ObserveConfig
from droughtwatch_inference import predictions
from droughtwatch_inference.logic import scores
from droughtwatch_inference.logic.evidently_api import load_evidently
from droughtwatch_inference.logic.observe import observe_frame
from droughtwatch_inference.model.manifest import ModelManifest
from droughtwatch_preprocess import BANDS, INDICES, PIXELS
from droughtwatch_preprocess.summaries import feature_column

CLASSES = ("0", "1", "2", "3+")
SHARES = {"0": 0.55, "1": 0.2, "2": 0.15, "3+": 0.1}
MANIFEST = ModelManifest(
    contract_version=2,
    name="baseline",
    version="v1",
    channels=("B4", "B5", "B6", "NDVI"),
    classes=CLASSES,
    reference_class_shares=SHARES,
    reference_metrics={"accuracy": 0.7, "macro_f1": 0.5, "images": 1000},
)
CENTRES = {
    feature_column(channel): centre
    for channel, centre in {
        "B4": (0.19, 0.08),
        "B5": (0.29, 0.07),
        "B6": (0.32, 0.06),
        "NDVI": (0.25, 0.09),
        "NDMI": (-0.04, 0.12),
        "EVI": (0.21, 0.08),
    }.items()
}
CONFIG = ObserveConfig()
REL = 1e-9


def _evidently_internals() -> Any:
    """Evidently's own stat tests (imported after load_evidently has silenced its import
    noise)."""
    load_evidently()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from evidently.legacy.calculations.stattests import jensenshannon, psi
        from evidently.legacy.calculations.stattests import wasserstein_distance_norm as wdn
        from evidently.legacy.core import ColumnType
    return psi._psi, jensenshannon._jensenshannon, wdn._wasserstein_distance_norm, ColumnType


# -- each function against the code it follows ----------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
def test_wasserstein_distance_is_scipys(seed: int) -> None:
    from scipy import stats

    rng = np.random.default_rng(seed)
    u = rng.normal(0, 1, rng.integers(1, 400))
    v = rng.normal(0.3, 2, rng.integers(1, 400))
    if seed % 2:  # ties, within and across the samples
        u, v = np.round(u, 1), np.round(v, 1)
    assert scores.wasserstein_distance(u, v) == pytest.approx(
        stats.wasserstein_distance(u, v), rel=REL, abs=1e-15
    )


@pytest.mark.parametrize(
    ("reference", "current"),
    [
        (
            np.random.default_rng(1).normal(0.2, 0.08, 1000),
            np.random.default_rng(2).normal(0.3, 0.1, 5),
        ),
        (np.random.default_rng(3).normal(0.2, 0.08, 50), np.array([0.25])),
        (np.full(100, 0.4), np.array([0.41, 0.39, 0.5])),  # no spread: the 0.001 floor
    ],
    ids=["five images", "one image", "constant reference"],
)
def test_wasserstein_norm_is_evidentlys(reference: np.ndarray, current: np.ndarray) -> None:
    _, _, evidently_wasserstein, column_type = _evidently_internals()
    expected, _ = evidently_wasserstein(
        pd.Series(reference), pd.Series(current), column_type.Numerical, 0.3
    )
    assert scores.wasserstein_norm(reference, current) == pytest.approx(expected, rel=REL)


CATEGORY_CASES = {
    "same shares": ([5500, 2000, 1500, 1000], [11, 4, 3, 2]),
    "a class absent from the file": ([5500, 2000, 1500, 1000], [3, 2, 0, 0]),
    "one image": ([5500, 2000, 1500, 1000], [0, 0, 1, 0]),
    "a class the reference never predicts": ([6000, 4000, 0, 0], [5, 3, 2, 0]),
    "a reference share below 0.0001": ([9999, 0, 0, 1], [40, 30, 20, 10]),
}


@pytest.mark.parametrize("method", ["psi", "jensenshannon"])
@pytest.mark.parametrize("case", CATEGORY_CASES, ids=list(CATEGORY_CASES))
def test_category_drift_is_evidentlys(case: str, method: str) -> None:
    evidently_psi, evidently_js, _, column_type = _evidently_internals()
    reference, current = CATEGORY_CASES[case]

    def series(counts: list[int]) -> pd.Series:
        return pd.Series([c for c, n in zip(CLASSES, counts, strict=True) for _ in range(n)])

    test = evidently_psi if method == "psi" else evidently_js
    expected, _ = test(series(reference), series(current), column_type.Categorical, 0.25)
    assert scores.category_drift(reference, current, method) == pytest.approx(expected, rel=REL)


def test_category_drift_refuses_an_empty_side() -> None:
    with pytest.raises(ValueError, match="at least one value"):
        scores.category_drift([1, 2], [0, 0], "psi")


@pytest.mark.parametrize("seed", range(8))
def test_classification_is_scikit_learns(seed: int) -> None:
    from sklearn.metrics import accuracy_score, classification_report, f1_score

    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 60))
    held = rng.choice(CLASSES, size=int(rng.integers(1, 5)), replace=False)  # classes that occur
    true = rng.choice(held, n)
    predicted = np.where(rng.random(n) < 0.6, true, rng.choice(held, n))
    confusion = {
        t: {p: int(np.sum((true == t) & (predicted == p))) for p in CLASSES} for t in CLASSES
    }

    accuracy, macro_f1, precision, recall = scores.classification(confusion)

    assert accuracy == pytest.approx(accuracy_score(true, predicted), rel=REL)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ill-defined precision of a class never predicted: 0
        assert macro_f1 == pytest.approx(f1_score(true, predicted, average="macro"), rel=REL)
        report = classification_report(true, predicted, output_dict=True)
    assert set(precision) == set(recall) == set(true)  # Evidently keys the true classes only
    for name in set(true):
        assert precision[name] == pytest.approx(report[name]["precision"], rel=REL)
        assert recall[name] == pytest.approx(report[name]["recall"], rel=REL)


# -- whole rows: without Evidently against Evidently ----------------------------------------------


def assert_same(without: Any, evidently: Any, where: str = "row") -> None:
    """Equal values: floats to 1e-9, everything else exactly, with the same types."""
    if isinstance(evidently, float):
        assert type(without) is float, f"{where}: {without!r} is not a float"
        assert without == pytest.approx(evidently, rel=REL, abs=1e-12), where
    elif isinstance(evidently, dict):
        assert isinstance(without, dict) and list(without) == list(evidently), where
        for key in evidently:
            assert_same(without[key], evidently[key], f"{where}.{key}")
    elif isinstance(evidently, list):
        assert isinstance(without, list) and len(without) == len(evidently), where
        for k, (a, b) in enumerate(zip(without, evidently, strict=True)):
            assert_same(a, b, f"{where}[{k}]")
    else:
        assert without == evidently and type(without) is type(evidently), where


def _file(
    tmp_path: Path,
    predicted: list[int],
    true: list[str | None] | None,
    *,
    rng: np.random.Generator,
    shift: float = 0.0,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """A predictions file as Inference writes it, read back as Observe reads it."""
    n = len(predicted)
    probabilities = np.full((n, len(CLASSES)), 0.1, np.float32)
    probabilities[np.arange(n), predicted] = 0.7
    features = {c: rng.normal(m + shift * s, s, n) for c, (m, s) in CENTRES.items()}
    table = predictions.build_table(
        np.array([f"img-{i}" for i in range(n)]),
        probabilities,
        MANIFEST,
        true_labels=true,
        features=features,
    )
    quality = {
        "records": n + 2,
        "dropped_blank": 2,
        "pixels": {
            "images": n,
            "pixels_per_image": PIXELS,
            "zero": dict.fromkeys(BANDS, 3),
            "saturated": dict.fromkeys(BANDS, 1),
            "nonfinite": dict.fromkeys(INDICES, 0),
        },
    }
    path = tmp_path / f"p-{rng.integers(1 << 30)}.parquet"
    predictions.write([table], path, quality=quality)
    return predictions.read(path)


def _reference(n: int = 1000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {c: rng.normal(m, s, n).astype(np.float32) for c, (m, s) in CENTRES.items()}
    )


def _labels(rng: np.random.Generator, n: int, classes: tuple[int, ...] = (0, 1, 2, 3)) -> list[int]:
    return [int(k) for k in rng.choice(classes, n)]


def _true(rng: np.random.Generator, predicted: list[int], right: float = 0.7) -> list[str]:
    return [
        CLASSES[p] if rng.random() < right else CLASSES[int(rng.integers(4))] for p in predicted
    ]


def _case_tiny(tmp_path: Path, rng: np.random.Generator, n: int):
    predicted = _labels(rng, n)
    return _file(tmp_path, predicted, _true(rng, predicted), rng=rng), _reference()


def _case_missing_class(tmp_path, rng):
    predicted = _labels(rng, 40, (0, 1))  # 2 and 3+ never predicted, 3+ never true either
    true = [CLASSES[min(p + int(rng.integers(2)), 2)] for p in predicted]
    return _file(tmp_path, predicted, true, rng=rng), _reference()


def _case_all_labels_missing(tmp_path, rng):
    return _file(tmp_path, _labels(rng, 12), [None] * 12, rng=rng), _reference()


def _case_some_labels_missing(tmp_path, rng):
    predicted = _labels(rng, 30)
    true = [t if rng.random() < 0.6 else None for t in _true(rng, predicted)]
    return _file(tmp_path, predicted, true, rng=rng), _reference()


def _case_two_classes(tmp_path, rng):
    predicted = _labels(rng, 9, (1, 3))
    true = [CLASSES[1] if rng.random() < 0.5 else CLASSES[3] for _ in predicted]
    return _file(tmp_path, predicted, true, rng=rng), _reference()


def _case_two_classes_one_only_predicted(tmp_path, rng):
    return _file(tmp_path, [0, 0, 2, 0], ["0", "0", "0", "0"], rng=rng), _reference()


def _case_one_class(tmp_path, rng):
    return _file(tmp_path, [3, 3, 3], ["3+", "3+", "3+"], rng=rng), _reference()


def _case_no_true_labels_column(tmp_path, rng):
    return _file(tmp_path, _labels(rng, 7), None, rng=rng), _reference()


def _case_predicted_labels_missing(tmp_path, rng):
    (df, meta), reference = _case_tiny(tmp_path, rng, 20)
    df.loc[[2, 5, 11], "label"] = None
    return (df, meta), reference


def _case_drifted_input_and_odd_summaries(tmp_path, rng):
    predicted = _labels(rng, 50, (0, 0, 0, 3))
    (df, meta) = _file(tmp_path, predicted, _true(rng, predicted), rng=rng, shift=1.5)
    df.loc[[0, 4], "mean_EVI"] = np.inf  # becomes missing
    df.loc[[7], "mean_NDMI"] = np.nan
    df["mean_B6"] = np.float32(0.3)  # constant in the file
    reference = _reference()
    reference["mean_B5"] = np.float32(0.29)  # constant in the reference: the 0.001 floor
    reference["mean_NDMI"] = np.nan  # nothing to compare with: left out
    return (df, meta), reference


def _case_no_reference_summaries(tmp_path, rng):
    (df, meta), _ = _case_tiny(tmp_path, rng, 15)
    return (df, meta), None


def _case_unknown_true_labels(tmp_path, rng):
    return _file(tmp_path, [0, 1, 2], ["0", "7", "2"], rng=rng), _reference()


def _case_a_pooled_day(tmp_path, rng):
    from droughtwatch_inference.logic.daily import pool

    files = []
    for n in (5, 81, 3, 40, 1):
        predicted = _labels(rng, n)
        files.append(_file(tmp_path, predicted, _true(rng, predicted), rng=rng))
    return pool(files), _reference(5000, seed=4)


CASES: dict[str, Callable[..., Any]] = {
    "one image": lambda t, r: _case_tiny(t, r, 1),
    "two images": lambda t, r: _case_tiny(t, r, 2),
    "five images": lambda t, r: _case_tiny(t, r, 5),
    "81 images": lambda t, r: _case_tiny(t, r, 81),
    "classes missing": _case_missing_class,
    "all true labels missing": _case_all_labels_missing,
    "some true labels missing": _case_some_labels_missing,
    "two classes": _case_two_classes,
    "two classes, one only predicted": _case_two_classes_one_only_predicted,
    "one class": _case_one_class,
    "no true label column": _case_no_true_labels_column,
    "predicted labels missing": _case_predicted_labels_missing,
    "drifted input, non-finite and constant summaries": _case_drifted_input_and_odd_summaries,
    "no reference summaries": _case_no_reference_summaries,
    "unknown true labels": _case_unknown_true_labels,
    "a pooled day": _case_a_pooled_day,
}


@pytest.mark.parametrize("method", ["psi", "jensenshannon"])
@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_a_row_without_evidently_is_the_row_evidently_gives(
    tmp_path: Path, case: str, method: str
) -> None:
    rng = np.random.default_rng(sorted(CASES).index(case))
    (df, meta), reference = CASES[case](tmp_path, rng)
    config = ObserveConfig(drift_method=method)

    with_evidently, sections = observe_frame(df, meta, reference, config)
    without, none = observe_frame(df, meta, reference, config, report=False)

    assert sections and none == []
    assert_same(without, with_evidently)


def test_the_real_shard_scores_alike_both_ways(tmp_path: Path, shard_path: Path, baseline) -> None:
    """The seed model's predictions of the real shard, with its true labels, summaries and
    pixel counts, against the model's own reference summaries."""
    import torch
    from droughtwatch_inference.logic.inference import predict_file
    from droughtwatch_preprocess import process_file

    class Seed:
        def predict(self, images: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                return torch.softmax(baseline.model(torch.from_numpy(images)), dim=1).numpy()

    process_file(shard_path, tmp_path / "shard.npz")
    predict_file(tmp_path / "shard.npz", Seed(), baseline.manifest, 64, tmp_path / "p.parquet")
    df, meta = predictions.read(tmp_path / "p.parquet")
    reference = pd.read_parquet(BytesIO(baseline.reference_features))
    assert len(df) == 79 and df["true_label"].notna().all()

    with_evidently, _ = observe_frame(df, meta, reference, CONFIG)
    without, _ = observe_frame(df, meta, reference, CONFIG, report=False)

    assert_same(without, with_evidently)
    assert with_evidently["feature_drift"] and with_evidently["accuracy"] is not None
    assert not math.isnan(without["drift_score"])
