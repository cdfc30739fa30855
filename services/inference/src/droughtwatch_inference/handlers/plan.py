"""Plan Lambda, an execution's first step: ingests new late label files (so that the day step
recomputes the days they land on), registers new raw objects in the ledger, then splits the
files waiting for any stage into the items the Map fans out. Imports neither torch nor
Evidently; numpy only once it runs (the label files' image ids), so its import stays light.

Event in: ``{"body": {"run_id", "input", "rounds_done", "concurrency"}}`` (the state machine's
Plan task). Response body: the event's body and ``plan``: the round, the items and counts."""

from __future__ import annotations

import datetime as dt
from functools import partial
from typing import Any

from droughtwatch_contract.keys import KeyLayout
from droughtwatch_contract.settings import PlanSettings

from droughtwatch_inference.adapters.ledger import Ledger
from droughtwatch_inference.adapters.storage import open_store
from droughtwatch_inference.handlers.common import parse_event, run_handler
from droughtwatch_inference.logic.plan import ItemLimits, discover, plan_items
from droughtwatch_inference.logic.stage import Budget
from droughtwatch_inference.records import PlanReport


def plan(
    settings: PlanSettings,
    ledger: Ledger,
    budget: Budget,
    report: PlanReport,
    *,
    concurrency: int,
) -> PlanReport:
    store = open_store(settings)
    layout = KeyLayout.from_settings(settings)
    today = dt.datetime.now(dt.UTC).date()
    # Late labels first: the day step recomputes the days they land on at this execution's end.
    from droughtwatch_inference.adapters.labels import Labels
    from droughtwatch_inference.logic.labels import ingest_labels

    report.label_files = [
        outcome.as_dict()
        for outcome in ingest_labels(
            store, Labels(ledger.conn), settings.data_bucket, layout, report.run_id
        )
    ]
    report.registered = discover(store, ledger, settings.data_bucket, layout, report.run_id, today)
    return plan_items(
        ledger,
        budget,
        report,
        ItemLimits.from_settings(settings),
        concurrency=concurrency,
        max_attempts=settings.max_attempts,
    )


def _count(value: Any, default: int) -> int:
    """A count from the event, or ``default`` when it is missing or not a whole number."""
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    run_id, body = parse_event(event)
    report = PlanReport(stage="plan", run_id=run_id, round=_count(body.get("rounds_done"), 0) + 1)
    concurrency = max(1, _count(body.get("concurrency"), 1))
    # the parsed body, so that run_handler reads the same run id (a hand invocation without
    # one gets a new id at each parse)
    return run_handler(
        "plan", partial(plan, concurrency=concurrency), {"body": body}, context, report=report
    )
