"""What every handler does around its step: settings, the event's shape, a database connection
(its schema checked once per container), the time budget, the response, and the run record.

Event in: ``{"body": {...}}`` from the state machine (Plan's names the execution and its round,
a child's stages name the run and their item: ``{"item": {"ids": [ledger ids], ...}}``), or
``{"run_id": ..., "input": {...}}`` when invoked by hand. Response out: ``{"statusCode": 200,
"body": {<the input passed through>, "<step>": <counts>}}``, or ``{"statusCode": 500, "body":
{"error": <code>, "cause": <message and what to do>, ...}}`` when the step as a whole failed.

A stage given an item claims only the item's files; without one (invoked by hand) any file.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import math
import time
import uuid
from collections.abc import Callable
from typing import Any

from droughtwatch_contract.settings import CommonSettings
from droughtwatch_contract.stages import WORKFLOW

from droughtwatch_inference import logs
from droughtwatch_inference.adapters import database
from droughtwatch_inference.adapters.ledger import Ledger, RunReport
from droughtwatch_inference.errors import DroughtwatchError, InvalidEvent
from droughtwatch_inference.logic.stage import Budget, FileResult, describe, run_stage
from droughtwatch_inference.records import LedgerEntry, StageReport
from droughtwatch_inference.runtime_settings import cached

_checked: set[str] = set()

StepFunction = Callable[[Any, Ledger, Budget, Any], Any]


def parse_event(event: Any) -> tuple[str, dict[str, Any]]:
    """(run_id, body to pass through) from either event shape."""
    if not isinstance(event, dict):
        event = {}
    body = event.get("body") if isinstance(event.get("body"), dict) else None
    if body is None:
        body = {"run_id": event.get("run_id"), "input": event.get("input", {})}
    run_id = body.get("run_id") or f"manual-{uuid.uuid4().hex[:12]}"
    return str(run_id), {**body, "run_id": str(run_id)}


def item_files(body: dict[str, Any]) -> list[int] | None:
    """The ledger ids of the item a child workflow was given, or None (no item)."""
    item = body.get("item")
    if item is None:
        return None
    ids = item.get("ids") if isinstance(item, dict) else None
    if not isinstance(ids, list) or not all(
        isinstance(i, int) and not isinstance(i, bool) for i in ids
    ):
        raise InvalidEvent(
            f'the event\'s item must be {{"ids": [ledger ids]}}, got {str(item)[:200]}: '
            "the state machine's ItemSelector gives it; invoke the stage without an item to "
            "work on any file"
        )
    return ids


def budget_from(context: Any, settings: CommonSettings) -> Budget:
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if callable(remaining):
        return Budget(lambda: remaining() / 1000.0, settings.time_margin_seconds)
    return Budget(lambda: math.inf, settings.time_margin_seconds)


def run_files(
    settings: CommonSettings,
    ledger: Ledger,
    budget: Budget,
    report: StageReport,
    work: Callable[[LedgerEntry], FileResult],
) -> StageReport:
    """The stage loop over the ledger's files for ``report.stage``, with the settings' limits."""
    return run_stage(
        report.stage,
        report.run_id,
        ledger,
        work,
        budget,
        max_attempts=settings.max_attempts,
        lease_seconds=settings.lease_seconds,
        report=report,
    )


def reset_schema_checks() -> None:
    """Check the schema again on the next connection: for a process that runs the handlers
    more than once against databases it migrates meanwhile (the local runner, the tests)."""
    _checked.clear()


def open_ledger(settings: CommonSettings, files: list[int] | None = None) -> Ledger:
    """A connection as the stages' role, once the schema is checked to be current (once per
    container); its claims restricted to ``files`` when given. The stages never migrate: their
    role has no DDL rights."""
    conn = database.connect(settings)
    key = f"{id(settings)}"
    if key not in _checked:
        try:
            database.check_schema(conn)
        except Exception:
            conn.close()
            raise
        _checked.add(key)
    return Ledger(conn, claim_lock=settings.claim_lock, files=files)


def run_handler(
    stage: str,
    stage_function: StepFunction,
    event: Any,
    context: Any,
    *,
    report: RunReport | None = None,
) -> dict[str, Any]:
    """Run ``stage_function`` with the settings model the workflow registry gives the step
    ``stage``, filling ``report`` (a StageReport by default)."""
    started_at = dt.datetime.now(dt.UTC)
    started = time.monotonic()
    run_id, body = parse_event(event)
    if report is None:
        report = StageReport(stage=stage, run_id=run_id)
    ledger: Ledger | None = None
    try:
        settings = cached(WORKFLOW[stage].settings)
        ledger = open_ledger(settings, item_files(body))
        stage_function(settings, ledger, budget_from(context, settings), report)
    except Exception as exc:
        code = exc.code if isinstance(exc, DroughtwatchError) else type(exc).__name__
        cause = describe(exc)
        logs.event("stage.failed", logging.ERROR, stage=stage, run_id=run_id, error=cause)
        if ledger is not None:
            try:
                ledger.record_run(report, started_at, cause)
            except Exception as record_exc:  # the database may be what failed
                logs.event("run.not_recorded", logging.ERROR, error=type(record_exc).__name__)
        _close(ledger)
        return {
            "statusCode": 500,
            "body": {**body, "error": code, "cause": cause, stage: report.as_dict()},
        }
    ledger.record_run(report, started_at, None)
    _close(ledger)
    counts = report.as_dict()
    # Plan's items (every ledger id it hands out) are in its response, not in the log line.
    logged = {k: v for k, v in counts.items() if k != "items"}
    logs.event("stage.done", seconds=round(time.monotonic() - started, 3), **logged)
    return {"statusCode": 200, "body": {**body, stage: counts}}


def _close(ledger: Ledger | None) -> None:
    if ledger is not None:
        # closing a broken connection may fail; there is nothing left to lose then
        with contextlib.suppress(Exception):
            ledger.conn.close()
