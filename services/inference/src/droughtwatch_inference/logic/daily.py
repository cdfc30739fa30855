"""The day as the unit: after the files, the day step pools each stale day's predictions files
(one model version at a time) and computes every signal on the pool, as Observe does for a
file. The dashboard and the alerts read these daily rows.

Labels that arrive later (label files, ingested into the labels table by Plan at the start of a
run)
are merged into the pool by image id before anything is computed: a late label fills in an
image that had none and overrides the label its raw record carried. So a day's model quality,
its accuracy alert and its report are recomputed from all its labelled images whenever new
labels match them (adapters/daily_metrics.py says when a day is stale); the row counts the
labels from each source. The per-file rows keep the labels their files carried.

A day may hold many small files, and drift on a few images is noise (PSI on 30 images: a class
missing by chance adds about 0.7). Pooling the images (their predicted and true labels and
their summaries, and the files' quality counts) gives the day's values exactly, not averages
of per-file values. Below ``min_daily_images`` images the day is "not enough data": its scores
are still recorded, but no drift is detected and no alert is raised for it (the accuracy alert
needs as many labelled images).
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from droughtwatch_contract.keys import KeyLayout
from droughtwatch_contract.settings import ObserveConfig

from droughtwatch_inference import logs, predictions
from droughtwatch_inference.logic.data_quality import pool_quality
from droughtwatch_inference.logic.observe import ReferenceSummaries, observe_frame, upload_report
from droughtwatch_inference.logic.ports import DailyPort, StorePort
from droughtwatch_inference.logic.report_header import day_header
from droughtwatch_inference.logic.stage import Budget, describe, is_stage_error
from droughtwatch_inference.metrics_row import DayMetrics, Signals
from droughtwatch_inference.predictions import TRUE_LABEL
from droughtwatch_inference.records import Day, DayReport, LateLabel

# What a day says when none of its images has a label yet.
LABELS_LATER = (
    "labels that arrive later (label files under the labels prefix: droughtwatch labels "
    "upload) fill in model quality at the next run"
)


def not_enough_data(images: int, min_images: int) -> str:
    return f"not enough data: {images} images, fewer than {min_images}: no alert for this day"


def gate(values: Signals, min_images: int) -> dict[str, Any]:
    """The day's values with the alerts off when its sample is below ``min_images``."""
    gated = dict(values)
    gated["min_images"] = min_images
    gated["enough_data"] = values["images"] >= min_images
    notes = list(values["notes"])
    if not gated["enough_data"]:
        gated["drift_detected"] = False
        gated["input_drift_detected"] = False
        notes.append(not_enough_data(values["images"], min_images))
    if (values["labelled_images"] or 0) < min_images and values["accuracy_alert"]:
        gated["accuracy_alert"] = False
        notes.append(
            f"{values['labelled_images']} labelled images, fewer than {min_images}: "
            "no accuracy alert for this day"
        )
    gated["notes"] = notes
    return gated


def pool(files: list[tuple[pd.DataFrame, Mapping[str, Any]]]) -> tuple[pd.DataFrame, dict]:
    """One frame and one metadata of a day's files (one model version)."""
    frame = pd.concat([df for df, _ in files], ignore_index=True)
    meta = dict(files[0][1])
    meta["quality"] = pool_quality(m.get("quality") for _, m in files)
    keys = [m.get("reference_features_key") for _, m in files if m.get("reference_features_key")]
    meta["reference_features_key"] = keys[-1] if keys else None  # the newest file's copy
    return frame, meta


def merge_late_labels(
    frame: pd.DataFrame, late: Sequence[LateLabel]
) -> tuple[pd.DataFrame, dict[str, Any], list[str]]:
    """The pooled frame with the late labels merged into ``true_label`` by image id (a late
    label wins over the raw record's); the row's label columns (DayMetrics: where the labels
    came from, the newest late label pooled and when the newest one used arrived); and a note
    when late labels were used."""
    by_id = {label.image_id: label for label in late}
    embedded = (
        frame[TRUE_LABEL].astype(object)
        if TRUE_LABEL in frame.columns
        else pd.Series(None, index=frame.index, dtype=object)
    )
    matched = frame["id"].map({i: label.label for i, label in by_id.items()}).astype(object)
    used = matched.notna()
    merged = frame.assign(**{TRUE_LABEL: matched.where(used, embedded)})
    received = [by_id[i].received_at for i in frame.loc[used, "id"]]
    counts = {
        "embedded_labels": int((embedded.notna() & ~used).sum()),
        "late_labels": int(used.sum()),
        "late_label_overrides": int((embedded.notna() & used).sum()),
        # every late label of the day's files counts, matched or not: the day is stale only
        # when a newer one comes
        "last_label_seq": max((label.seq for label in late), default=None),
        "labels_received_at": max(received, default=None),
    }
    notes = []
    if counts["late_labels"]:
        notes.append(
            f"{counts['late_labels']} labels come from label files (the newest received "
            f"{counts['labels_received_at']:%Y-%m-%d %H:%M} UTC), "
            f"{counts['embedded_labels']} from the raw records; "
            f"{counts['late_label_overrides']} late labels override a raw record's label"
        )
    return merged, counts, notes


