"""One execution of the pipeline's state machine and its history, as Step Functions reports it:
its events, and the map runs of its Distributed Map with their child executions (one per item).

The same model serves an execution in AWS (`droughtwatch run` follows it) and one that moto's
interpreter runs in-process (`droughtwatch local run`, the demo): both are read with the same
API calls, `describe_execution` and the pages of `get_execution_history`, and for the map runs
`list_map_runs` and `describe_map_run` (on AWS the failed children come from
`list_executions(mapRunArn=...)`; moto keeps no child executions, so the local runner records
them itself). The history files that local runs write (`as_dict`) are read back by
`droughtwatch local history` (`from_dict`).
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from droughtwatch_contract.stages import Step


def execution_name(trigger: str, now: dt.datetime | None = None) -> str:
    """A new execution's name: what started it, the time and a random suffix, unique per start
    (Step Functions refuses a name reused within 90 days), e.g. ``cli-20261127T060000-1a2b3c``;
    short enough for the title of a local run's table in 80 columns."""
    now = now or dt.datetime.now(dt.UTC)
    return f"{trigger}-{now:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"


# The statuses after which an execution changes no more.
TERMINAL = frozenset({"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"})
# The states that do work (a Lambda invocation, a fan-out), as opposed to those that route.
WORK_ENTERED = ("TaskStateEntered", "MapStateEntered")
# The failed children of a map run read from AWS, at most (their errors name the cause).
FAILED_CHILDREN_READ = 10
# An event's detail shows each of its values up to this many characters (a stage's output can
# list every file of the run).
DETAIL_CHARS = 400


def _json_or_text(text: Any) -> Any:
    if not isinstance(text, str):
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


def _detail(details: Mapping[str, Any]) -> str:
    parts = []
    for name in ("error", "cause", "output", "input"):
        value = details.get(name)
        if value not in (None, ""):
            text = str(value)
            cut = text if len(text) < DETAIL_CHARS else text[:DETAIL_CHARS] + "…"
            parts.append(f"{name}={cut}")
    return "; ".join(parts)


@dataclass(frozen=True)
class ExecutionEvent:
    """One history event. ``state`` is the state it belongs to, ``output`` that state's
    output (parsed when JSON), ``detail`` its error, cause, output and input in one line as
    the history table shows them."""

    id: int
    type: str
    timestamp: dt.datetime
    state: str | None = None
    error: str | None = None
    cause: str | None = None
    output: Any = None
    detail: str = ""
    map_run_arn: str | None = None  # a MapRunStarted event's map run

    def step_report(self, step: Step) -> dict[str, Any] | None:
        """What ``step`` reported, when this event is its Task's exit: its entry in the
        response body (e.g. Processing's counts); else None."""
        if self.type != "TaskStateExited" or self.state != step.title:
            return None
        output = self.output if isinstance(self.output, dict) else {}
        body = output.get("body") if isinstance(output.get("body"), dict) else {}
        report = body.get(step.name)
        return report if isinstance(report, dict) else None

    @classmethod
    def from_api(cls, raw: Mapping[str, Any]) -> ExecutionEvent:
        """An event of `get_execution_history` (its details sit under ``<type>EventDetails``;
        its timestamp a datetime, or ISO text as moto's interpreter keeps it)."""
        details = next(
            (v for k, v in raw.items() if k.endswith("EventDetails") and isinstance(v, dict)), {}
        )
        timestamp = raw["timestamp"]
        if isinstance(timestamp, str):
            timestamp = dt.datetime.fromisoformat(timestamp)
        return cls(
            id=int(raw["id"]),
            # moto's interpreter keeps the type as an enum member
            type=str(getattr(raw["type"], "value", raw["type"])),
            timestamp=timestamp,
            state=details.get("name"),
            error=details.get("error"),
            cause=details.get("cause"),
            output=_json_or_text(details.get("output")),
            detail=_detail(details),
            map_run_arn=details.get("mapRunArn"),
        )

    @property
    def failed(self) -> bool:
        """A failure event (TaskFailed, ExecutionFailed, ...) or a Fail state entered."""
        return "Fail" in self.type

    def as_dict(self) -> dict[str, Any]:
        # The output is kept in the detail only: the execution's own output is the one read.
        return {
            "id": self.id,
            "timestamp": self.timestamp.isoformat(),
            "type": self.type,
            "state": self.state,
            "error": self.error,
            "cause": self.cause,
            "detail": self.detail,
            "map_run_arn": self.map_run_arn,
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], position: int) -> ExecutionEvent:
        """An event of a history file; files written before events had ids, errors and
        causes give only the rest."""
        return cls(
            id=int(raw.get("id", position)),
            type=raw["type"],
            timestamp=dt.datetime.fromisoformat(raw["timestamp"]),
            state=raw.get("state"),
            error=raw.get("error"),
            cause=raw.get("cause"),
            detail=raw.get("detail", ""),
            map_run_arn=raw.get("map_run_arn"),
        )


