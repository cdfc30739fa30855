"""Processing Lambda: raw -> processed, for the files of its item. Imports neither torch nor
Evidently."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

from droughtwatch_contract.keys import KeyLayout
from droughtwatch_contract.settings import ProcessingSettings

from droughtwatch_inference.adapters.ledger import Ledger
from droughtwatch_inference.adapters.storage import open_store
from droughtwatch_inference.handlers.common import run_files, run_handler
from droughtwatch_inference.logic.processing import process_entry
from droughtwatch_inference.logic.stage import Budget
from droughtwatch_inference.records import StageReport


def process(
    settings: ProcessingSettings, ledger: Ledger, budget: Budget, report: StageReport
) -> StageReport:
    store = open_store(settings)
    layout = KeyLayout.from_settings(settings)
    work = partial(
        process_entry,
        store=store,
        layout=layout,
        work_dir=Path(settings.work_dir),
        chunk_size=settings.chunk_size,
        digests=ledger,
        retention_days=settings.processed_retention_days,
    )
    budget = Budget(budget.remaining_seconds, budget.margin_seconds, settings.max_files_per_run)
    return run_files(settings, ledger, budget, report, work)


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return run_handler("processing", process, event, context)
