"""Plan, an execution's first step: register the new raw objects in the ledger, then split the
files waiting for any stage into items, each the work of one child workflow (Processing,
Inference, Observe on exactly its files).

An item is sized to finish well inside one invocation: at most ``max_files`` files and
``max_bytes`` raw bytes (a file larger than that is an item of its own). There are at least as
many items as children may run at once (when there are that many files), so the fan-out is
used. The items travel in the state machine's data, whose size Step Functions limits: a round
hands out at most ``round_files`` files and stops at ``budget_bytes`` of items; what is left
waits for the execution's next round.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from droughtwatch_contract.keys import KeyLayout
from droughtwatch_contract.settings import PlanSettings
from droughtwatch_contract.statemachine import ITEMS_BUDGET_BYTES

from droughtwatch_inference import logs
from droughtwatch_inference.logic.ports import PlanPort, StorePort
from droughtwatch_inference.logic.stage import Budget
from droughtwatch_inference.records import PendingFile, PlanReport, RawObject


@dataclass(frozen=True)
class ItemLimits:
    max_files: int
    max_bytes: int
    round_files: int
    budget_bytes: int = ITEMS_BUDGET_BYTES

    @classmethod
    def from_settings(cls, settings: PlanSettings) -> ItemLimits:
        return cls(settings.item_max_files, settings.item_max_bytes, settings.plan_max_files)


def discover(
    store: StorePort,
    ledger: PlanPort,
    bucket: str,
    layout: KeyLayout,
    run_id: str,
    today: dt.date,
) -> int:
    """Register every raw object version not yet in the ledger, whatever its name (a file
    named ``_late.tfrecord`` is data too); returns how many were new. What each one is gets
    decided when Processing takes it, so every object under the raw prefix has a row."""
    found: list[tuple[RawObject, dt.date]] = [
        (obj, layout.batch_date(obj.key) or today)
        for obj in store.list(bucket, layout.raw)
        if layout.is_raw_object(obj.key)
    ]
    return ledger.register(bucket, found, run_id)


def split_items(
    files: Sequence[PendingFile], limits: ItemLimits, min_items: int
) -> list[list[PendingFile]]:
    """Consecutive files in groups: at least ``min(len(files), min_items)`` of them, each of at
    most ``limits.max_files`` files and, unless one file alone is larger, ``limits.max_bytes``
    bytes; the files spread evenly over the groups."""
    if not files:
        return []
    wanted = max(
        math.ceil(len(files) / limits.max_files),
        math.ceil(sum(f.size_bytes for f in files) / limits.max_bytes),
        min(len(files), max(1, min_items)),
    )
    per_item = min(limits.max_files, math.ceil(len(files) / wanted))
    items: list[list[PendingFile]] = []
    current: list[PendingFile] = []
    size = 0
    for file in files:
        if current and (len(current) >= per_item or size + file.size_bytes > limits.max_bytes):
            items.append(current)
            current, size = [], 0
        current.append(file)
        size += file.size_bytes
    items.append(current)
    return items


def item_value(files: Sequence[PendingFile]) -> dict[str, Any]:
    """An item as the Map hands it to its child: the ledger ids it claims, and their bytes."""
    return {"ids": [f.id for f in files], "bytes": sum(f.size_bytes for f in files)}


def _size(value: Any) -> int:
    """The bytes a value takes in the state's JSON (compact, as Step Functions keeps it)."""
    return len(json.dumps(value, separators=(",", ":")))


def plan_items(
    ledger: PlanPort,
    budget: Budget,
    report: PlanReport,
    limits: ItemLimits,
    *,
    concurrency: int,
    max_attempts: int,
) -> PlanReport:
    """This round's items into ``report``. The first round also retries files that failed
    with attempts left; later rounds take only files waiting since (a file that failed in this
    execution waits for the next one). With no time left (a local run's Ctrl-C) nothing is
    planned, and the execution pools the days and ends."""
    waiting = ledger.pending_files(
        max_attempts=max_attempts, retry_failed=report.round == 1, limit=limits.round_files
    )
    stopped = budget.remaining_seconds() < budget.margin_seconds
    if stopped:
        logs.event("stage.time_budget_reached", stage=report.stage, run_id=report.run_id)
    used = 2  # the brackets of the items' list
    for files in [] if stopped else split_items(waiting.files, limits, concurrency):
        value = item_value(files)
        used += _size(value) + 1
        if used > limits.budget_bytes:
            break
        report.items.append(value)
        report.files += len(files)
        report.bytes += value["bytes"]
    report.item_count = len(report.items)
    report.left = waiting.total - report.files
    report.held = waiting.held
    logs.event(
        "plan.done",
        run_id=report.run_id,
        round=report.round,
        registered=report.registered,
        files=report.files,
        items=report.item_count,
        left=report.left,
        held=report.held,
    )
    return report
