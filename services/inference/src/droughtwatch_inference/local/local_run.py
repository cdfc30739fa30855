"""`droughtwatch local run`: one execution over a folder of raw files, with the local buckets
mirrored to the user's data folder so the ledger and the products stay in step across runs."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from droughtwatch_contract.keys import KeyLayout
from droughtwatch_contract.stages import STAGES

from droughtwatch_inference import logs
from droughtwatch_inference.local.demo import raw_files
from droughtwatch_inference.local.runner import Execution, LocalConfig, LocalPipeline
from droughtwatch_inference.local.state import buckets_root, data_home, mirror_in, mirror_out
from droughtwatch_inference.manifest import MANIFEST_NAME


@dataclass
class LocalRunOutcome:
    execution: Execution
    summary: str
    history_file: Path


def run_folder(
    folder: Path,
    date: dt.date,
    dsn: str,
    *,
    model_dir: Path | None = None,
    say: Callable[[str], Any] = print,
    home: Path | None = None,
) -> LocalRunOutcome:
    import boto3

    home = home or data_home()
    root = home / "buckets" if home else buckets_root()
    config = LocalConfig(database_dsn=dsn, work_dir=home / "work")
    layout = KeyLayout()
    (home / "logs").mkdir(parents=True, exist_ok=True)
    log_file = home / "logs" / f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}.jsonl"
    logs.to_file(str(log_file))
    with LocalPipeline(config) as pipeline:
        s3 = boto3.client("s3")
        for bucket in (config.data_bucket, config.model_bucket):
            mirror_in(s3, bucket, root)
        files, skipped = raw_files(folder)
        for name in skipped:
            say(f"skipped {name}: not a TFRecord file")
        for path in files:
            s3.upload_file(str(path), config.data_bucket, layout.raw_key(path.name, date))
        manifest_key = f"{config.model_prefix}{MANIFEST_NAME}"
        if model_dir is not None:
            from droughtwatch_inference.adapters.storage import ObjectStore
            from droughtwatch_inference.model_publish import publish_folder

            published = publish_folder(
                model_dir, ObjectStore(client=s3), config.model_bucket, config.model_prefix
            )
            say(f"model {published.manifest.name} {published.manifest.version} published")
        elif "Contents" not in s3.list_objects_v2(Bucket=config.model_bucket, Prefix=manifest_key):
            from droughtwatch_inference import training

            say("no model yet: training the baseline CNN on generated data (a few seconds)")
            model, manifest, _ = training.train_baseline(seed=7)
            training.publish_model(s3, config.model_bucket, config.model_prefix, model, manifest)
        execution = pipeline.run()
        for bucket in (config.data_bucket, config.model_bucket):
            mirror_out(s3, bucket, root)
    history = home / "executions" / f"{execution.name}.json"
    history.parent.mkdir(parents=True, exist_ok=True)
    history.write_text(json.dumps(execution.as_dict(), indent=2, default=str))
    body = (execution.output or {}).get("body", {})
    parts = []
    for stage in STAGES.names:
        counts = body.get(stage)
        if counts:
            parts.append(
                f"{stage}: {counts['files_done']} files, {counts['images']} images,"
                f" {counts['files_failed']} failed, {counts['remaining']} remaining"
            )
    summary = "; ".join(parts) or f"{execution.status}"
    summary += f"\nlocal buckets: {root}\nhistory: {history}\npipeline log: {log_file}"
    return LocalRunOutcome(execution=execution, summary=summary, history_file=history)
