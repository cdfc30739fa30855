"""`droughtwatch demo`: the whole pipeline on an embedded default, day after day.

Trains the baseline CNN on generated data, registers it in the local model bucket, then for
each simulated day uploads that day's raw file and runs the deployed state machine definition
through the local runner. The last days simulate a drought: vegetation indices fall (input
drift on NDVI and NDMI from the first drought day), the predicted classes shift, prediction
drift crosses the alert threshold, and accuracy on the generated labels falls. Each day's
figures are its daily row (daily_metrics), what Grafana charts.

The demo's buckets are its own folder store inside ``--out`` (it starts from an empty ledger,
so it shares nothing with `local run`); at the end its predictions and reports are moved to
``<out>/s3/<bucket>/`` and the rest (raw copies, processed files, the model) is removed.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from droughtwatch_contract.keys import KeyLayout
from droughtwatch_inference import logs

from droughtwatch_tools.execution import Execution
from droughtwatch_tools.local.database import LocalDatabase
from droughtwatch_tools.local.runner import LocalConfig, LocalPipeline

RAW_SUFFIX = ".tfrecord"


@dataclass(frozen=True)
class DemoOptions:
    days: int = 14
    seed: int = 7
    images_per_day: int = 300
    drought_days: int | None = None
    data_dir: Path | None = None
    out_dir: Path = Path("droughtwatch-demo")
    end_date: dt.date | None = None

    def drought_day_count(self) -> int:
        if self.drought_days is not None:
            return self.drought_days
        return max(1, self.days // 4)


@dataclass
class DayResult:
    date: dt.date
    drought: float
    execution: Execution
    images: int = 0
    dropped: int = 0
    class_shares: dict[str, float] = field(default_factory=dict)
    drift_score: float | None = None
    drift_detected: bool = False
    threshold: float = 0.25
    enough_data: bool = False
    feature_drift: dict[str, float] = field(default_factory=dict)
    input_drift_detected: bool = False
    accuracy: float | None = None
    macro_f1: float | None = None
    accuracy_alert: bool = False


@dataclass
class DemoResult:
    days: list[DayResult]
    out_dir: Path
    model: dict[str, Any]
    exported: int
    skipped: list[str] = field(default_factory=list)


def raw_files(folder: Path) -> tuple[list[Path], list[str]]:
    """The TFRecord files of a folder (plain, GZIP or ZLIB), and each other file (a README,
    notes, an image) named with why it is not taken, e.g. ``README.md (text file)``."""
    from droughtwatch_preprocess import EMPTY_FILE, why_not_tfrecord

    files, skipped = [], []
    for path in sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")):
        reason = why_not_tfrecord(path)
        # an empty file is taken: Processing fails it as "empty file", in the ledger
        if reason in (None, EMPTY_FILE):
            files.append(path)
        else:
            skipped.append(f"{path.name} ({reason})")
    return files, skipped


_DAY_COLUMNS = (
    "images",
    "dropped_blank",
    "class_shares",
    "drift_score",
    "drift_detected",
    "drift_threshold",
    "enough_data",
    "feature_drift",
    "input_drift_detected",
    "accuracy",
    "macro_f1",
    "accuracy_alert",
)


def _day_metrics(conn: Any, date: dt.date) -> dict[str, Any] | None:
    """The day's daily row (the demo publishes one model, so one row per day)."""
    row = conn.execute(
        f"SELECT {', '.join(_DAY_COLUMNS)} FROM daily_metrics WHERE batch_date = %s"
        " ORDER BY computed_at DESC LIMIT 1",
        (date,),
    ).fetchone()
    return None if row is None else dict(zip(_DAY_COLUMNS, row, strict=True))


def _summarise(day: DayResult, row: dict[str, Any] | None) -> None:
    if row is None:
        return
    day.images = row["images"]
    day.dropped = row["dropped_blank"] or 0
    day.class_shares = row["class_shares"]
    day.drift_score = row["drift_score"]
    day.drift_detected = row["drift_detected"]
    day.threshold = row["drift_threshold"]
    day.enough_data = row["enough_data"]
    day.feature_drift = row["feature_drift"] or {}
    day.input_drift_detected = bool(row["input_drift_detected"])
    day.accuracy = row["accuracy"]
    day.macro_f1 = row["macro_f1"]
    day.accuracy_alert = bool(row["accuracy_alert"])


def reset_pipeline_tables(admin_dsn: str) -> None:
    """The demo starts from an empty ledger so that its days are processed afresh (as the
    owner: the stages' role may not delete)."""
    import psycopg
    from droughtwatch_inference.adapters.database import migrate

    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        migrate(conn)
        conn.execute("TRUNCATE metrics, daily_metrics, runs, ledger RESTART IDENTITY CASCADE")


