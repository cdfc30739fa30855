"""One execution of the pipeline's state machine and its history, as Step Functions reports it.

The same model serves an execution in AWS (`droughtwatch run` follows it) and one that moto's
interpreter runs in-process (`droughtwatch local run`, the demo): both are read with the same
two API calls, `describe_execution` and the pages of `get_execution_history`. The history files
that local runs write (`as_dict`) are read back by `droughtwatch local history` (`from_dict`).
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


def execution_name(trigger: str, now: dt.datetime | None = None) -> str:
    """A new execution's name: what started it, the time and a random suffix, unique per start
    (Step Functions refuses a name reused within 90 days), e.g. ``cli-20261127T060000-1a2b3c``;
    short enough for the title of a local run's table in 80 columns."""
    now = now or dt.datetime.now(dt.UTC)
    return f"{trigger}-{now:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"


# The statuses after which an execution changes no more.
TERMINAL = frozenset({"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"})
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

    @classmethod
    def from_api(cls, raw: Mapping[str, Any]) -> ExecutionEvent:
        """An event of `get_execution_history` (its details sit under ``<type>EventDetails``)."""
        details = next(
            (v for k, v in raw.items() if k.endswith("EventDetails") and isinstance(v, dict)), {}
        )
        return cls(
            id=int(raw["id"]),
            type=str(raw["type"]),
            timestamp=raw["timestamp"],
            state=details.get("name"),
            error=details.get("error"),
            cause=details.get("cause"),
            output=_json_or_text(details.get("output")),
            detail=_detail(details),
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
        )


@dataclass
class Execution:
    """An execution: its status, its error and cause when it failed, its output, its history,
    and how long it ran (from its start to its stop, as Step Functions dates them)."""

    name: str
    status: str
    arn: str | None = None
    error: str | None = None
    cause: str | None = None
    output: Any = None
    events: list[ExecutionEvent] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def succeeded(self) -> bool:
        return self.status == "SUCCEEDED"

    @property
    def failed_state(self) -> str | None:
        """The stage the execution failed in: the last Task state entered (the Choice, Pass
        and Fail states after it only route the stage's failure); None when it succeeded."""
        if self.succeeded:
            return None
        for entered in ("TaskStateEntered", "StateEntered"):
            for event in reversed(self.events):
                if event.type.endswith(entered) and event.state:
                    return event.state
        return None

    def states_entered(self) -> list[str]:
        return [e.state for e in self.events if e.type.endswith("StateEntered") and e.state]

    @property
    def error_line(self) -> str:
        """The error and cause as one line; the handlers' causes already start with the error
        code ("InvalidModel: ..."), which is then not repeated."""
        if not self.cause:
            return self.error or "the execution failed"
        if not self.error or self.cause.startswith(f"{self.error}:"):
            return self.cause
        return f"{self.error}: {self.cause}"

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
