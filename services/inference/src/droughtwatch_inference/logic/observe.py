"""Observe: the metrics of one predictions file: class counts and shares, missing labels and
prediction drift against the model's reference class distribution (here), model quality where
the images carry labels (logic.model_quality), input drift of the per-image summaries
(logic.input_drift) and data quality (logic.data_quality), written to one metrics row.
logic.daily pools a day's files the same way, with Evidently, and renders the day's HTML
report (logic.report). A file gets a report of its own only when ``save_file_reports`` is on:
then Evidently computes its values too; otherwise they are counted here and scored by
logic.scores, which gives Evidently's numbers at a fraction of its cost (a backlog of a
thousand small files would spend minutes in Evidently and write gigabytes of HTML).

The drift test is fixed to PSI (population stability index) by default, or Jensen-Shannon
distance, and never left to Evidently: without ``method``, ``ValueDrift`` picks chi-square (a
p-value, lower = more drift) for a reference of up to 1,000 rows and Jensen-Shannon distance
above, so the same column could report numbers of opposite meaning. PSI compares class
proportions, so its value does not grow or shrink with the sample size (as a p-value does) and
higher always means more drift: one alert threshold holds for a file of 100 images and one of
50,000 (rule of thumb: below 0.1 no real change, 0.1-0.25 moderate, 0.25 and above a
significant shift; the default threshold is 0.25). Small files are noisy: sampling adds about
(classes - 1) / images, and a class missing from a file by chance alone adds about 0.7.
Evidently's value is the score only; ``drift_detected`` is the contract's one drift rule,
``droughtwatch_contract.drift.is_drift`` (score >= threshold: both methods are distances), the
rule the demo and the Grafana alert apply too.

The reference is the model's ``reference_class_shares`` (in the predictions file's metadata)
turned into a frame of ``REFERENCE_ROWS`` labels with largest-remainder rounding, so its
proportions are exact to 1/10,000 and sum to one. For PSI, Evidently replaces a zero share by
0.0001, so a class the reference never predicts, or one absent from a file, weighs heavily: a
vanished or new class is drift.

An empty predictions file (0 images) gets no Evidently report (Evidently cannot run its
metrics on an empty column): counts and shares are 0, the drift score is None (NULL), not
detected, and there is no most common class. A file whose labels are all missing gets a report
without the drift metric and no drift score.
"""

from __future__ import annotations

import datetime as dt
import math
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args

import pandas as pd
from droughtwatch_contract.drift import is_drift
from droughtwatch_contract.keys import KeyLayout
from droughtwatch_contract.retention import expires_at
from droughtwatch_contract.settings import ObserveConfig

from droughtwatch_inference import predictions
from droughtwatch_inference.errors import InvalidPredictions, ObjectMissing
from droughtwatch_inference.logic.data_quality import data_quality, quality_rows
from droughtwatch_inference.logic.evidently_api import load_evidently
from droughtwatch_inference.logic.input_drift import input_drift
from droughtwatch_inference.logic.model_quality import model_quality
from droughtwatch_inference.logic.ports import LedgerPort, StorePort
from droughtwatch_inference.logic.report import Section, render
from droughtwatch_inference.logic.report_header import Header, file_header
from droughtwatch_inference.logic.scores import category_drift
from droughtwatch_inference.logic.stage import FileResult
from droughtwatch_inference.metrics_row import FileMetrics, PredictionDrift, Signals
from droughtwatch_inference.records import LedgerEntry

if TYPE_CHECKING:
    from evidently.core.report import Snapshot

LABEL = "label"
REFERENCE_ROWS = 10_000
# The drift methods ObserveConfig.drift_method allows (its Literal).
DRIFT_METHODS: tuple[str, ...] = get_args(ObserveConfig.model_fields["drift_method"].annotation)


def reference_counts(
    classes: Sequence[str], shares: Mapping[str, float], rows: int = REFERENCE_ROWS
) -> list[int]:
    """How many of ``rows`` labels each class gets in the proportions ``shares`` (normalised),
    rounded by largest remainder (ties go to the class listed first), in class order."""
    total = sum(shares[c] for c in classes)
    exact = [shares[c] / total * rows for c in classes]
    counts = [math.floor(x) for x in exact]
    by_remainder = sorted(range(len(classes)), key=lambda k: (-(exact[k] - counts[k]), k))
    for k in by_remainder[: rows - sum(counts)]:
        counts[k] += 1
    return counts


def reference_labels(
    classes: Sequence[str], shares: Mapping[str, float], rows: int = REFERENCE_ROWS
) -> list[str]:
    """``rows`` labels in the proportions ``shares``: ``reference_counts`` of each class, in
    class order."""
    counts = reference_counts(classes, shares, rows)
    return [c for c, n in zip(classes, counts, strict=True) for _ in range(n)]