@dataclass
class Execution:
    """An execution: its status, its error and cause when it failed, its output, its history,
    how long it ran (from its start to its stop, as Step Functions dates them), and its map
    runs with their child executions. A child is an Execution too (``item`` its index)."""

    name: str
    status: str
    arn: str | None = None
    error: str | None = None
    cause: str | None = None
    output: Any = None
    events: list[ExecutionEvent] = field(default_factory=list)
    seconds: float = 0.0
    map_runs: list[MapRun] = field(default_factory=list)
    item: int | None = None  # a child's index in its map run

    @property
    def succeeded(self) -> bool:
        return self.status == "SUCCEEDED"

    @property
    def failed_state(self) -> str | None:
        """The step the execution failed in: the last Task or Map state entered (the Choice,
        Pass and Fail states after it only route the failure); None when it succeeded."""
        if self.succeeded:
            return None
        for entered in (WORK_ENTERED, ("StateEntered",)):
            for event in reversed(self.events):
                if event.type.endswith(entered) and event.state:
                    return event.state
        return None

    def states_entered(self) -> list[str]:
        return [e.state for e in self.events if e.type.endswith("StateEntered") and e.state]

    @property
    def children(self) -> list[Execution]:
        """The child executions read, of every map run, in order."""
        return [child for run in self.map_runs for child in run.children]

    @property
    def failed_children(self) -> list[Execution]:
        return [child for child in self.children if child.status in ("FAILED", "TIMED_OUT")]

    @property
    def error_line(self) -> str:
        """The error and cause as one line; the handlers' causes already start with the error
        code ("InvalidModel: ..."), which is then not repeated. When items failed, the first
        failed child's error leads (the parent only says that too many failed), then where it
        failed and the parent's own error."""
        if not self.cause:
            line = self.error or "the execution failed"
        elif not self.error or self.cause.startswith(f"{self.error}:"):
            line = self.cause
        else:
            line = f"{self.error}: {self.cause}"
        failed = self.failed_children
        if failed:
            first = failed[0]
            return f"{first.error_line} ({first.name} failed in {first.failed_state}; {line})"
        return line

    def step_reports(self, step: Step) -> list[dict[str, Any]]:
        """What ``step`` reported each time it ran, in this execution and its children: its
        response body's entry (e.g. Processing's counts), read from the history's outputs."""
        return [
            report
            for execution in (self, *self.children)
            for event in execution.events
            if (report := event.step_report(step)) is not None
        ]

    def step_counts(self, step: Step) -> dict[str, int]:
        """``step``'s counts summed over its runs (files_done, images, remaining...)."""
        totals: dict[str, int] = {}
        for report in self.step_reports(step):
            for key, value in report.items():
                if isinstance(value, int) and not isinstance(value, bool):
                    totals[key] = totals.get(key, 0) + value
        return totals

    def step_failures(self, step: Step) -> list[dict[str, Any]]:
        """The files (or days) ``step`` failed, over its runs, with their errors."""
        return [f for report in self.step_reports(step) for f in report.get("failures", [])]

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "arn": self.arn,
            "status": self.status,
            "error": self.error,
            "cause": self.cause,
            "output": self.output,
            "seconds": round(self.seconds, 3),
            "events": [e.as_dict() for e in self.events],
            "map_runs": [run.as_dict() for run in self.map_runs],
            "item": self.item,
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Execution:
        """An execution from its history file (raises KeyError or ValueError on another
        file)."""
        return cls(
            name=raw["name"],
            status=raw["status"],
            arn=raw.get("arn"),
            error=raw.get("error"),
            cause=raw.get("cause"),
            output=raw.get("output"),
            events=[
                ExecutionEvent.from_dict(e, position)
                for position, e in enumerate(raw["events"], start=1)
            ],
            seconds=raw.get("seconds", 0.0),
            map_runs=[MapRun.from_dict(run) for run in raw.get("map_runs", [])],
            item=raw.get("item"),
        )


