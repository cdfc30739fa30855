"""Observe's cost in one warm process: the real handler over 10 predictions files of 1,000
images each (one day), against in-process moto S3 and an embedded PostgreSQL. Prints the
seconds of each file (the first pays Evidently's import), then of pooling the day.

Each file is what Inference writes: predicted classes in the baseline's reference shares,
true labels (about 70% right), six per-image summaries (B4, B5, B6, NDVI, NDMI, EVI) drawn
around the reference summaries, and the quality counts; the model's reference summaries are
1,000 rows. Per file Observe reads it, runs the four Evidently runs (prediction drift, model
quality, input drift, data quality), renders and uploads the HTML report (about 4 MB) and
inserts the metrics row; then it pools the day (10,000 images) the same way.

Target: at most 2 s per file after the first.

    uv run python bench/observe_bench.py [--files 10] [--images 1000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import harness
import numpy as np

TARGET_SECONDS_PER_FILE = 2.0
DAY = dt.date(2026, 11, 27)
SHARES = {"0": 0.55, "1": 0.2, "2": 0.15, "3+": 0.1}
CENTRES = {
    "mean_B4": (0.19, 0.08),
    "mean_B5": (0.29, 0.07),
    "mean_B6": (0.32, 0.06),
    "mean_NDVI": (0.25, 0.09),
    "mean_NDMI": (-0.04, 0.12),
    "mean_EVI": (0.21, 0.08),
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=10)
    parser.add_argument("--images", type=int, default=1_000)
    args = parser.parse_args()

    import boto3
    import pandas as pd
    import psycopg
    from droughtwatch_contract.keys import KeyLayout
    from droughtwatch_inference import logs
    from droughtwatch_inference.adapters.ledger import Ledger
    from droughtwatch_inference.model.manifest import ModelManifest
    from droughtwatch_inference.records import RawObject
    from moto import mock_aws
    from rich.table import Table

    console = harness.console(100)
    workdir = Path(tempfile.mkdtemp(prefix="dw-observe-bench-"))
    load_before = harness.machine_load()
    bucket = harness.DATA_BUCKET
    with harness.migrated_postgres(workdir) as dsn:
        for name in [n for n in os.environ if n.startswith("AWS_ENDPOINT_URL")]:
            del os.environ[name]
        os.environ.update(harness.stage_environment(dsn, workdir / "work"))
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
            reference = pd.DataFrame(summaries(np.random.default_rng(0), 1_000)).to_parquet()
            reference_key = layout.reference_features_key(hashlib.sha256(reference).hexdigest())
            s3.put_object(Bucket=bucket, Key=reference_key, Body=reference)
            with (
                console.status(f"writing {args.files} predictions files"),
                psycopg.connect(dsn, autocommit=True) as conn,
            ):
                ledger = Ledger(conn)
                for i in range(args.files):
                    name = f"scene-{i:02d}"
                    body = predictions_file(
                        workdir / f"{name}.parquet", rng, args.images, manifest, reference_key
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

            with console.status("observing"):
                started = time.perf_counter()
                response = handler({"run_id": "bench", "input": {}}, None)
                # then the execution's day step pools the day
                pooled = pool_days({"run_id": "bench", "input": {}}, None)
                total = time.perf_counter() - started
            report_bytes = [
                item["Size"]
                for item in s3.list_objects_v2(Bucket=bucket, Prefix="reports/")["Contents"]
            ]
    load_after = harness.machine_load()
    if response["statusCode"] != 200 or response["body"]["observe"]["files_failed"]:
        raise SystemExit(f"Observe failed: {response['body']}")
    if pooled["statusCode"] != 200 or pooled["body"]["day"]["days_failed"]:
        raise SystemExit(f"the day step failed: {pooled['body']}")
    events = harness.json_lines(log_path.read_text())
    files = [e["seconds"] for e in events if e["event"] == "file.done"]
    (day,) = [e for e in events if e["event"] == "day.done"]
    shutil.rmtree(workdir, ignore_errors=True)

    table = Table(
        title=f"Observe: {args.files} predictions files of {args.images:,} images, one warm process"
    )
    table.add_column("")
    table.add_column("seconds", justify="right")
    table.add_column("target")
    warm = files[1:]
    worst = max(warm) if warm else float("nan")
    met = worst <= TARGET_SECONDS_PER_FILE
    table.add_row("first file (pays Evidently's import)", f"{files[0]:.2f}", "")
    table.add_row(
        f"files 2-{len(files)}: mean (median)",
        f"{statistics.mean(warm):.2f} ({statistics.median(warm):.2f})",
        "",
    )
    table.add_row(
        f"files 2-{len(files)}: slowest",
        f"{worst:.2f}",
        f"<= {TARGET_SECONDS_PER_FILE} s: {harness.mark(met)}",
    )
    table.add_row(f"the day pooled ({day['images']:,} images)", f"{day['seconds']:.2f}", "")
    table.add_row("the whole invocation", f"{total:.2f}", "")
    console.print(table)
    console.print(
        f"Per file: {', '.join(f'{s:.2f}' for s in files)} s. Reports: {len(report_bytes)},"
        f" {statistics.mean(report_bytes) / 1e6:.1f} MB each on average."
    )
    console.print(f"Before: {load_before}. After: {load_after}.")


if __name__ == "__main__":
    main()
