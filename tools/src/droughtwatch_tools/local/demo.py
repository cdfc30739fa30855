"""`droughtwatch demo`: the whole pipeline on an embedded default, day after day.

Trains the baseline CNN on generated data, registers it in the local model bucket, then for
each simulated day uploads that day's raw file and runs the deployed state machine definition
through the local runner. The last days simulate a drought: vegetation indices fall (input
drift on NDVI and NDMI from the first drought day), the predicted classes shift, prediction
drift crosses the alert threshold, and accuracy on the generated labels falls. Each day's
figures are its daily row (daily_metrics), what Grafana charts.

With ``late_labels`` the drought days' raw records carry no labels (strip_labels): their
labels come as a label file uploaded under labels/ ``LATE_LABEL_DAYS`` days after their
images, before that day's run, as field surveys would. Their accuracy is empty at first and is
filled in (and the accuracy alert fires) by the run that reads the labels; the demo's timeline
gains as many runs without new imagery at its end, so that every late label arrives.

The demo's buckets are its own folder store inside ``--out`` (by default ``demo`` in the data
folder), and it starts from an empty ledger, so it shares nothing with `local run`; at the end
its predictions and reports are moved to ``<out>/s3/<bucket>/`` and the rest (raw copies,
processed files, the model) is removed.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from droughtwatch_contract.keys import KeyLayout
from droughtwatch_inference import logs

from droughtwatch_tools.dashboard_page.page import write_page
from droughtwatch_tools.execution import Execution
from droughtwatch_tools.local import state
from droughtwatch_tools.local.database import LocalDatabase
from droughtwatch_tools.local.raw_folder import raw_files
from droughtwatch_tools.local.runner import LocalConfig, LocalPipeline
from droughtwatch_tools.strip_labels import strip_labels

RAW_SUFFIX = ".tfrecord"
# With late labels: how many days after its images a drought day's label file arrives.
LATE_LABEL_DAYS = 3
# The offline dashboard page the demo writes into its folder (droughtwatch_tools.dashboard_page).
DASHBOARD_PAGE = "dashboard.html"


def default_out_dir() -> Path:
    """The demo's folder when ``--out`` is not given: ``demo`` in the data folder, beside the
    embedded database (not the working directory, which may be a repository)."""
    return state.data_home() / "demo"


@dataclass(frozen=True)
class DemoOptions:
    days: int = 14
    seed: int = 7
    images_per_day: int = 300
    drought_days: int | None = None
    data_dir: Path | None = None
    out_dir: Path | None = None  # default: `demo` in the data folder (default_out_dir)
    end_date: dt.date | None = None
    late_labels: bool = False  # the drought days' labels arrive LATE_LABEL_DAYS days later

    def out(self) -> Path:
        """Where the demo writes: ``out_dir``, else `default_out_dir`."""
        return (self.out_dir or default_out_dir()).expanduser().resolve()

    def drought_day_count(self) -> int:
        if self.drought_days is not None:
            return self.drought_days
        return max(1, self.days // 4)


@dataclass
class DayResult:
    """A demo day: its date and drought severity, its execution, and what its daily row says,
    each named as its daily_metrics column (metrics_row.DayMetrics); a default stands for a
    day without a row, or a column without a value."""

    date: dt.date
    drought: float
    execution: Execution
    labels_arrived: dt.date | None = None  # the run that brought its labels, when late
    label_file: str | None = None  # the key of those labels' file
    images: int = 0
    dropped_blank: int = 0
    class_shares: dict[str, float] = field(default_factory=dict)
    drift_score: float | None = None
    drift_detected: bool = False
    drift_threshold: float | None = None
    enough_data: bool = False
    feature_drift: dict[str, float] = field(default_factory=dict)
    input_drift_detected: bool = False
    accuracy: float | None = None
    macro_f1: float | None = None
    accuracy_alert: bool = False
    labelled_images: int = 0
    late_labels: int = 0


@dataclass
class DemoResult:
    days: list[DayResult]
    out_dir: Path
    model: dict[str, Any]
    exported: int
    skipped: list[str] = field(default_factory=list)
    dashboard: Path | None = None  # the offline dashboard page
    # the runs after the last day of imagery (late labels only): their date and execution
    later_runs: list[tuple[dt.date, Execution]] = field(default_factory=list)

    @property
    def executions(self) -> list[Execution]:
        return [d.execution for d in self.days] + [e for _, e in self.later_runs]


# The daily row's columns the demo reads: DayResult's fields after the day's plan.
_PLAN = ("date", "drought", "execution", "labels_arrived", "label_file")
_DAY_COLUMNS = tuple(f.name for f in fields(DayResult) if f.name not in _PLAN)


def _day_metrics(conn: Any, date: dt.date) -> dict[str, Any] | None:
    """The day's daily row (the demo publishes one model, so one row per day)."""
    row = conn.execute(
        f"SELECT {', '.join(_DAY_COLUMNS)} FROM daily_metrics WHERE batch_date = %s"
        " ORDER BY computed_at DESC LIMIT 1",
        (date,),
    ).fetchone()
    return None if row is None else dict(zip(_DAY_COLUMNS, row, strict=True))


