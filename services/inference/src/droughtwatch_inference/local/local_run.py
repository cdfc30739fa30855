"""`droughtwatch local run`: one execution over a folder of raw files, against the local buckets
(a folder store under the user's data folder, shared with every other local run) and the
ledger, so a rerun, or a second run at the same time, does only what is not done yet."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from droughtwatch_inference import logs
from droughtwatch_inference.keys import KeyLayout
from droughtwatch_inference.local import state
from droughtwatch_inference.local.demo import raw_files
from droughtwatch_inference.local.runner import Execution, LocalConfig, LocalPipeline
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
    home = home or state.data_home()
    root = state.store_root(home)
    name = f"local-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
    for sub in ("logs", "work"):
        (home / sub).mkdir(parents=True, exist_ok=True)
    log_file = home / "logs" / f"{name}.jsonl"
    logs.to_file(str(log_file))
    # Scratch files (downloads, the model's weights) per run: runs at the same time share the
    # buckets and the ledger, never a scratch folder.
    config = LocalConfig(database_dsn=dsn, work_dir=home / "work" / name, store_root=root)
    layout = KeyLayout()
    try:
        with LocalPipeline(config) as pipeline:
            store = pipeline.store
            files, skipped = raw_files(folder)
            for skipped_name in skipped:
                say(f"skipped {skipped_name}: not a TFRecord file")
            for path in files:
                store.upload(path, config.data_bucket, layout.raw_key(path.name, date))
            if model_dir is not None:
                for path in sorted(p for p in model_dir.iterdir() if p.is_file()):
                    store.upload(path, config.model_bucket, f"{config.model_prefix}{path.name}")
            elif not store.path(config.model_bucket, config.model_prefix + MANIFEST_NAME).exists():
                from droughtwatch_inference import training

                say("no model yet: training the baseline CNN on generated data (a few seconds)")
                model, manifest, _ = training.train_baseline(seed=7)
                training.publish_model(
                    store, config.model_bucket, config.model_prefix, model, manifest
                )
            execution = pipeline.run(name=name)
    finally:
        shutil.rmtree(config.work_dir, ignore_errors=True)
    history = home / "executions" / f"{execution.name}.json"
    history.parent.mkdir(parents=True, exist_ok=True)
    history.write_text(json.dumps(execution.as_dict(), indent=2, default=str))
    body = (execution.output or {}).get("body", {})
    parts = []
    for stage in ("processing", "inference", "observe"):
        counts = body.get(stage)
        if counts:
            parts.append(
                f"{stage}: {counts['files_done']} files, {counts['images']} images,"
                f" {counts['files_failed']} failed, {counts['remaining']} remaining"
            )
    summary = "; ".join(parts) or f"{execution.status}"
    summary += f"\nlocal buckets: {root}\nhistory: {history}\npipeline log: {log_file}"
    return LocalRunOutcome(execution=execution, summary=summary, history_file=history)
