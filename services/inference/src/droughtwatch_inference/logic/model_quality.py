"""Model quality where the images carry labels: accuracy, macro F1, per-class precision and
recall with Evidently's classification metrics, and the confusion matrix, on the images whose
``true_label`` is known.

Macro F1 is the unweighted mean of the F1 of each class that occurs among the true or the
predicted labels (scikit-learn's definition, which Evidently uses). Precision and recall are
given for the classes among the true labels (None for the others, as Evidently keys them); a
class never predicted has precision 0, by the same convention. The confusion matrix is counted
here over all the model's classes (Evidently draws the same matrix in the report). Where no
report is rendered (a file's, by default), the same values come from the confusion matrix
(logic.scores) without running Evidently.

Evidently 0.7 takes a multiclass task in which exactly two labels occur for a binary one with
positive label 1, and fails on class names (a small file often holds two classes only). Such a
sample runs as a binary task with an explicit positive label instead, and its macro F1 is the
mean of the two classes' F1 (``F1ByLabel``; a class that is only predicted has F1 0), which
is what ``F1Score`` gives for three classes or more.

A file without labels (inference data) has no model quality: the values are None and a note
says why; that is not an error. With the model's ``reference_metrics``, the accuracy drop is
``reference accuracy - accuracy``, and the quality alert is on when it exceeds the margin.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from droughtwatch_inference.logic.evidently_api import (
    expected_classification_warnings,
    load_evidently,
)
from droughtwatch_inference.logic.scores import classification
from droughtwatch_inference.metrics_row import ModelQuality
from droughtwatch_inference.predictions import TRUE_LABEL

LABEL = "label"
NO_LABELS = "no image carries a label: model quality is not computed"


def quality_dropped(drop: float | None, margin: float) -> bool:
    """The accuracy alert: accuracy fell more than ``margin`` below the reference."""
    return drop is not None and drop > margin


def empty_quality_values(margin: float, reference_accuracy: float | None) -> ModelQuality:
    """The quality of no labelled image: nothing measured, no alert."""
    return {
        "labelled_images": 0,
        "accuracy": None,
        "macro_f1": None,
        "per_class": None,
        "confusion": None,
        "reference_accuracy": reference_accuracy,
        "accuracy_drop": None,
        "accuracy_margin": float(margin),
        "accuracy_alert": False,
    }


def model_quality(
    df: pd.DataFrame,
    classes: Sequence[str],
    reference_metrics: Mapping[str, Any] | None,
    *,
    margin: float,
    evidently: bool = True,
) -> tuple[ModelQuality, Any, list[str]]:
    """(values, Evidently snapshot or None, notes) of the labelled images of ``df``. Without
    ``evidently`` the same values come from the confusion matrix (logic.scores), and there is
    no snapshot."""
    reference = (reference_metrics or {}).get("accuracy")
    values = empty_quality_values(margin, None if reference is None else float(reference))
    if TRUE_LABEL not in df.columns:
        return values, None, [f"{NO_LABELS} (the predictions file has no true labels)"]
    labelled = df.loc[df[TRUE_LABEL].notna() & df[LABEL].notna(), [LABEL, TRUE_LABEL]]
    values["labelled_images"] = len(labelled)
    if labelled.empty:
        return values, None, [NO_LABELS]
    unknown = sorted(set(labelled[TRUE_LABEL]) - set(classes))
    if unknown:
        note = f"labels {unknown[:5]} are not among the model's classes: no model quality"
        return values, None, [note]

    confusion = confusion_matrix(labelled[TRUE_LABEL], labelled[LABEL], classes)
    if evidently:
        snapshot, (accuracy, macro_f1, by_precision, by_recall) = _evidently_quality(
            labelled, classes
        )
    else:
        snapshot, (accuracy, macro_f1, by_precision, by_recall) = None, classification(confusion)
    values.update(
        accuracy=accuracy,
        macro_f1=macro_f1,
        per_class={
            c: {
                "precision": by_precision.get(c),
                "recall": by_recall.get(c),
                "support": sum(confusion[c].values()),
            }
            for c in classes
        },
        confusion=confusion,
    )
    if values["reference_accuracy"] is not None:
        values["accuracy_drop"] = values["reference_accuracy"] - values["accuracy"]
        values["accuracy_alert"] = quality_dropped(values["accuracy_drop"], margin)
    notes = [] if reference is not None else ["the model has no reference accuracy: no drop"]
    return values, snapshot, notes


def _evidently_quality(
    labelled: pd.DataFrame, classes: Sequence[str]
) -> tuple[Any, tuple[float, float, dict[str, float], dict[str, float]]]:
    """Evidently's snapshot of the labelled images, and (accuracy, macro F1, precision by class,
    recall by class) from it."""
    ev = load_evidently()
    seen = [c for c in classes if c in set(labelled[TRUE_LABEL]) | set(labelled[LABEL])]
    if len(seen) == 2:
        task = ev.BinaryClassification(
            target=TRUE_LABEL, prediction_labels=LABEL, pos_label=seen[0]
        )
        accuracy, f1 = ev.Accuracy(), ev.F1ByLabel()
    else:
        task = ev.MulticlassClassification(target=TRUE_LABEL, prediction_labels=LABEL)
        accuracy, f1 = ev.Accuracy(), ev.F1Score()
    definition = ev.DataDefinition(categorical_columns=[LABEL, TRUE_LABEL], classification=[task])
    precision, recall = ev.PrecisionByLabel(), ev.RecallByLabel()
    with expected_classification_warnings():
        snapshot = ev.Report([accuracy, f1, precision, recall]).run(
            ev.Dataset.from_pandas(labelled.astype(object), data_definition=definition), None
        )
    result = {m["id"]: m["value"] for m in snapshot.dict()["metrics"]}
    by_precision = {str(k): float(v) for k, v in result[precision.metric_id].items()}
    by_recall = {str(k): float(v) for k, v in result[recall.metric_id].items()}
    if len(seen) == 2:
        by_f1 = {str(k): float(v) for k, v in result[f1.metric_id].items()}
        macro_f1 = sum(by_f1.get(c, 0.0) for c in seen) / 2
    else:
        macro_f1 = float(result[f1.metric_id])
    return snapshot, (float(result[accuracy.metric_id]), macro_f1, by_precision, by_recall)


def confusion_matrix(
    true: pd.Series, predicted: pd.Series, classes: Sequence[str]
) -> dict[str, dict[str, int]]:
    """{true class: {predicted class: images}} over all ``classes``, zeros included (every
    label is one of ``classes``)."""
    at = {c: k for k, c in enumerate(classes)}
    counts = np.zeros((len(classes), len(classes)), dtype=np.int64)
    np.add.at(counts, ([at[t] for t in true], [at[p] for p in predicted]), 1)
    return {t: {p: int(counts[i, j]) for j, p in enumerate(classes)} for i, t in enumerate(classes)}
