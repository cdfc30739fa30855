"""Observe's cost: the real handler over 10 predictions files of 1,000 images each (one day),
against in-process moto S3 and an embedded PostgreSQL, twice, each time in a fresh process:
with each file's own HTML report off (the default) and on. Prints the seconds of each file,
then of pooling the day (with its report), and the HTML written.

Each file is what Inference writes: predicted classes in the baseline's reference shares,
true labels (about 70% right), six per-image summaries (B4, B5, B6, NDVI, NDMI, EVI) drawn
around the reference summaries, and the quality counts; the model's reference summaries are
1,000 rows. Per file Observe reads it and computes its metrics row: off, from its counts and
summaries (logic.scores); on, with the Evidently runs (prediction drift, model quality, input
drift), rendering and uploading its HTML report (about 4 MB). Then it pools the day (10,000
images) with Evidently and writes the day's report, in both cases.

Target: at most 2 s per file after the first.

    uv run python bench/observe_bench.py [--files 10] [--images 1000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import harness
import numpy as np
from droughtwatch_preprocess.summaries import feature_column

TARGET_SECONDS_PER_FILE = 2.0
DAY = dt.date(2026, 11, 27)
SHARES = {"0": 0.55, "1": 0.2, "2": 0.15, "3+": 0.1}
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


def summaries(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    return {c: rng.normal(m, s, n) for c, (m, s) in CENTRES.items()}


def predictions_file(path: Path, rng: np.random.Generator, n: int, manifest, key: str) -> bytes:
    from droughtwatch_inference import predictions
    from droughtwatch_preprocess import BANDS, INDICES, PIXELS

    classes = list(manifest.classes)
    predicted = rng.choice(len(classes), n, p=list(SHARES.values()))
    true = np.where(rng.random(n) < 0.7, predicted, rng.choice(len(classes), n))
    probabilities = rng.dirichlet(np.ones(len(classes)), n).astype(np.float32)
    probabilities[np.arange(n), predicted] += 1.0
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    table = predictions.build_table(
        np.array([f"{path.stem}-{i:06d}" for i in range(n)]),
        probabilities,
        manifest,
        true_labels=[classes[k] for k in true],
        features=summaries(rng, n),
        reference_features_key=key,
    )
    pixels = n * PIXELS
    quality = {
        "records": n + 20,
        "dropped_blank": 20,
        "pixels": {
            "images": n,
            "pixels_per_image": PIXELS,
            "zero": {b: int(rng.integers(0, pixels // 100)) for b in BANDS},
            "saturated": {b: int(rng.integers(0, pixels // 1000)) for b in BANDS},
            "nonfinite": {i: int(rng.integers(0, 10)) for i in INDICES},
        },
    }
    predictions.write([table], path, quality=quality)
    return path.read_bytes()


def run_case(files: int, images: int, file_reports: bool) -> dict:
    """In this (fresh) process: the Observe handler over ``files`` predictions files of one
    day, with or without each file's HTML report; returns the seconds of each file, of the
    day's pooling and of the whole invocation, and the reports' sizes."""
    import boto3
    import psycopg
    from droughtwatch_contract.keys import KeyLayout
    from droughtwatch_contract.settings import ObserveSettings, env_name
    from droughtwatch_inference import logs
    from droughtwatch_inference.adapters.ledger import Ledger
    from droughtwatch_inference.model.manifest import ModelManifest
    from droughtwatch_inference.records import RawObject
    from moto import mock_aws

    workdir = Path(tempfile.mkdtemp(prefix="dw-observe-bench-"))
    bucket = harness.DATA_BUCKET
    try:
        with harness.migrated_postgres(workdir) as dsn:
            for name in [n for n in os.environ if n.startswith("AWS_ENDPOINT_URL")]:
                del os.environ[name]
            os.environ.update(harness.stage_environment(dsn, workdir / "work"))
            os.environ[env_name(ObserveSettings, "save_file_reports")] = str(file_reports).lower()
            log_path = workdir / "observe.jsonl"
            logs.to_file(str(log_path))
            layout = KeyLayout()
            manifest = ModelManifest(
                contract_version=2,
                name="baseline-cnn",
                version="bench",
                channels=("B4", "B5", "B6", "NDVI"),
                classes=tuple(SHARES),
                reference_class_shares=SHARES,
                reference_features="reference_features.parquet",
                reference_metrics={"accuracy": 0.72, "macro_f1": 0.6, "images": 1000},
            )
            rng = np.random.default_rng(7)
            with mock_aws():
                s3 = boto3.client("s3", region_name=harness.REGION)
                harness.create_buckets(s3, bucket)
                reference = _parquet(summaries(np.random.default_rng(0), 1_000))
                digest = hashlib.sha256(reference).hexdigest()
                reference_key = layout.reference_features_key(digest)
                s3.put_object(Bucket=bucket, Key=reference_key, Body=reference)
                with psycopg.connect(dsn, autocommit=True) as conn:
                    ledger = Ledger(conn)
                    for i in range(files):
                        name = f"scene-{i:02d}"
                        body = predictions_file(
                            workdir / f"{name}.parquet", rng, images, manifest, reference_key
                        )
                        raw_key = layout.raw_key(name, DAY)
                        digest = hashlib.sha256(name.encode()).hexdigest()
                        key = layout.predictions_key(raw_key, digest)
                        s3.put_object(Bucket=bucket, Key=key, Body=body)
                        ledger.register(bucket, [(RawObject(raw_key, name, 1), DAY)], "bench")
                        (entry,) = conn.execute(
                            "SELECT id FROM ledger WHERE raw_key = %s", (raw_key,)
                        ).fetchone()
                        claim = {"max_attempts": 3, "lease_seconds": 600}
                        assert ledger.claim("processing", **claim).id == entry
                        ledger.complete(
                            entry, "processing", source_digest=digest, processed_key=f"p/{name}"
                        )
                        assert ledger.claim("inference", **claim).id == entry
                        ledger.complete(
                            entry,
                            "inference",
                            predictions_key=key,
                            model_name=manifest.name,
                            model_version=manifest.version,
                        )
                from droughtwatch_inference.handlers.day import handler as pool_days
                from droughtwatch_inference.handlers.observe import handler

                started = time.perf_counter()
                response = handler({"run_id": "bench", "input": {}}, None)
                # then the execution's day step pools the day
                pooled = pool_days({"run_id": "bench", "input": {}}, None)
                total = time.perf_counter() - started
                reports = {
                    prefix: [
                        o["Size"]
                        for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get(
                            "Contents", []
                        )
                    ]
                    for prefix in (layout.reports, layout.daily_reports)
                }
        if response["statusCode"] != 200 or response["body"]["observe"]["files_failed"]:
            raise SystemExit(f"Observe failed: {response['body']}")
        if pooled["statusCode"] != 200 or pooled["body"]["day"]["days_failed"]:
            raise SystemExit(f"the day step failed: {pooled['body']}")
        events = harness.json_lines(log_path.read_text())
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    (day,) = [e for e in events if e["event"] == "day.done"]
    return {
        "file_reports": file_reports,
        "files": [e["seconds"] for e in events if e["event"] == "file.done"],
        "day_s": day["seconds"],
        "day_images": day["images"],
        "total_s": total,
        "file_report_bytes": reports[KeyLayout().reports],
        "day_report_bytes": reports[KeyLayout().daily_reports],
        "peak_rss_mb": harness.peak_rss_mb(),
    }


def _parquet(columns: dict[str, np.ndarray]) -> bytes:
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    pq.write_table(pa.table(columns), buffer)
    return buffer.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=10)
    parser.add_argument("--images", type=int, default=1_000)
    args = parser.parse_args()

    from rich.table import Table

    console = harness.console(110)
    load_before = harness.machine_load()
    cases = {}
    for file_reports in (False, True):
        what = "with" if file_reports else "without"
        with console.status(f"observing {args.files} files {what} their own reports"):
            cases[file_reports], _, _ = harness.run_child(
                [__file__, "--case", str(args.files), str(args.images), str(file_reports)],
                what=f"Observe {what} file reports",
            )
        console.print(f"{what} file reports: done ({harness.machine_load()})", highlight=False)
    load_after = harness.machine_load()

    table = Table(
        title=f"Observe: {args.files} predictions files of {args.images:,} images (one day), "
        "each case one fresh process"
    )
    table.add_column("")
    table.add_column("file reports off (default)", justify="right")
    table.add_column("file reports on", justify="right")
    table.add_column("target")
    off, on = cases[False], cases[True]

    def warm(case: dict) -> list[float]:
        return case["files"][1:]

    worst = max(warm(on) + warm(off)) if warm(on) else float("nan")
    table.add_row("first file", f"{off['files'][0]:.3f}", f"{on['files'][0]:.2f}", "")
    table.add_row(
        f"files 2-{args.files}: mean (median)",
        *(f"{statistics.mean(warm(c)):.3f} ({statistics.median(warm(c)):.3f})" for c in (off, on)),
        "",
    )
    table.add_row(
        f"files 2-{args.files}: slowest",
        f"{max(warm(off)):.3f}",
        f"{max(warm(on)):.2f}",
        f"<= {TARGET_SECONDS_PER_FILE} s: {harness.mark(worst <= TARGET_SECONDS_PER_FILE)}",
    )
    table.add_row(
        f"the day pooled ({off['day_images']:,} images, its report)",
        f"{off['day_s']:.2f}",
        f"{on['day_s']:.2f}",
        "",
    )
    table.add_row("the whole invocation", f"{off['total_s']:.2f}", f"{on['total_s']:.2f}", "")
    table.add_row(
        "HTML written (MB)",
        *(
            f"{(sum(c['file_report_bytes']) + sum(c['day_report_bytes'])) / 1e6:.1f}"
            for c in (off, on)
        ),
        "",
    )
    table.add_row("peak RSS (MB)", f"{off['peak_rss_mb']:,.0f}", f"{on['peak_rss_mb']:,.0f}", "")
    console.print(table)
    console.print(
        "Off, a file's row is counted and scored without Evidently (logic.scores) and Evidently"
        " is imported for the day's report (the day's seconds include that import); on, every"
        " file runs Evidently and writes its own report (the first file pays the import)."
    )
    console.print(f"Before: {load_before}. After: {load_after}.")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--case":
        files, images, reports = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "True"
        print(json.dumps(run_case(files, images, reports)))
    else:
        main()
