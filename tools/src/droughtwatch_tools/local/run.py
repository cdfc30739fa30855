"""`droughtwatch local run`: one execution over a folder of raw files, against the local buckets
(a folder store under the user's data folder, shared with every other local run) and the
ledger, so a rerun, or a second run at the same time, does only what is not done yet."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from droughtwatch_contract.keys import KeyLayout
from droughtwatch_inference import logs
from droughtwatch_inference.adapters.folder_store import FolderStore
from droughtwatch_inference.errors import DatabaseUnavailable
from droughtwatch_inference.model.manifest import MANIFEST_NAME
from droughtwatch_inference.records import RawObject

from droughtwatch_tools.execution import Execution, execution_name
from droughtwatch_tools.local import state
from droughtwatch_tools.local.outcome import DAY_COLUMNS, DayLine, RunSummary, file_line
from droughtwatch_tools.local.raw_folder import raw_files
from droughtwatch_tools.local.runner import (
    LOCAL_TRIGGER,
    LocalConfig,
    LocalPipeline,
    ProgressCallback,
)

# The raw files copied into the local data bucket at once (`copy_in`).
COPY_THREADS = 4


@dataclass
class LocalRunOutcome:
    execution: Execution
    summary: RunSummary
    store_root: Path
    history_file: Path
    log_file: Path
    skipped: list[str] = field(default_factory=list)
    ledger_error: str | None = None  # the files' states could not be read


def run_folder(
    folder: Path,
    date: dt.date,
    dsn: str,
    *,
    model_dir: Path | None = None,
    say: Callable[[str], Any] = print,
    home: Path | None = None,
    concurrency: int | None = None,
    on_progress: ProgressCallback | None = None,
) -> LocalRunOutcome:
    """Publish ``model_dir`` (checked first: a bad model never replaces the stored one) or
    train a baseline when there is no model yet, copy the folder's raw files into the local
    data bucket, run the state machine once (``concurrency`` children at once, in as many
    worker processes; default the CPUs; ``on_progress`` hears the Map's counts), and read the
    files' states from the ledger.

    Raises ModelCheckFailed, naming the folder and each problem, when ``model_dir`` does not
    pass `droughtwatch model check`; then nothing is stored."""
    home = home or state.data_home()
    root = state.store_root(home)
    name = execution_name(LOCAL_TRIGGER)
    for sub in ("logs", "executions", "work"):
        (home / sub).mkdir(parents=True, exist_ok=True)
    log_file = home / "logs" / f"{name}.jsonl"
    logs.to_file(str(log_file))
    # Scratch files (downloads, the model's weights) per run: runs at the same time share the
    # buckets and the ledger, never a scratch folder.
    config = LocalConfig(database_dsn=dsn, work_dir=home / "work" / name, store_root=root)
    layout = KeyLayout()
    files, skipped = raw_files(folder)
    try:
        with LocalPipeline(config, concurrency) as pipeline:
            store = pipeline.store
            if model_dir is not None:
                from droughtwatch_tools.model_publish import publish_folder

                published = publish_folder(
                    model_dir, store, config.model_bucket, config.model_prefix
                )
                say(f"model {published.manifest.name} {published.manifest.version} published")
            elif not store.path(config.model_bucket, config.model_prefix + MANIFEST_NAME).exists():
                from droughtwatch_tools import training

                say("no model yet: training the baseline CNN on generated data (a few seconds)")
                training.train_and_publish(store, config.model_bucket, config.model_prefix)
            versions = copy_in(
                store, config.data_bucket, [(p, layout.raw_key(p.name, date)) for p in files]
            )
            execution = pipeline.run(name=name, on_progress=on_progress)
            summary, ledger_error = _summary(execution, store, config, versions, files)
    finally:
        shutil.rmtree(config.work_dir, ignore_errors=True)
    history = home / "executions" / f"{execution.name}.json"
    history.write_text(json.dumps(execution.as_dict(), indent=2, default=str))
    return LocalRunOutcome(
        execution=execution,
        summary=summary,
        store_root=root,
        history_file=history,
        log_file=log_file,
        skipped=skipped,
        ledger_error=ledger_error,
    )


def copy_in(store: FolderStore, bucket: str, uploads: list[tuple[Path, str]]) -> list[RawObject]:
    """Store each (file, key) as S3 would take an upload, and return the objects in order. A
    few at once: each copy waits mostly on the disk (reading, hashing and writing let go of
    the interpreter's lock, and each object is flushed to disk before it is renamed into
    place), so a backlog's gigabytes go in several times faster than one by one."""

    def put(upload: tuple[Path, str]) -> RawObject:
        path, key = upload
        store.upload(path, bucket, key)
        return store.head(bucket, key)

    with ThreadPoolExecutor(COPY_THREADS, thread_name_prefix="copy-in") as threads:
        return list(threads.map(put, uploads))


def _summary(
    execution: Execution,
    store: FolderStore,
    config: LocalConfig,
    versions: list[RawObject],
    files: list[Path],
) -> tuple[RunSummary, str | None]:
    """The files' states from the ledger, the label files the run read and the days it
    recomputed (read with the handlers' settings, which the pipeline has in its
    environment)."""
    from droughtwatch_contract.settings import CommonSettings
    from droughtwatch_inference.adapters.daily_metrics import DailyMetrics
    from droughtwatch_inference.adapters.database import connect
    from droughtwatch_inference.adapters.labels import Labels
    from droughtwatch_inference.adapters.ledger import Ledger
    from droughtwatch_inference.runtime_settings import load

    settings = load(CommonSettings)
    summary = RunSummary(execution.status, max_attempts=settings.max_attempts)
    try:
        with connect(settings) as conn:
            outcomes = Ledger(conn).outcomes(config.data_bucket, versions)
            # the run's id is its execution's name (the state machine passes it to each stage)
            summary.label_files = Labels(conn).files_of_run(execution.name)
            summary.days = [
                DayLine(**row) for row in DailyMetrics(conn).written_by(execution.name, DAY_COLUMNS)
            ]
    except DatabaseUnavailable as exc:
        return summary, exc.describe()
    for path, outcome in zip(files, outcomes, strict=True):
        report = store.path(config.data_bucket, outcome.report_key) if outcome.report_key else None
        summary.files.append(file_line(path.name, outcome, settings.max_attempts, report))
    return summary, None
