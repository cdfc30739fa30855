"""Observe Lambda: predictions -> metrics rows and Evidently HTML reports, per file of its item
(the day step pools the days: handlers.day). Evidently is imported when the first file is
observed (logic.evidently_api); torch never."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

from droughtwatch_contract.keys import KeyLayout
from droughtwatch_contract.settings import ObserveSettings

from droughtwatch_inference.adapters.ledger import Ledger
from droughtwatch_inference.adapters.storage import open_store
from droughtwatch_inference.handlers.common import run_files, run_handler
from droughtwatch_inference.logic.observe import ReferenceSummaries, observe_entry
from droughtwatch_inference.logic.stage import Budget
from droughtwatch_inference.records import StageReport


def observe(
    settings: ObserveSettings, ledger: Ledger, budget: Budget, report: StageReport
) -> StageReport:
    store = open_store(settings)
    layout = KeyLayout.from_settings(settings)
    work_dir = Path(settings.work_dir)
    references = ReferenceSummaries(store, settings.data_bucket, work_dir)
    work = partial(
        observe_entry,
        store=store,
        metrics=ledger,
        layout=layout,
        work_dir=work_dir,
        run_id=report.run_id,
        config=settings,
        references=references,
    )
    return run_files(settings, ledger, budget, report, work)


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return run_handler("observe", observe, event, context)
