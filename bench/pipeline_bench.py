"""Processing + Inference + Observe over one 10,000-image batch, each stage in its own fresh
process (as each Lambda is its own container), against a moto server and an embedded
PostgreSQL. Prints each stage's time and peak RSS, and the total.

    uv run python bench/pipeline_bench.py [--images 10000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

TARGET_PROCESSING_RSS_MB = 300
STAGE_SCRIPT = """
import json, sys
from importlib import import_module
from droughtwatch_inference.handlers import HANDLERS
module, _, attr = HANDLERS[sys.argv[1]].rpartition(".")
result = getattr(import_module(module), attr)({"run_id": "bench", "input": {}}, None)
print(json.dumps(result))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=10_000)
    args = parser.parse_args()

    import boto3
    from droughtwatch_inference import synthetic, training
    from droughtwatch_inference.keys import KeyLayout
    from droughtwatch_inference.local.postgres import EmbeddedPostgres
    from moto.server import ThreadedMotoServer
    from rich.console import Console
    from rich.table import Table

    console = Console()
    workdir = Path(tempfile.mkdtemp(prefix="dw-bench-"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pg = EmbeddedPostgres(workdir / "pg", preferred_port=0)
        dsn = pg.start()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "eu-west-1",
        "DROUGHTWATCH_AWS_ENDPOINT_URL": endpoint,
        "DROUGHTWATCH_AWS_REGION": "eu-west-1",
        "DROUGHTWATCH_DATA_BUCKET": "bench-data",
        "DROUGHTWATCH_MODEL_BUCKET": "bench-models",
        "DROUGHTWATCH_DATABASE_DSN": dsn,
        "DROUGHTWATCH_WORK_DIR": str(workdir / "work"),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", str(os.cpu_count() or 1)),
    }
    try:
        s3 = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="eu-west-1",
            aws_access_key_id="bench",
            aws_secret_access_key="bench",
        )
        for bucket in ("bench-data", "bench-models"):
            s3.create_bucket(
                Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
            )
        with console.status("training the baseline and generating the batch"):
            model, manifest, _ = training.train_baseline(seed=7)
            training.publish_model(s3, "bench-models", "models/baseline/", model, manifest)
            raw = workdir / "batch.tfrecord"
            synthetic.write_raw_file(raw, np.random.default_rng(1), args.images, drought=0.0)
            s3.upload_file(
                str(raw), "bench-data", KeyLayout().raw_key(raw.name, dt.date(2026, 11, 27))
            )
        rows = []
        for stage in ("processing", "inference", "observe"):
            with console.status(f"{stage}…"):
                rows.append(measure(stage, env))
    finally:
        server.stop()
        pg.stop()

    table = Table(title=f"Processing + Inference + Observe over one {args.images:,}-image batch")
    table.add_column("stage")
    table.add_column("seconds", justify="right")
    table.add_column("images/s", justify="right")
    table.add_column("peak RSS (MB)", justify="right")
    table.add_column("target")
    for row in rows:
        target = ""
        if row["stage"] == "processing":
            ok = row["peak_mb"] < TARGET_PROCESSING_RSS_MB
            target = (
                f"< {TARGET_PROCESSING_RSS_MB} MB: {'[green]met[/]' if ok else '[red]not met[/]'}"
            )
        images = row["body"]["images"]
        table.add_row(
            row["stage"],
            f"{row['seconds']:.2f}",
            f"{images / row['seconds']:,.0f}",
            f"{row['peak_mb']:.0f}",
            target,
        )
    total = sum(r["seconds"] for r in rows)
    table.add_row("total", f"{total:.2f}", f"{args.images / total:,.0f}", "", "")
    console.print(table)
    console.print("Each stage runs in a fresh interpreter (cold start included), as on Lambda.")


def measure(stage: str, env: dict[str, str]) -> dict:
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", STAGE_SCRIPT, stage],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out_chunks, err_chunks = [], []
    stdout, stderr = proc.stdout, proc.stderr
    assert stdout is not None and stderr is not None
    # read before waiting so a chatty child cannot block on a full pipe
    out_chunks.append(stdout.read())
    err_chunks.append(stderr.read())
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"{stage} exited {proc.returncode}: {''.join(err_chunks)[-2000:]}")
    result = json.loads("".join(out_chunks).strip().splitlines()[-1])
    if result["statusCode"] != 200:
        raise RuntimeError(f"{stage} failed: {result['body']}")
    return {
        "stage": stage,
        "seconds": seconds,
        "peak_mb": usage.ru_maxrss / 1024,
        "body": result["body"][stage],
    }


if __name__ == "__main__":
    main()
