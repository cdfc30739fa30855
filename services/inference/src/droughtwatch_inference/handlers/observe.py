"""Observe Lambda: predictions -> metrics row and Evidently HTML report. Evidently is imported when
the first file is observed (logic.observe.load_evidently); torch never."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

from droughtwatch_contract.keys import KeyLayout
from droughtwatch_contract.settings import ObserveSettings

from droughtwatch_inference.adapters.ledger import Ledger
from droughtwatch_inference.adapters.storage import open_store
from droughtwatch_inference.handlers.common import run_files, run_handler
from droughtwatch_inference.logic.observe import observe_entry
from droughtwatch_inference.logic.stage import Budget
from droughtwatch_inference.records import StageReport


def observe(
    settings: ObserveSettings, ledger: Ledger, budget: Budget, report: StageReport
) -> StageReport:
    work = partial(
        observe_entry,
        store=open_store(settings),
        metrics=ledger,
        layout=KeyLayout.from_settings(settings),
        work_dir=Path(settings.work_dir),
        run_id=report.run_id,
        method=settings.drift_method,
        threshold=settings.drift_threshold,
        save_html=settings.save_html_report,
    )
    return run_files(settings, ledger, budget, report, work)


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return run_handler("observe", observe, event, context)
