"""Day Lambda, an execution's last step: pools each stale day's predictions files (one model
version at a time) and measures the pool as Observe measures a file, once per execution
however many children observed the day's files. Evidently is imported when a day is pooled;
torch never."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from droughtwatch_contract.keys import KeyLayout
from droughtwatch_contract.settings import ObserveSettings

from droughtwatch_inference.adapters.daily_metrics import DailyMetrics
from droughtwatch_inference.adapters.ledger import Ledger
from droughtwatch_inference.adapters.storage import open_store
from droughtwatch_inference.handlers.common import parse_event, run_handler
from droughtwatch_inference.logic.daily import observe_days
from droughtwatch_inference.logic.observe import ReferenceSummaries
from droughtwatch_inference.logic.stage import Budget
from droughtwatch_inference.records import DayReport


def pool_days(
    settings: ObserveSettings, ledger: Ledger, budget: Budget, report: DayReport
) -> DayReport:
    store = open_store(settings)
    work_dir = Path(settings.work_dir)
    daily = DailyMetrics(ledger.conn)
    report.days_done = observe_days(
        daily,
        store,
        settings.data_bucket,
        KeyLayout.from_settings(settings),
        work_dir,
        budget,
        report,
        config=settings,
        references=ReferenceSummaries(store, settings.data_bucket, work_dir),
    )
    report.days_failed = len(report.failures)
    # the failed days, and any the time budget left, are pooled by the next execution
    report.remaining = len(daily.stale_days())
    return report


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    run_id, body = parse_event(event)
    # the parsed body: run_handler then reads the same run id (see handlers/plan.py)
    return run_handler(
        "day", pool_days, {"body": body}, context, report=DayReport(stage="day", run_id=run_id)
    )