def _model_classes(meta: Mapping[str, Any]) -> tuple[list[str], dict[str, float]]:
    try:
        classes = [str(c) for c in meta["classes"]]
        shares = {str(c): float(s) for c, s in meta["reference_class_shares"].items()}
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise InvalidPredictions(
            f"model metadata lacks classes or reference shares ({exc})"
        ) from exc
    if not classes or set(shares) != set(classes) or any(s < 0 for s in shares.values()):
        raise InvalidPredictions(
            f"reference_class_shares {sorted(shares)} do not match the classes {classes}"
        )
    if sum(shares.values()) <= 0:
        raise InvalidPredictions("reference_class_shares sum to 0")
    return classes, shares


def observe_predictions(
    df: pd.DataFrame,
    meta: Mapping[str, Any],
    *,
    method: str,
    threshold: float,
    evidently: bool = True,
) -> tuple[PredictionDrift, Snapshot | None]:
    """The metrics of one predictions file, and the Evidently snapshot they come from (None for
    an empty file, or without ``evidently``: then the same values are counted here and scored
    by logic.scores). Values are plain Python (no numpy scalars), ready for JSON and SQL."""
    if method not in DRIFT_METHODS:
        raise ValueError(f"drift method must be one of {DRIFT_METHODS}, got {method!r}")
    classes, shares = _model_classes(meta)
    labels = df[LABEL].astype(object)
    unknown = sorted(set(labels.dropna()) - set(classes))
    if unknown:
        raise InvalidPredictions(
            f"labels {unknown[:5]} are not among the model's classes {classes}"
        )
    images = len(df)
    result: PredictionDrift = {
        "model_name": str(meta.get("name", "")),
        "model_version": str(meta.get("version", "")),
        "images": images,
        "class_counts": dict.fromkeys(classes, 0),
        "class_shares": dict.fromkeys(classes, 0.0),
        "most_common_class": None,
        "most_common_share": None,
        "missing_share": 0.0,
        "drift_score": None,
        "drift_method": method,
        "drift_threshold": float(threshold),
        "drift_detected": False,
    }
    if images == 0:
        return result, None

    snapshot = None
    if evidently:
        snapshot, counts, by_class, missing, score = _evidently_drift(
            labels, classes, shares, method, threshold
        )
    else:
        counts = {str(c): int(n) for c, n in labels.value_counts().items()}
        by_class = {c: n / images for c, n in counts.items()}
        missing = (images - sum(counts.values())) / images
        score = None
        if counts:  # as Evidently, the drift of labels that are all missing is not measured
            score = category_drift(
                reference_counts(classes, shares), [counts.get(c, 0) for c in classes], method
            )

    # UniqueValueCount's shares divide by all rows, missing labels included, so the class
    # shares and missing_share add up to one. Classes absent from the file (and from the
    # reference) are 0.
    for name in classes:
        result["class_counts"][name] = round(float(counts.get(name, 0)))
        result["class_shares"][name] = float(by_class.get(name, 0.0))
    result["missing_share"] = float(missing)
    best = max(classes, key=lambda c: result["class_counts"][c])  # ties: first in class order
    if result["class_counts"][best] > 0:
        result["most_common_class"] = best
        result["most_common_share"] = result["class_shares"][best]
    if score is not None:
        result["drift_score"] = float(score)
        result["drift_detected"] = is_drift(float(score), threshold)
    return result, snapshot


def _evidently_drift(
    labels: pd.Series,
    classes: list[str],
    shares: dict[str, float],
    method: str,
    threshold: float,
) -> tuple[Snapshot, dict[str, Any], dict[str, Any], float, float | None]:
    """Evidently's snapshot of the predicted labels against the reference frame, and from it
    (counts by class, shares by class, missing share, drift score or None)."""
    ev = load_evidently()
    definition = ev.DataDefinition(categorical_columns=[LABEL])
    unique = ev.UniqueValueCount(column=LABEL)
    missing = ev.MissingValueCount(column=LABEL)
    # The drift metric needs at least one label (Evidently raises on an all-missing column).
    drift = ev.ValueDrift(column=LABEL, method=method, threshold=threshold)
    metrics = [unique, missing] + ([drift] if labels.notna().any() else [])
    current = ev.Dataset.from_pandas(pd.DataFrame({LABEL: labels}), data_definition=definition)
    reference = ev.Dataset.from_pandas(
        pd.DataFrame({LABEL: pd.Series(reference_labels(classes, shares), dtype=object)}),
        data_definition=definition,
    )
    snapshot = ev.Report(metrics).run(current, reference)
    values = {m["id"]: m["value"] for m in snapshot.dict()["metrics"]}
    score = float(values[drift.metric_id]) if drift in metrics else None
    return (
        snapshot,
        values[unique.metric_id]["counts"],
        values[unique.metric_id]["shares"],
        float(values[missing.metric_id]["share"]),
        score,
    )