def run_demo(
    options: DemoOptions,
    database: LocalDatabase,
    progress: Callable[[str, int, int], None] = lambda message, done, total: None,
) -> DemoResult:
    import numpy as np
    import psycopg

    from droughtwatch_tools import synthetic, training

    out = options.out_dir.expanduser().resolve()
    if out.exists():
        shutil.rmtree(out)
    (out / "raw").mkdir(parents=True)
    (out / "executions").mkdir()
    logs.to_file(str(out / "pipeline.log.jsonl"))
    reset_pipeline_tables(database.admin)
    dsn = database.app
    layout = KeyLayout()
    end = options.end_date or dt.date.today()
    rng = np.random.default_rng(options.seed)

    skipped: list[str] = []
    if options.data_dir is not None:
        files, skipped = raw_files(options.data_dir)
        if not files:
            raise FileNotFoundError(f"no TFRecord files in {options.data_dir}")
        plan = [(end, 0.0, files)]
    else:
        severities = synthetic.scenario(options.days, options.drought_day_count())
        plan = []
        for offset, severity in enumerate(severities):
            date = end - dt.timedelta(days=options.days - 1 - offset)
            path = out / "raw" / date.isoformat() / f"scene-{date:%Y%m%d}{RAW_SUFFIX}"
            path.parent.mkdir(parents=True, exist_ok=True)
            synthetic.write_raw_file(path, rng, options.images_per_day, drought=severity)
            plan.append((date, severity, [path]))

    config = LocalConfig(database_dsn=dsn, work_dir=out / ".work", store_root=out / ".store")
    results: list[DayResult] = []
    total_steps = len(plan) + 1
    with LocalPipeline(config) as pipeline, psycopg.connect(dsn, autocommit=True) as conn:
        store = pipeline.store
        progress("training the baseline model", 0, total_steps)
        model, manifest, train_metrics, reference = training.train_baseline(seed=options.seed)
        training.publish_model(
            store,
            config.model_bucket,
            config.model_prefix,
            model,
            manifest,
            reference_features=reference,
        )
        model_info = {**_manifest_dict(manifest), "training": train_metrics}
        for step, (date, severity, files) in enumerate(plan, start=1):
            progress(f"day {date.isoformat()}: upload and run", step, total_steps)
            for path in files:
                store.upload(path, config.data_bucket, layout.raw_key(path.name, date))
            execution = pipeline.run(name=f"demo-{date.isoformat()}")
            (out / "executions" / f"{execution.name}.json").write_text(
                json.dumps(execution.as_dict(), indent=2, default=str)
            )
            day = DayResult(date=date, drought=severity, execution=execution)
            _summarise(day, _day_metrics(conn, date))
            results.append(day)
        progress("exporting predictions and reports", total_steps, total_steps)
        exported = _export(
            config.store_root,
            config.data_bucket,
            (layout.predictions, layout.reports, layout.daily_reports),
            out / "s3",
        )
        (out / "model.json").write_text(json.dumps(model_info, indent=2, default=str))
    shutil.rmtree(out / ".work", ignore_errors=True)
    shutil.rmtree(config.store_root, ignore_errors=True)
    summary = [
        {
            "date": d.date.isoformat(),
            "drought": d.drought,
            "status": d.execution.status,
            "images": d.images,
            "dropped": d.dropped,
            "class_shares": d.class_shares,
            "drift_score": d.drift_score,
            "drift_detected": d.drift_detected,
            "enough_data": d.enough_data,
            "feature_drift": d.feature_drift,
            "input_drift_detected": d.input_drift_detected,
            "accuracy": d.accuracy,
            "macro_f1": d.macro_f1,
            "accuracy_alert": d.accuracy_alert,
        }
        for d in results
    ]
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return DemoResult(
        days=results, out_dir=out, model=model_info, exported=exported, skipped=skipped
    )


def _export(store_root: Path, bucket: str, prefixes: tuple[str, ...], dest: Path) -> int:
    """Move the products under ``prefixes`` of the demo's bucket folder to ``dest/<bucket>/``
    (a rename: the demo's store is inside ``out``); returns how many files moved."""
    moved = 0
    for prefix in prefixes:
        source = store_root / bucket / prefix
        if not source.is_dir():
            continue
        target = dest / bucket / prefix
        target.parent.mkdir(parents=True, exist_ok=True)
        source.replace(target)
        moved += sum(1 for p in target.rglob("*") if p.is_file())
    return moved


def _manifest_dict(manifest: Any) -> dict[str, Any]:
    if hasattr(manifest, "model_dump"):
        return manifest.model_dump(mode="json")
    return dict(manifest)