def observe_day(
    day: Day,
    files: list[tuple[int, str]],
    store: StorePort,
    bucket: str,
    layout: KeyLayout,
    work_dir: Path,
    *,
    run_id: str,
    config: ObserveConfig,
    references: ReferenceSummaries,
    late_labels: Sequence[LateLabel] = (),
) -> DayMetrics:
    """The daily row of ``day`` from its ``files`` ((metrics id, predictions key)) and the
    ``late_labels`` of their images; its report is uploaded when ``config.save_html_report``
    and the day has images."""
    scratch = work_dir / f"observe-day-{day.batch_date.isoformat()}"
    scratch.mkdir(parents=True, exist_ok=True)
    try:
        read = []
        for k, (_, key) in enumerate(files):
            path = store.download(bucket, key, scratch / f"{k:05d}.parquet")
            read.append(predictions.read(path))
            path.unlink()
        frame, meta = pool(read)
        frame, label_counts, label_notes = merge_late_labels(frame, late_labels)
        reference, note = references.get(meta.get("reference_features_key"))
        values, sections = observe_frame(frame, meta, reference, config, reference_note=note)
        values["notes"] = [*values["notes"], *label_notes]
        if not values["labelled_images"] and values["images"]:
            values["notes"].append(LABELS_LATER)
        row: DayMetrics = {
            **gate(values, config.min_daily_images),
            **label_counts,  # type: ignore[typeddict-item]
            "batch_date": day.batch_date,
            "model_name": day.model_name,
            "model_version": day.model_version,
            "run_id": run_id,
            "files": len(files),
            "last_metrics_id": max(i for i, _ in files),
            "report_key": None,
        }
        if config.save_html_report and sections:
            row["report_key"] = layout.daily_report_key(
                day.batch_date, day.model_name, day.model_version
            )
            header = day_header(row, config.feature_drift_share)
            upload_report(
                store, bucket, row["report_key"], header, sections, scratch / "report.html"
            )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return row


def observe_days(
    daily: DailyPort,
    store: StorePort,
    bucket: str,
    layout: KeyLayout,
    work_dir: Path,
    budget: Budget,
    report: DayReport,
    *,
    config: ObserveConfig,
    references: ReferenceSummaries,
) -> int:
    """Recompute every stale day while time allows; returns how many were written. A day that
    cannot be pooled (a predictions file gone or unreadable) is reported as a failure, stays
    stale and is tried again on the next run; the other days go on."""
    written = 0
    for day in daily.stale_days():
        if budget.remaining_seconds() < budget.margin_seconds:
            logs.event("stage.time_budget_reached", stage=report.stage, run_id=report.run_id)
            break
        started = time.monotonic()
        name = f"day {day.batch_date.isoformat()} {day.model_name} {day.model_version}"
        try:
            row = observe_day(
                day,
                daily.day_files(day),
                store,
                bucket,
                layout,
                work_dir,
                run_id=report.run_id,
                config=config,
                references=references,
                late_labels=daily.day_labels(day),
            )
            daily.upsert(row)
        except Exception as exc:
            if is_stage_error(exc):
                raise
            message = describe(exc)
            report.failures.append({"key": name, "error": message})
            logs.event("day.failed", logging.WARNING, run_id=report.run_id, day=name, error=message)
            continue
        written += 1
        logs.event(
            "day.done",
            run_id=report.run_id,
            day=name,
            files=row["files"],
            images=row["images"],
            enough_data=row["enough_data"],
            drift_score=row["drift_score"],
            drift_detected=row["drift_detected"],
            input_drift_detected=row["input_drift_detected"],
            accuracy=row["accuracy"],
            accuracy_alert=row["accuracy_alert"],
            late_labels=row["late_labels"],
            seconds=round(time.monotonic() - started, 3),
        )
    return written