class ReferenceSummaries:
    """The models' reference input summaries, read from the data bucket (where Inference
    copies them) once per key: the key names the content, so it never changes."""

    def __init__(self, store: StorePort, bucket: str, work_dir: Path) -> None:
        self.store, self.bucket, self.work_dir = store, bucket, work_dir
        self._frames: dict[str, pd.DataFrame] = {}

    def get(self, key: str | None) -> tuple[pd.DataFrame | None, str | None]:
        """(summaries or None, why there are none)."""
        if key is None:
            return None, None
        if key not in self._frames:
            path = self.work_dir / "reference" / Path(key).name
            try:
                self.store.download(self.bucket, key, path)
                self._frames[key] = pd.read_parquet(path)
            except ObjectMissing:
                return None, (
                    f"the model's reference summaries s3://{self.bucket}/{key} are missing: input "
                    "drift is not computed (Inference copies them again on its next run)"
                )
            finally:
                path.unlink(missing_ok=True)
        return self._frames[key], None


def observe_frame(
    df: pd.DataFrame,
    meta: Mapping[str, Any],
    reference: pd.DataFrame | None,
    config: ObserveConfig,
    *,
    reference_note: str | None = None,
    report: bool = True,
) -> tuple[Signals, list[Section]]:
    """Every signal of the images in ``df`` (a file, or a day's files pooled): the metrics row's
    values and the report's sections, from Evidently's runs (no section for an empty frame:
    Evidently cannot run on it). Without ``report`` Evidently is not run: the same values come
    from logic.scores, and there are no sections."""
    prediction, drift_snapshot = observe_predictions(
        df, meta, method=config.drift_method, threshold=config.drift_threshold, evidently=report
    )
    classes, _ = _model_classes(meta)
    quality, quality_snapshot, quality_notes = model_quality(
        df, classes, meta.get("reference_metrics"), margin=config.accuracy_margin, evidently=report
    )
    drift, input_snapshot, drift_notes = input_drift(
        df,
        reference,
        threshold=config.feature_drift_threshold,
        share_threshold=config.feature_drift_share,
        detected=is_drift,
        evidently=report,
    )
    if reference_note is not None:
        drift_notes = [reference_note]
    data = data_quality(df, meta.get("quality"))
    values: Signals = {
        **prediction,
        **quality,
        **drift,
        **data,
        "notes": [*quality_notes, *drift_notes],
    }
    if drift_snapshot is None:
        return values, []
    sections = [
        Section("Prediction drift", drift_snapshot),
        Section("Model quality", quality_snapshot, text=quality_notes),
        Section("Input drift", input_snapshot, text=drift_notes),
        Section("Data quality", rows=quality_rows(data)),
    ]
    return values, sections


def upload_report(
    store: StorePort, bucket: str, key: str, header: Header, sections: list[Section], path: Path
) -> None:
    """Render the report through ``path`` (a scratch file) and upload it under ``key``."""
    path.write_text(render(header, sections), encoding="utf-8")
    store.upload(path, bucket, key, "text/html")


def observe_entry(
    entry: LedgerEntry,
    store: StorePort,
    metrics: LedgerPort,
    layout: KeyLayout,
    work_dir: Path,
    *,
    run_id: str,
    config: ObserveConfig,
    references: ReferenceSummaries,
) -> FileResult:
    """Observe one ledger entry: read its predictions file, compute the metrics (with Evidently
    only when its report is rendered: ``config.save_file_reports``), upload that HTML report
    (when the file has images), insert the metrics row (a second insert for the same
    predictions file is a no-op, so a retried file is counted once)."""
    if not entry.predictions_key or not entry.source_digest:
        raise InvalidPredictions(
            f"ledger row {entry.id} ({entry.raw_key}) has no predictions file recorded"
        )
    scratch = work_dir / f"observe-{entry.id}"
    scratch.mkdir(parents=True, exist_ok=True)
    try:
        path = store.download(entry.bucket, entry.predictions_key, scratch / "predictions.parquet")
        df, meta = predictions.read(path)
        reference, note = references.get(meta.get("reference_features_key"))
        values, sections = observe_frame(
            df, meta, reference, config, reference_note=note, report=config.save_file_reports
        )
        row: FileMetrics = {
            **values,
            "ledger_id": entry.id,
            "predictions_key": entry.predictions_key,
            "report_key": None,
            "batch_date": entry.batch_date,
            "run_id": run_id,
        }
        report_expiry = None
        if sections:
            row["report_key"] = layout.report_key(entry.raw_key, entry.source_digest)
            header = file_header(row, entry.raw_key, config.feature_drift_share)
            upload_report(
                store, entry.bucket, row["report_key"], header, sections, scratch / "report.html"
            )
            report_expiry = expires_at(dt.datetime.now(dt.UTC), config.report_retention_days)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    inserted = metrics.insert_metrics(row)
    report_key = row["report_key"]
    return FileResult(
        ledger_values={"report_key": report_key, "report_expires_at": report_expiry},
        images=values["images"],
        extra={
            "predictions_key": entry.predictions_key,
            "report_key": report_key,
            "drift_score": values["drift_score"],
            "drift_detected": values["drift_detected"],
            "accuracy": values["accuracy"],
            "input_drift_detected": values["input_drift_detected"],
            "notes": values["notes"],
            "metrics_inserted": inserted,
        },
    )
