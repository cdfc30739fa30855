"""Late labels' cost against an embedded PostgreSQL: a label file of 100,000 labels parsed (CSV)
and ingested in its one transaction (with its unknown ids counted against the ledger), then,
over a year of predicted files (365 days of 10 files of 1,000 images), finding the stale days
(every Observe run does) and reading one day's 10,000 labels, and merging them into the day's
pooled frame.

Targets: the 100,000 labels parsed and ingested in at most 30 s; the stale days found in at most
1 s over the year.

    uv run python bench/labels_bench.py [--labels 100000] [--days 365]
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import tempfile
import time
from pathlib import Path

import harness
import numpy as np

TARGET_INGEST_SECONDS = 30.0
TARGET_STALE_SECONDS = 1.0
FILES_PER_DAY = 10
IMAGES_PER_FILE = 1_000
FIRST_DAY = dt.date(2026, 1, 1)


def digest(day: int, file: int) -> str:
    return hashlib.sha256(f"{day}-{file}".encode()).hexdigest()


def seed_year(conn, days: int) -> None:
    """A ledger row and a metrics row per predicted file (as Processing, Inference and Observe
    leave them), and a daily row per day."""
    for day in range(days):
        date = FIRST_DAY + dt.timedelta(days=day)
        for file in range(FILES_PER_DAY):
            d = digest(day, file)
            (ledger_id,) = conn.execute(
                "INSERT INTO ledger (bucket, raw_key, etag, size_bytes, batch_date, stage,"
                " status, source_digest, records, images, predictions_key, model_name,"
                " model_version) VALUES ('b', %s, 'e', 1, %s, 'done', 'done', %s, %s, %s, %s,"
                " 'm', 'v') RETURNING id",
                (f"raw/{date}/{file}", date, d, IMAGES_PER_FILE, IMAGES_PER_FILE,
                 f"predictions/{date}/{file}/{d[:12]}.parquet"),
            ).fetchone()  # fmt: skip
            conn.execute(
                "INSERT INTO metrics (ledger_id, predictions_key, batch_date, model_name,"
                " model_version, images, class_counts, class_shares, missing_share,"
                " drift_method, drift_threshold, drift_detected) VALUES (%s, %s, %s, 'm', 'v',"
                " %s, '{}', '{}', 0, 'psi', 0.25, false)",
                (ledger_id, f"predictions/{date}/{file}/{d[:12]}.parquet", date, IMAGES_PER_FILE),
            )
        conn.execute(
            "INSERT INTO daily_metrics (batch_date, model_name, model_version, files,"
            " last_metrics_id, images, min_images, enough_data, class_counts, class_shares,"
            " missing_share, drift_method, drift_threshold, drift_detected)"
            " SELECT %s, 'm', 'v', %s, max(id), %s, 200, true, '{}', '{}', 0, 'psi', 0.25,"
            " false FROM metrics WHERE batch_date = %s",
            (date, FILES_PER_DAY, FILES_PER_DAY * IMAGES_PER_FILE, date),
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=365)
    args = parser.parse_args()

    import pandas as pd
    import psycopg
    from droughtwatch_inference.adapters.daily_metrics import DailyMetrics
    from droughtwatch_inference.adapters.labels import Labels
    from droughtwatch_inference.label_file import parse_label_file
    from droughtwatch_inference.logic.daily import merge_late_labels
    from droughtwatch_inference.records import Day
    from droughtwatch_preprocess import CLASS_NAMES, image_id

    console = harness.console(100)
    load_before = harness.machine_load()
    rng = np.random.default_rng(0)
    with (
        tempfile.TemporaryDirectory(prefix="labels-bench-") as tmp,
        harness.migrated_postgres(Path(tmp)) as dsn,
        psycopg.connect(dsn, autocommit=True) as conn,
    ):
        started = time.perf_counter()
        with conn.transaction():
            seed_year(conn, args.days)
        seeded = time.perf_counter() - started
        # the labels of the newest days' images, a day's files after another
        ids = [
            image_id(digest(args.days - 1 - k // (FILES_PER_DAY * IMAGES_PER_FILE),
                            k // IMAGES_PER_FILE % FILES_PER_DAY), k % IMAGES_PER_FILE)
            for k in range(args.labels)
        ]  # fmt: skip
        classes = rng.choice(len(CLASS_NAMES), args.labels)
        body = "id,label\n" + "".join(f"{i},{c}\n" for i, c in zip(ids, classes, strict=True))
        started = time.perf_counter()
        parsed = parse_label_file(body.encode(), "labels/survey.csv")
        parse_seconds = time.perf_counter() - started
        started = time.perf_counter()
        outcome = Labels(conn).ingest("b", "labels/survey.csv", "e", len(body), "bench",
                                      parsed.labels)  # fmt: skip
        ingest_seconds = time.perf_counter() - started
        daily = DailyMetrics(conn)
        started = time.perf_counter()
        stale = daily.stale_days()
        stale_seconds = time.perf_counter() - started
        newest = FIRST_DAY + dt.timedelta(days=args.days - 1)
        (last_id,) = conn.execute(
            "SELECT max(id) FROM metrics WHERE batch_date = %s", (newest,)
        ).fetchone()
        started = time.perf_counter()
        late = daily.day_labels(Day(newest, "m", "v", last_id))
        day_labels_seconds = time.perf_counter() - started
        frame = pd.DataFrame(
            {
                "id": [image_id(digest(args.days - 1, f), k)
                       for f in range(FILES_PER_DAY) for k in range(IMAGES_PER_FILE)],
                "label": "0",
                "true_label": None,
            }
        )  # fmt: skip
        started = time.perf_counter()
        merged, counts, _ = merge_late_labels(frame, late)
        merge_seconds = time.perf_counter() - started
    load_after = harness.machine_load()

    assert outcome is not None and outcome.new_labels == len(parsed.labels)
    assert counts["late_labels"] == len(frame) == merged["true_label"].notna().sum()
    console.print(f"seeded {args.days} days of {FILES_PER_DAY} predicted files in {seeded:.1f} s")
    total = parse_seconds + ingest_seconds
    console.print(
        f"{args.labels:,} labels: parsed {parse_seconds:.2f} s, ingested {ingest_seconds:.2f} s "
        f"(unknown ids: {outcome.unknown_ids}); {total:.2f} s against "
        f"<= {TARGET_INGEST_SECONDS} s: {harness.mark(total <= TARGET_INGEST_SECONDS)}"
    )
    console.print(
        f"stale days over {args.days * FILES_PER_DAY:,} files: {len(stale)} found in "
        f"{stale_seconds:.3f} s against <= {TARGET_STALE_SECONDS} s: "
        f"{harness.mark(stale_seconds <= TARGET_STALE_SECONDS)}"
    )
    console.print(
        f"one day's {len(late):,} labels read in {day_labels_seconds:.3f} s, merged into its "
        f"{len(frame):,} images in {merge_seconds:.3f} s"
    )
    console.print(f"Before: {load_before}. After: {load_after}.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
