"""Observe: the metrics of one predictions file (class counts and shares, missing labels, and
prediction drift against the model's reference class distribution), computed with Evidently.

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

import math
import shutil
import warnings
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import pandas as pd
from droughtwatch_contract.drift import is_drift
from droughtwatch_contract.keys import KeyLayout

from droughtwatch_inference import predictions
from droughtwatch_inference.errors import InvalidPredictions
from droughtwatch_inference.logic.ports import LedgerPort, StorePort
from droughtwatch_inference.logic.stage import FileResult
from droughtwatch_inference.records import LedgerEntry

if TYPE_CHECKING:
    from evidently.core.report import Snapshot

LABEL = "label"
REFERENCE_ROWS = 10_000
DRIFT_METHODS = ("psi", "jensenshannon")


@cache
def load_evidently() -> SimpleNamespace:
    """Evidently's API, imported on first use rather than at module import: the import costs
    4 to 9 s of CPU (measured on 2 cores), and in the invocation it does not count against
    Lambda's 10 s init phase."""
    # Evidently 0.7.23 warns while importing itself: its legacy package touches numpy.core
    # (DeprecationWarning "numpy.core is deprecated"), it calls deprecated litestar APIs
    # (LitestarDeprecationWarning, a DeprecationWarning raised from litestar's modules), and one
    # of its docstrings has an invalid escape (reported only when the file is compiled). All
    # three are Evidently's internal noise; they are silenced for this import only, by message.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", r"numpy\.core is deprecated", DeprecationWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"litestar(\.|$)")
        warnings.filterwarnings("ignore", "invalid escape sequence", DeprecationWarning)
        warnings.filterwarnings("ignore", "invalid escape sequence", SyntaxWarning)
        from evidently import DataDefinition, Dataset, Report
        from evidently.metrics import MissingValueCount, UniqueValueCount, ValueDrift
    return SimpleNamespace(
        Report=Report,
        Dataset=Dataset,
        definition=DataDefinition(categorical_columns=[LABEL]),
        UniqueValueCount=UniqueValueCount,
        MissingValueCount=MissingValueCount,
        ValueDrift=ValueDrift,
    )


def reference_labels(
    classes: Sequence[str], shares: Mapping[str, float], rows: int = REFERENCE_ROWS
) -> list[str]:
    """``rows`` labels in the proportions ``shares`` (normalised), rounded by largest remainder
    (ties go to the class listed first), in class order."""
    total = sum(shares[c] for c in classes)
    exact = [shares[c] / total * rows for c in classes]
    counts = [math.floor(x) for x in exact]
    by_remainder = sorted(range(len(classes)), key=lambda k: (-(exact[k] - counts[k]), k))
    for k in by_remainder[: rows - sum(counts)]:
        counts[k] += 1
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
    df: pd.DataFrame, meta: Mapping[str, Any], *, method: str, threshold: float
) -> tuple[dict[str, Any], Snapshot | None]:
    """The metrics of one predictions file, and the Evidently snapshot they come from (None for
    an empty file). Values are plain Python (no numpy scalars), ready for JSON and SQL."""
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
    result: dict[str, Any] = {
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

    ev = load_evidently()
    unique = ev.UniqueValueCount(column=LABEL)
    missing = ev.MissingValueCount(column=LABEL)
    # The drift metric needs at least one label (Evidently raises on an all-missing column).
    drift = ev.ValueDrift(column=LABEL, method=method, threshold=threshold)
    metrics = [unique, missing] + ([drift] if labels.notna().any() else [])
    current = ev.Dataset.from_pandas(pd.DataFrame({LABEL: labels}), data_definition=ev.definition)
    reference = ev.Dataset.from_pandas(
        pd.DataFrame({LABEL: pd.Series(reference_labels(classes, shares), dtype=object)}),
        data_definition=ev.definition,
    )
    snapshot = ev.Report(metrics).run(current, reference)
    values = {m["id"]: m["value"] for m in snapshot.dict()["metrics"]}

    # UniqueValueCount's shares divide by all rows, missing labels included, so the class
    # shares and missing_share add up to one. Classes absent from the file (and from the
    # reference) are 0.
    counts, by_class = values[unique.metric_id]["counts"], values[unique.metric_id]["shares"]
    for name in classes:
        result["class_counts"][name] = round(float(counts.get(name, 0)))
        result["class_shares"][name] = float(by_class.get(name, 0.0))
    result["missing_share"] = float(values[missing.metric_id]["share"])
    best = max(classes, key=lambda c: result["class_counts"][c])  # ties: first in class order
    if result["class_counts"][best] > 0:
        result["most_common_class"] = best
        result["most_common_share"] = result["class_shares"][best]
    if drift in metrics:
        score = float(values[drift.metric_id])
        result["drift_score"] = score
        result["drift_detected"] = is_drift(score, threshold)
    return result, snapshot


def observe_entry(
    entry: LedgerEntry,
    store: StorePort,
    metrics: LedgerPort,
    layout: KeyLayout,
    work_dir: Path,
    *,
    run_id: str,
    method: str,
    threshold: float,
    save_html: bool,
) -> FileResult:
    """Observe one ledger entry: read its predictions file, compute the metrics, upload the
    HTML report (when ``save_html`` and the file has images), insert the metrics row (a second
    insert for the same predictions file is a no-op, so a retried file is counted once)."""
    if not entry.predictions_key or not entry.source_digest:
        raise InvalidPredictions(
            f"ledger row {entry.id} ({entry.raw_key}) has no predictions file recorded"
        )
    scratch = work_dir / f"observe-{entry.id}"
    scratch.mkdir(parents=True, exist_ok=True)
    try:
        path = store.download(entry.bucket, entry.predictions_key, scratch / "predictions.parquet")
        df, meta = predictions.read(path)
        values, snapshot = observe_predictions(df, meta, method=method, threshold=threshold)
        report_key = None
        if save_html and snapshot is not None:
            report_key = layout.report_key(entry.raw_key, entry.source_digest)
            html = scratch / "report.html"
            snapshot.save_html(str(html))
            store.upload(html, entry.bucket, report_key, "text/html")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    inserted = metrics.insert_metrics(
        {
            "ledger_id": entry.id,
            "predictions_key": entry.predictions_key,
            "report_key": report_key,
            "batch_date": entry.batch_date,
            "run_id": run_id,
            **values,
        }
    )
    return FileResult(
        ledger_values={"report_key": report_key},
        images=values["images"],
        extra={
            "predictions_key": entry.predictions_key,
            "report_key": report_key,
            "drift_score": values["drift_score"],
            "drift_detected": values["drift_detected"],
            "metrics_inserted": inserted,
        },
    )
