"""`droughtwatch demo`: the whole pipeline on an embedded default, day after day.

Trains the baseline CNN on generated data, registers it in the local model bucket, then for
each simulated day uploads that day's raw file and runs the deployed state machine definition
through the local runner. The last days simulate a drought: vegetation indices fall, the
predicted classes shift, and prediction drift crosses the alert threshold.

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
from droughtwatch_inference.local.database import LocalDatabase
from droughtwatch_inference.local.runner import Execution, LocalConfig, LocalPipeline

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


@dataclass
class DemoResult:
    days: list[DayResult]
    out_dir: Path
    model: dict[str, Any]
    exported: int
    skipped: list[str] = field(default_factory=list)


def raw_files(folder: Path) -> tuple[list[Path], list[str]]:
    """The TFRecord files of a folder, and the names of the other files (a README, notes)."""
    from droughtwatch_preprocess import looks_like_tfrecord

    files, skipped = [], []
    for path in sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")):
        (files if looks_like_tfrecord(path) else skipped).append(path)
    return files, [p.name for p in skipped]


def _day_metrics(conn: Any, run_id: str) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT m.images, m.class_shares, m.drift_score, m.drift_detected, m.drift_threshold,"
        " l.dropped FROM metrics m JOIN ledger l ON l.id = m.ledger_id WHERE m.run_id = %s"
        " ORDER BY m.id",
        (run_id,),
    ).fetchall()


def _summarise(day: DayResult, rows: list[tuple[Any, ...]]) -> None:
    total = sum(r[0] for r in rows)
    day.images = total
    day.dropped = sum(r[5] or 0 for r in rows)
    if not rows:
        return
    shares: dict[str, float] = {}
    for images, class_shares, *_ in rows:
        for name, share in class_shares.items():
            shares[name] = shares.get(name, 0.0) + share * images / max(total, 1)
    day.class_shares = shares
    scores = [r[2] for r in rows if r[2] is not None]
    day.drift_score = max(scores) if scores else None
    day.drift_detected = any(r[3] for r in rows)
    day.threshold = rows[0][4]


def reset_pipeline_tables(admin_dsn: str) -> None:
    """The demo starts from an empty ledger so that its days are processed afresh (as the
    owner: the stages' role may not delete)."""
    import psycopg

    from droughtwatch_inference.adapters.database import migrate

    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        migrate(conn)
        conn.execute("TRUNCATE metrics, runs, ledger RESTART IDENTITY CASCADE")


def run_demo(
    options: DemoOptions,
    database: LocalDatabase,
    progress: Callable[[str, int, int], None] = lambda message, done, total: None,
) -> DemoResult:
    import numpy as np
    import psycopg

    from droughtwatch_inference import synthetic, training

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
        model, manifest, train_metrics = training.train_baseline(seed=options.seed)
        training.publish_model(store, config.model_bucket, config.model_prefix, model, manifest)
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
            _summarise(day, _day_metrics(conn, execution.name))
            results.append(day)
        progress("exporting predictions and reports", total_steps, total_steps)
        exported = _export(
            config.store_root, config.data_bucket, (layout.predictions, layout.reports), out / "s3"
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
