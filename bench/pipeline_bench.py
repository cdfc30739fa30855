"""Processing + Inference + Observe over one 10,000-image batch, each stage in its own fresh
process (as each Lambda is its own container), against a moto server and an embedded
PostgreSQL. Prints each stage's time and peak RSS, and the total.

    uv run python bench/pipeline_bench.py [--images 10000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

TARGET_PROCESSING_RSS_MB = 300
# The child reports its own figures: import (cold start) and handler seconds, and VmHWM, the
# peak RSS of its own address space (ru_maxrss would include the parent's, kept across exec).
STAGE_SCRIPT = """
import json, sys, time
t0 = time.perf_counter()
from importlib import import_module
from droughtwatch_contract.stages import STAGES
module, _, attr = STAGES[sys.argv[1]].handler.rpartition(".")
handler = getattr(import_module(module), attr)
t1 = time.perf_counter()
result = handler({"run_id": "bench", "input": {}}, None)
t2 = time.perf_counter()
hwm = next(l for l in open("/proc/self/status") if l.startswith("VmHWM:")).split()[1]
print(json.dumps({"result": result, "import_s": t1 - t0, "handler_s": t2 - t1,
                  "peak_kb": int(hwm)}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=10_000)
    args = parser.parse_args()

    import boto3
    from droughtwatch_contract.keys import KeyLayout
    from droughtwatch_tools import synthetic, training
    from droughtwatch_tools.local.postgres import EmbeddedPostgres
    from moto.server import ThreadedMotoServer
    from rich.console import Console
    from rich.table import Table

    console = Console()
    workdir = Path(tempfile.mkdtemp(prefix="dw-bench-"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pg = EmbeddedPostgres(workdir / "pg", preferred_port=0)
        dsn = pg.start()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
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
            model, manifest, _, reference = training.train_baseline(seed=7)
            training.publish_model(
                s3,
                "bench-models",
                "models/baseline/",
                model,
                manifest,
                reference_features=reference,
            )
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
    table.add_column("wall s", justify="right")
    table.add_column("import s", justify="right")
    table.add_column("handler s", justify="right")
    table.add_column("images/s (handler)", justify="right")
    table.add_column("peak RSS (MB)", justify="right")
    table.add_column("target")
    for row in rows:
        target = ""
        if row["compute_s"]:
            target = f"preprocessing alone {row['compute_s']:.2f} s; "
        if row["stage"] == "processing":
            ok = row["peak_mb"] < TARGET_PROCESSING_RSS_MB
            target += (
                f"< {TARGET_PROCESSING_RSS_MB} MB: {'[green]met[/]' if ok else '[red]not met[/]'}"
            )
        images = row["body"]["images"]
        table.add_row(
            row["stage"],
            f"{row['seconds']:.2f}",
            f"{row['import_s']:.2f}",
            f"{row['handler_s']:.2f}",
            f"{images / row['handler_s']:,.0f}",
            f"{row['peak_mb']:.0f}",
            target,
        )
    total = sum(r["seconds"] for r in rows)
    handler_total = sum(r["handler_s"] for r in rows)
    table.add_row(
        "total",
        f"{total:.2f}",
        "",
        f"{handler_total:.2f}",
        f"{args.images / handler_total:,.0f}",
        "",
        "",
    )
    console.print(table)
    console.print(
        "Each stage runs in a fresh interpreter, as on Lambda: wall = import (cold start) +"
        " handler. S3 is a moto server on loopback (a single-threaded Python server storing"
        " objects in memory), so the handler times include transfers far slower than S3's."
    )


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
    proc.wait()
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"{stage} exited {proc.returncode}: {''.join(err_chunks)[-2000:]}")
    report = json.loads("".join(out_chunks).strip().splitlines()[-1])
    result = report["result"]
    if result["statusCode"] != 200:
        raise RuntimeError(f"{stage} failed: {result['body']}")
    # Processing logs the preprocessing's own time (no S3) beside the file's total.
    compute = sum(
        line.get("process_seconds", 0.0)
        for line in map(_json_or_empty, "".join(err_chunks).splitlines())
        if line.get("event") == "file.done"
    )
    return {
        "stage": stage,
        "seconds": seconds,
        "import_s": report["import_s"],
        "handler_s": report["handler_s"],
        "compute_s": compute,
        "peak_mb": report["peak_kb"] / 1024,
        "body": result["body"][stage],
    }


def _json_or_empty(line: str) -> dict:
    try:
        value = json.loads(line)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


if __name__ == "__main__":
    main()
