"""observe_days (logic/daily.py) over daily rows kept in memory (MemoryDaily, the DailyPort
double) and a folder store: the time budget between days, and an error that stops the stage
rather than one day. The handler tests (test_observe_daily.py) pin the pooled values against
PostgreSQL."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from droughtwatch_contract.keys import KeyLayout
from droughtwatch_contract.settings import ObserveConfig
from droughtwatch_inference import predictions
from droughtwatch_inference.adapters.daily_metrics import DailyMetrics
from droughtwatch_inference.adapters.folder_store import FolderStore
from droughtwatch_inference.errors import DatabaseUnavailable
from droughtwatch_inference.logic.daily import observe_days
from droughtwatch_inference.logic.observe import ReferenceSummaries
from droughtwatch_inference.logic.ports import DailyPort
from droughtwatch_inference.logic.stage import Budget
from droughtwatch_inference.model.manifest import ModelManifest
from droughtwatch_inference.records import Day, DayReport, LateLabel

BUCKET = "data"
CLASSES = ("0", "1", "2", "3")
MANIFEST = ModelManifest(
    name="baseline",
    version="v1",
    channels=("B1", "B2"),
    classes=CLASSES,
    reference_class_shares={"0": 0.6, "1": 0.15, "2": 0.15, "3": 0.1},
)
CONFIG = ObserveConfig(
    drift_method="psi",
    drift_threshold=0.25,
    feature_drift_threshold=0.3,
    feature_drift_share=0.5,
    accuracy_margin=0.1,
    min_daily_images=1,
    save_html_report=False,
)


class MemoryDaily:
    """The daily rows over dicts, with adapters.daily_metrics's rule: a day is stale until a
    row that pooled its newest file is written; a row never replaces one that pooled more."""

    def __init__(self, files: dict[Day, list[tuple[int, str]]]) -> None:
        self.files = files
        self.rows: dict[tuple[dt.date, str, str], dict[str, Any]] = {}

    @staticmethod
    def _key(values: Any) -> tuple[dt.date, str, str]:
        if isinstance(values, Day):
            return values.batch_date, values.model_name, values.model_version
        return values["batch_date"], values["model_name"], values["model_version"]

    def stale_days(self) -> list[Day]:
        pooled = {key: row["last_metrics_id"] for key, row in self.rows.items()}
        return sorted(
            (day for day in self.files if pooled.get(self._key(day), 0) < day.last_metrics_id),
            key=self._key,
        )

    def day_files(self, day: Day) -> list[tuple[int, str]]:
        return [(i, key) for i, key in self.files[day] if i <= day.last_metrics_id]

    def day_labels(self, day: Day) -> list[LateLabel]:
        return []

    def upsert(self, row: dict[str, Any]) -> bool:
        old = self.rows.get(self._key(row))
        if old is not None and old["last_metrics_id"] > row["last_metrics_id"]:
            return False
        self.rows[self._key(row)] = row
        return True


class Unavailable(MemoryDaily):
    """The database goes away when a day's row is written."""

    def upsert(self, row: dict[str, Any]) -> bool:
        raise DatabaseUnavailable("cannot connect to PostgreSQL at 127.0.0.1:5432")


@pytest.fixture
def store(tmp_path: Path) -> FolderStore:
    store = FolderStore(tmp_path / "buckets")
    store.create_bucket(BUCKET)
    return store


def _day_of_files(store: FolderStore, tmp_path: Path, date: dt.date, sizes: list[int]) -> tuple:
    """Predictions files of ``sizes`` images for ``date`` in the store; the stale Day and its
    (metrics id, key) pairs, ids counted from the day's ordinal so that days do not share
    them."""
    files = []
    for n, size in enumerate(sizes):
        labels = np.arange(size) % len(CLASSES)
        probabilities = np.full((size, len(CLASSES)), 0.1, np.float32)
        probabilities[np.arange(size), labels] = 0.7
        path = tmp_path / f"{date}-{n}.parquet"
        ids = np.array([f"{date}-{n}-{i}" for i in range(size)])
        predictions.write([predictions.build_table(ids, probabilities, MANIFEST)], path)
        key = f"predictions/{date}/{n}.parquet"
        store.upload(path, BUCKET, key)
        files.append((date.toordinal() * 10 + n, key))
    day = Day(date, MANIFEST.name, MANIFEST.version, max(i for i, _ in files))
    return day, files


def _observe(
    daily: DailyPort, store: FolderStore, tmp_path: Path, budget: Budget, report: DayReport
) -> int:
    return observe_days(
        daily,
        store,
        BUCKET,
        KeyLayout(),
        tmp_path / "work",
        budget,
        report,
        config=CONFIG,
        references=ReferenceSummaries(store, BUCKET, tmp_path / "work"),
    )


def test_the_daily_rows_implement_the_port() -> None:
    assert isinstance(MemoryDaily({}), DailyPort)
    assert isinstance(DailyMetrics(conn=None), DailyPort)  # type: ignore[arg-type]


def test_days_after_the_time_budget_stay_stale_for_the_next_run(store, tmp_path) -> None:
    first, first_files = _day_of_files(store, tmp_path, dt.date(2026, 11, 20), [12, 8])
    second, second_files = _day_of_files(store, tmp_path, dt.date(2026, 11, 21), [5])
    daily = MemoryDaily({first: first_files, second: second_files})
    left = iter([100.0, 10.0])  # seconds left before each day; the margin is 60

    report = DayReport("day", "r1")
    written = _observe(daily, store, tmp_path, Budget(lambda: next(left), 60), report)

    assert written == 1 and report.failures == []
    row = daily.rows[(first.batch_date, "baseline", "v1")]
    assert (row["files"], row["images"], row["run_id"]) == (2, 20, "r1")
    assert row["last_metrics_id"] == first.last_metrics_id
    assert row["class_counts"] == {"0": 5, "1": 5, "2": 5, "3": 5}
    assert daily.stale_days() == [second]
    # the next run, with time enough, does the day that was left
    report = DayReport("day", "r2")
    assert _observe(daily, store, tmp_path, Budget(lambda: 1e9, 60), report) == 1
    assert report.failures == [] and daily.stale_days() == []
    assert daily.rows[(second.batch_date, "baseline", "v1")]["images"] == 5


def test_a_stage_error_on_a_day_stops_observe_instead_of_failing_the_day(store, tmp_path) -> None:
    day, files = _day_of_files(store, tmp_path, dt.date(2026, 11, 20), [6])
    daily = Unavailable({day: files})
    report = DayReport("day", "r1")
    with pytest.raises(DatabaseUnavailable):
        _observe(daily, store, tmp_path, Budget(lambda: 1e9, 60), report)
    assert report.failures == []  # not one day's failure: the stage itself fails
    assert daily.stale_days() == [day]