@dataclass
class MapRun:
    """One run of the Distributed Map: its counts of items (DescribeMapRun's itemCounts:
    total, succeeded, failed, running, timedOut, aborted, pending) and its child executions
    read (locally all of them; on AWS the failed ones)."""

    arn: str
    status: str
    items: dict[str, int] = field(default_factory=dict)
    children: list[Execution] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.items.get("total", 0)

    @property
    def failed(self) -> int:
        """Items failed, timed out or aborted: what counts against the tolerance."""
        return sum(self.items.get(k, 0) for k in ("failed", "timedOut", "aborted"))

    @property
    def done(self) -> int:
        return self.items.get("succeeded", 0) + self.failed

    def as_dict(self) -> dict[str, Any]:
        return {
            "arn": self.arn,
            "status": self.status,
            "items": dict(self.items),
            "children": [child.as_dict() for child in self.children],
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> MapRun:
        return cls(
            arn=raw["arn"],
            status=raw["status"],
            items=dict(raw.get("items", {})),
            children=[Execution.from_dict(child) for child in raw.get("children", [])],
        )


@dataclass(frozen=True)
class PlanSummary:
    """What a round of Plan handed to the Map: its files, its items, the largest item."""

    round: int
    files: int
    items: int
    largest: int

    @classmethod
    def from_report(cls, plan: Mapping[str, Any]) -> PlanSummary:
        """From Plan's response body's ``plan`` (its counts and items)."""
        items = plan.get("items") or []
        return cls(
            round=int(plan.get("round", 0)),
            files=int(plan.get("files", 0)),
            items=int(plan.get("item_count", len(items))),
            largest=max((len(i.get("ids", [])) for i in items), default=0),
        )


def read_history(sfn: Any, execution_arn: str) -> list[ExecutionEvent]:
    """Every event of the execution's history, page after page, oldest first."""
    events: list[ExecutionEvent] = []
    kwargs: dict[str, Any] = {"executionArn": execution_arn, "maxResults": 1000}
    while True:
        page = sfn.get_execution_history(**kwargs)
        events.extend(ExecutionEvent.from_api(raw) for raw in page["events"])
        if not page.get("nextToken"):
            return events
        kwargs["nextToken"] = page["nextToken"]


def read_execution(sfn: Any, execution_arn: str) -> Execution:
    """The execution as a Step Functions client (``sfn``) reports it now. Described before
    its history is read, so that a terminal status comes with the whole history."""
    described = sfn.describe_execution(executionArn=execution_arn)
    events = read_history(sfn, execution_arn)
    started, stopped = described.get("startDate"), described.get("stopDate")
    return Execution(
        name=described["name"],
        arn=execution_arn,
        status=described["status"],
        error=described.get("error"),
        cause=described.get("cause"),
        output=_json_or_text(described.get("output")),
        events=events,
        seconds=(stopped - started).total_seconds() if started and stopped else 0.0,
    )


def describe_map_run(sfn: Any, map_run_arn: str) -> MapRun:
    """A map run's status and item counts now (no children)."""
    described = sfn.describe_map_run(mapRunArn=map_run_arn)
    return MapRun(
        arn=map_run_arn,
        status=str(described["status"]),
        items={k: int(v) for k, v in described.get("itemCounts", {}).items()},
    )


def map_run_arns(events: list[ExecutionEvent]) -> list[str]:
    """The map runs an execution started, in order (their MapRunStarted events)."""
    return [e.map_run_arn for e in events if e.type == "MapRunStarted" and e.map_run_arn]


def read_failed_children(
    sfn: Any, map_run_arn: str, limit: int = FAILED_CHILDREN_READ
) -> list[Execution]:
    """The first ``limit`` failed child executions of a map run, with their histories (AWS
    lists a map run's children with `list_executions(mapRunArn=...)`)."""
    listed = sfn.list_executions(mapRunArn=map_run_arn, statusFilter="FAILED", maxResults=limit)
    return [read_execution(sfn, e["executionArn"]) for e in listed.get("executions", [])[:limit]]
