"""Model quality on the labelled images against hand counts: accuracy, macro F1, per-class
precision and recall, the confusion matrix, and the drop against the reference accuracy."""

from __future__ import annotations

import pandas as pd
import pytest
from droughtwatch_inference.logic.model_quality import (
    NO_LABELS,
    confusion_matrix,
    model_quality,
    quality_dropped,
)

CLASSES = ("0", "1", "2", "3+")


def _frame(true: list[str | None], predicted: list[str]) -> pd.DataFrame:
    return pd.DataFrame({"label": predicted, "true_label": true})


def _f1(tp: int, fp: int, fn: int) -> float:
    return 2 * tp / (2 * tp + fp + fn)


def test_accuracy_macro_f1_and_per_class_values_equal_a_hand_count() -> None:
    true = ["0", "1", "1", "3+", "0", "0", None, "2"]
    predicted = ["0", "0", "1", "0", "2", "0", "1", "2"]
    values, snapshot, notes = model_quality(
        _frame(true, predicted), CLASSES, {"accuracy": 0.9}, margin=0.1
    )
    assert snapshot is not None and notes == []
    # the unlabelled image does not count: 7 labelled, 4 right (rows 0, 2, 5, 7)
    assert values["labelled_images"] == 7
    assert values["accuracy"] == pytest.approx(4 / 7)
    # per class over the 7: 0: tp 2 fp 2 fn 1; 1: tp 1 fp 0 fn 1; 2: tp 1 fp 1 fn 0; 3+: fn 1
    f1 = [_f1(2, 2, 1), _f1(1, 0, 1), _f1(1, 1, 0), _f1(0, 0, 1)]
    assert values["macro_f1"] == pytest.approx(sum(f1) / 4)
    assert values["per_class"]["0"] == {"precision": 0.5, "recall": 2 / 3, "support": 3}
    assert values["per_class"]["1"] == {"precision": 1.0, "recall": 0.5, "support": 2}
    assert values["per_class"]["3+"]["recall"] == 0.0 and values["per_class"]["3+"]["support"] == 1
    assert values["confusion"] == {
        "0": {"0": 2, "1": 0, "2": 1, "3+": 0},
        "1": {"0": 1, "1": 1, "2": 0, "3+": 0},
        "2": {"0": 0, "1": 0, "2": 1, "3+": 0},
        "3+": {"0": 1, "1": 0, "2": 0, "3+": 0},
    }
    assert values["reference_accuracy"] == 0.9
    assert values["accuracy_drop"] == pytest.approx(0.9 - 4 / 7)
    assert values["accuracy_margin"] == 0.1 and values["accuracy_alert"] is True
    assert type(values["accuracy"]) is float and type(values["macro_f1"]) is float


def test_files_without_labels_have_no_quality_and_say_so() -> None:
    values, snapshot, notes = model_quality(
        _frame([None, None], ["0", "1"]), CLASSES, {"accuracy": 0.6}, margin=0.1
    )
    assert snapshot is None and notes == [NO_LABELS]
    assert values["labelled_images"] == 0
    assert values["accuracy"] is None and values["macro_f1"] is None
    assert values["per_class"] is None and values["confusion"] is None
    assert values["accuracy_drop"] is None and values["accuracy_alert"] is False
    # a predictions file from before Inference kept labels
    older = pd.DataFrame({"label": ["0"]})
    values, _, notes = model_quality(older, CLASSES, None, margin=0.1)
    assert values["labelled_images"] == 0 and "no true labels" in notes[0]


def test_labels_the_model_does_not_know_leave_quality_out() -> None:
    values, snapshot, notes = model_quality(
        _frame(["0", "7"], ["0", "1"]), CLASSES, None, margin=0.1
    )
    assert snapshot is None and values["accuracy"] is None
    assert "['7']" in notes[0]


def test_without_reference_accuracy_there_is_no_drop() -> None:
    values, _, notes = model_quality(_frame(["0", "1"], ["0", "0"]), CLASSES, None, margin=0.1)
    assert values["accuracy"] == 0.5 and values["accuracy_drop"] is None
    assert values["accuracy_alert"] is False and "no reference accuracy" in notes[0]


def test_the_accuracy_alert_fires_only_beyond_the_margin() -> None:
    assert quality_dropped(0.1000001, 0.1) is True
    assert quality_dropped(0.1, 0.1) is False
    assert quality_dropped(-0.2, 0.1) is False
    assert quality_dropped(None, 0.1) is False


def test_the_confusion_matrix_names_every_class() -> None:
    matrix = confusion_matrix(pd.Series(["0", "0"]), pd.Series(["0", "2"]), CLASSES)
    assert list(matrix) == list(CLASSES)
    assert matrix["0"] == {"0": 1, "1": 0, "2": 1, "3+": 0}
    assert matrix["3+"] == dict.fromkeys(CLASSES, 0)


@pytest.mark.parametrize(
    ("true", "predicted", "accuracy", "macro_f1"),
    [
        # two classes only (Evidently would take it for a binary task and fail on names)
        (["0", "1", "1", "0"], ["0", "0", "1", "0"], 0.75, (0.8 + 2 / 3) / 2),
        # one class seen, another only predicted: its F1 is 0 and counts
        (["0", "0", "0", "0"], ["0", "0", "2", "0"], 0.75, (6 / 7 + 0) / 2),
        # one class only
        (["3+", "3+"], ["3+", "3+"], 1.0, 1.0),
    ],
)
def test_small_samples_with_one_or_two_classes(
    true: list[str], predicted: list[str], accuracy: float, macro_f1: float
) -> None:
    values, snapshot, _ = model_quality(_frame(true, predicted), CLASSES, None, margin=0.1)
    assert snapshot is not None
    assert values["accuracy"] == pytest.approx(accuracy)
    assert values["macro_f1"] == pytest.approx(macro_f1)
