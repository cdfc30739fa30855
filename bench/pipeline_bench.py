"""Processing + Inference + Observe over one 10,000-image batch, each stage in its own fresh
process (as each Lambda is its own container), against a moto server and an embedded
PostgreSQL. Prints each stage's time and peak RSS, and the total.

    uv run python bench/pipeline_bench.py [--images 10000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import shutil
import tempfile
from pathlib import Path

import harness
import numpy as np

HERE = Path(__file__).resolve().parent
TARGET_PROCESSING_RSS_MB = 300
# The child reports its own figures: import (cold start) and handler seconds, and its peak RSS
# (read after the handler, with bench/ put on the path only then).
STAGE_SCRIPT = """
import json, sys, time
t0 = time.perf_counter()
from importlib import import_module
from droughtwatch_contract.stages import WORKFLOW
module, _, attr = WORKFLOW[sys.argv[1]].handler.rpartition(".")
handler = getattr(import_module(module), attr)
t1 = time.perf_counter()
result = handler({"run_id": "bench", "input": {}}, None)
t2 = time.perf_counter()
sys.path.insert(0, sys.argv[2])
from harness import status_kb
print(json.dumps({"result": result, "import_s": t1 - t0, "handler_s": t2 - t1,
                  "peak_kb": status_kb("VmHWM")}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=10_000)
    args = parser.parse_args()

    from rich.table import Table

    console = harness.console(132)
    workdir = Path(tempfile.mkdtemp(prefix="dw-bench-"))
    load_before = harness.machine_load()
    try:
        with harness.migrated_postgres(workdir) as dsn:
            rows = run_stages(args.images, workdir, dsn, console)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    load_after = harness.machine_load()

    table = Table(title=f"Plan, the three stages and the day over one {args.images:,}-image batch")
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
            target += f"< {TARGET_PROCESSING_RSS_MB} MB: {harness.mark(ok)}"
        images = row["body"].get("images")  # Plan and the day step handle no images
        table.add_row(
            row["stage"],
            f"{row['seconds']:.2f}",
            f"{row['import_s']:.2f}",
            f"{row['handler_s']:.2f}",
            "-" if images is None else f"{images / row['handler_s']:,.0f}",
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
    console.print(f"Before: {load_before}. After: {load_after}.")


def run_stages(images: int, workdir: Path, dsn: str, console) -> list[dict]:
    """A moto server with the buckets, the baseline published and one raw file of ``images``
    generated images in them; then each stage measured in its own fresh process."""
    import boto3
    from droughtwatch_contract.keys import KeyLayout
    from droughtwatch_contract.settings import CommonSettings, InferenceSettings, env_name
    from droughtwatch_tools import synthetic, training
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    env = {
        **os.environ,
        **harness.stage_environment(dsn, workdir / "work"),
        env_name(CommonSettings, "aws_endpoint_url"): endpoint,
        env_name(CommonSettings, "aws_region"): harness.REGION,
        env_name(InferenceSettings, "model_bucket"): harness.MODEL_BUCKET,
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", str(os.cpu_count() or 1)),
    }
    try:
        s3 = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name=harness.REGION,
            aws_access_key_id="bench",
            aws_secret_access_key="bench",
        )
        harness.create_buckets(s3, harness.DATA_BUCKET, harness.MODEL_BUCKET)
        with console.status("training the baseline and generating the batch"):
            # where Inference reads the model by default (the environment sets no prefix)
            model_prefix = InferenceSettings.model_fields["model_prefix"].default
            training.train_and_publish(s3, harness.MODEL_BUCKET, model_prefix)
            raw = workdir / "batch.tfrecord"
            synthetic.write_raw_file(raw, np.random.default_rng(1), images, drought=0.0)
            s3.upload_file(
                str(raw), harness.DATA_BUCKET, KeyLayout().raw_key(raw.name, dt.date(2026, 11, 27))
            )
        rows = []
        # Plan registers the batch before Processing takes it; the day step pools the day
        for stage in ("plan", "processing", "inference", "observe", "day"):
            with console.status(f"{stage}…"):
                rows.append(measure(stage, env))
        return rows
    finally:
        server.stop()


def measure(stage: str, env: dict[str, str]) -> dict:
    report, stderr, seconds = harness.run_child(
        ["-c", STAGE_SCRIPT, stage, str(HERE)], what=stage, env=env
    )
    result = report["result"]
    if result["statusCode"] != 200:
        raise RuntimeError(f"{stage} failed: {result['body']}")
    # Processing logs the preprocessing's own time (no S3) beside the file's total.
    compute = sum(
        event.get("process_seconds", 0.0)
        for event in harness.json_lines(stderr)
        if event.get("event") == "file.done"
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


if __name__ == "__main__":
    main()
