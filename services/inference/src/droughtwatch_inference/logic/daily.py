"""The day as the unit: after the files, the day step pools each stale day's predictions files
(one model version at a time) and computes every signal on the pool, as Observe does for a
file. The
dashboard and the alerts read these daily rows.

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
from collections.abc import Mapping
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
from droughtwatch_inference.records import Day, DayReport, StageReport


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
) -> DayMetrics:
    """The daily row of ``day`` from its ``files`` ((metrics id, predictions key)); its report
    is uploaded when ``config.save_html_report`` and the day has images."""
    scratch = work_dir / f"observe-day-{day.batch_date.isoformat()}"
    scratch.mkdir(parents=True, exist_ok=True)
    try:
        read = []
        for k, (_, key) in enumerate(files):
            path = store.download(bucket, key, scratch / f"{k:05d}.parquet")
            read.append(predictions.read(path))
            path.unlink()
        frame, meta = pool(read)
        reference, note = references.get(meta.get("reference_features_key"))
        values, sections = observe_frame(frame, meta, reference, config, reference_note=note)
        row: DayMetrics = {
            **gate(values, config.min_daily_images),
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
    report: DayReport | StageReport,
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
            seconds=round(time.monotonic() - started, 3),
        )
    return written