def _summarise(day: DayResult, row: dict[str, Any] | None) -> None:
    """The day's row into ``day``; a NULL (a signal not computed) keeps the default."""
    for name, value in (row or {}).items():
        if value is not None:
            setattr(day, name, value)


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

    out = options.out()
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
    # label files to upload before the run of a date
    label_files: dict[dt.date, list[Path]] = {}
    later: list[dt.date] = []  # runs after the last day of imagery, for late labels
    if options.data_dir is not None:
        files, skipped = raw_files(options.data_dir)
        if not files:
            raise FileNotFoundError(f"no TFRecord files in {options.data_dir}")
        plan = [(end, 0.0, files)]
    else:
        severities = synthetic.scenario(options.days, options.drought_day_count())
        late = options.late_labels and any(severities)
        runs = options.days + (LATE_LABEL_DAYS if late else 0)
        first = end - dt.timedelta(days=runs - 1)
        plan = []
        for offset, severity in enumerate(severities):
            date = first + dt.timedelta(days=offset)
            path = out / "raw" / date.isoformat() / f"scene-{date:%Y%m%d}{RAW_SUFFIX}"
            path.parent.mkdir(parents=True, exist_ok=True)
            if late and severity > 0:
                labelled = out / "labelled" / path.name
                synthetic.write_raw_file(labelled, rng, options.images_per_day, drought=severity)
                labels = out / "labels" / f"drought-{date.isoformat()}.csv"
                strip_labels(labelled, path, labels)
                labelled.unlink()
                label_files.setdefault(date + dt.timedelta(days=LATE_LABEL_DAYS), []).append(labels)
            else:
                synthetic.write_raw_file(path, rng, options.images_per_day, drought=severity)
            plan.append((date, severity, [path]))
        later = [first + dt.timedelta(days=k) for k in range(options.days, runs)]

    config = LocalConfig(database_dsn=dsn, work_dir=out / ".work", store_root=out / ".store")
    results: list[DayResult] = []
    later_runs: list[tuple[dt.date, Execution]] = []
    total_steps = len(plan) + len(later) + 1
    with LocalPipeline(config) as pipeline, psycopg.connect(dsn, autocommit=True) as conn:
        store = pipeline.store
        progress("training the baseline model", 0, total_steps)
        trained = training.train_and_publish(
            store, config.model_bucket, config.model_prefix, seed=options.seed
        )
        model_info = {**trained.manifest.model_dump(mode="json"), "training": trained.metrics}

        def run_on(date: dt.date, files: list[Path]) -> Execution:
            for labels in label_files.get(date, []):
                store.upload(labels, config.data_bucket, layout.label_key(labels.name), "text/csv")
            for path in files:
                store.upload(path, config.data_bucket, layout.raw_key(path.name, date))
            execution = pipeline.run(name=f"demo-{date.isoformat()}")
            (out / "executions" / f"{execution.name}.json").write_text(
                json.dumps(execution.as_dict(), indent=2, default=str)
            )
            return execution

        for step, (date, severity, files) in enumerate(plan, start=1):
            progress(f"day {date.isoformat()}: upload and run", step, total_steps)
            results.append(DayResult(date=date, drought=severity, execution=run_on(date, files)))
        for step, date in enumerate(later, start=len(plan) + 1):
            progress(f"{date.isoformat()}: late labels only, run", step, total_steps)
            later_runs.append((date, run_on(date, [])))
        for day in results:  # as the dashboard shows them now, late labels included
            arrived = day.date + dt.timedelta(days=LATE_LABEL_DAYS)
            for labels in label_files.get(arrived, []):
                day.labels_arrived, day.label_file = arrived, layout.label_key(labels.name)
            _summarise(day, _day_metrics(conn, day.date))
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
            "labels_arrived": d.labels_arrived.isoformat() if d.labels_arrived else None,
            "label_file": d.label_file,
            **{name: getattr(d, name) for name in _DAY_COLUMNS},
        }
        for d in results
    ]
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    progress("writing the dashboard page", total_steps, total_steps)
    page = write_page(database.grafana, out / DASHBOARD_PAGE, source="the demo's database")
    return DemoResult(
        days=results,
        out_dir=out,
        model=model_info,
        exported=exported,
        skipped=skipped,
        dashboard=out / DASHBOARD_PAGE if page is not None else None,
        later_runs=later_runs,
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
