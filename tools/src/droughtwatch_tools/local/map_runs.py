"""What moto's interpreter leaves out of a Distributed Map, added by the local runner so that a
local execution behaves and reads as one on AWS:

- child executions: moto runs each item's child workflow on a thread and discards its events;
  here each child gets its own history, kept with its status, error and cause (AWS shows each
  child as an execution of its own; `local history` prints them);
- the tolerance: moto parses ToleratedFailurePercentage and ignores it (a failed child becomes
  null and the Map succeeds); here a map run whose failed items exceed it fails, as on AWS, with
  States.ExceedToleratedFailureThreshold. AWS may stop the run as soon as the threshold is
  passed; locally the running children finish first.

Both replace methods of moto's interpreter (`ChildRecorder.patches`): moto is pinned to a tested
range in pyproject.toml because these name its internals, as the Lambda seam does.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any
from unittest import mock

from droughtwatch_contract.statemachine import exceeds_tolerance

from droughtwatch_tools.execution import Execution, ExecutionEvent, MapRun

EXCEEDED = "States.ExceedToleratedFailureThreshold"


class ChildRecorder:
    """The child executions of every map run, by the parent execution's ARN."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._children: dict[str, dict[str, list[Execution]]] = {}

    def add(self, execution_arn: str, map_run_arn: str, child: Execution) -> None:
        with self._lock:
            runs = self._children.setdefault(execution_arn, {})
            runs.setdefault(map_run_arn, []).append(child)

    def children(self, execution_arn: str, map_run_arn: str) -> list[Execution]:
        """A map run's children in item order."""
        with self._lock:
            found = list(self._children.get(execution_arn, {}).get(map_run_arn, []))
        return sorted(found, key=lambda c: c.item or 0)

    def forget(self, execution_arn: str) -> None:
        with self._lock:
            self._children.pop(execution_arn, None)

    def map_runs(self, sfn: Any, execution_arn: str, arns: list[str]) -> list[MapRun]:
        """The execution's map runs (counts from moto) with the children recorded here."""
        from droughtwatch_tools.execution import describe_map_run

        runs = []
        for arn in arns:
            run = describe_map_run(sfn, arn)
            run.children = self.children(execution_arn, arn)
            runs.append(run)
        return runs

    @contextmanager
    def patches(self) -> Iterator[None]:
        """moto's Distributed Map with children recorded and the tolerance applied."""
        from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration import (
            distributed_iteration_component as component,
        )
        from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration.itemprocessor import (  # noqa: E501
            distributed_item_processor_worker as worker,
        )

        recorder = self
        eval_job = worker.DistributedItemProcessorWorker._eval_job
        map_run = component.DistributedIterationComponent._map_run

        def recording_eval_job(self: Any, env: Any, job: Any) -> None:
            from moto.stepfunctions.parser.asl.eval.event.event_manager import EventManager

            events = EventManager()
            env.event_manager = events  # this child's own history
            started = dt.datetime.now(dt.UTC)
            try:
                eval_job(self, env, job)
            finally:
                parent = env.states.context_object.context_object_data["Execution"]["Id"]
                child = _child(job, env, events.get_event_history(), started)
                recorder.add(parent, self._map_run_record.map_run_arn, child)

        def tolerant_map_run(self: Any, env: Any, eval_input: Any) -> None:
            map_run(self, env, eval_input)
            record = eval_input.map_run_record
            items = record.item_counter
            failed = items.failed.get() + items.timed_out.get() + items.aborted.get()
            total = items.total.get()
            tolerated = float(record.tolerated_failure_percentage or 0.0)
            if exceeds_tolerance(failed, total, tolerated):
                raise _exceeded(env, failed, total, tolerated)

        with ExitStack() as stack:
            stack.enter_context(
                mock.patch.object(
                    worker.DistributedItemProcessorWorker, "_eval_job", recording_eval_job
                )
            )
            stack.enter_context(
                mock.patch.object(
                    component.DistributedIterationComponent, "_map_run", tolerant_map_run
                )
            )
            yield


def _child(job: Any, env: Any, history: list[dict[str, Any]], started: dt.datetime) -> Execution:
    """A child execution from its job and the events moto published for it, framed by the
    start and end events AWS gives a child's history."""
    from moto.stepfunctions.parser.asl.eval.program_state import (
        ProgramEnded,
        ProgramError,
        ProgramStopped,
        ProgramTimedOut,
    )

    state = env.program_state()
    error = cause = None
    if isinstance(state, ProgramEnded):
        status = "SUCCEEDED"
    elif isinstance(state, ProgramError):
        status = "FAILED"
        error, cause = (state.error or {}).get("error"), (state.error or {}).get("cause")
    elif isinstance(state, ProgramStopped):
        status, error, cause = "ABORTED", state.error, state.cause
    elif isinstance(state, ProgramTimedOut):
        status, error = "TIMED_OUT", "States.Timeout"
    else:  # the interpreter itself failed in the child
        status, error = "FAILED", "States.Runtime"
    stopped = dt.datetime.now(dt.UTC)
    events = [
        ExecutionEvent(1, "ExecutionStarted", started, detail=f"input={json.dumps(job.job_input)}")
    ]
    events += [ExecutionEvent.from_api({**raw, "id": int(raw["id"]) + 1}) for raw in history]
    ended = {"SUCCEEDED": "ExecutionSucceeded", "FAILED": "ExecutionFailed"}.get(
        status, f"Execution{status.title().replace('_', '')}"
    )
    detail = "; ".join(f"{k}={v}" for k, v in (("error", error), ("cause", cause)) if v)
    events.append(
        ExecutionEvent(len(events) + 1, ended, stopped, error=error, cause=cause, detail=detail)
    )
    return Execution(
        name=f"item-{job.job_index}",
        status=status,
        error=error,
        cause=cause,
        events=events,
        seconds=(stopped - started).total_seconds(),
        item=job.job_index,
    )


def _exceeded(env: Any, failed: int, total: int, tolerated: float) -> Exception:
    """The failure AWS gives a map run past its tolerance."""
    from moto.stepfunctions.parser.api import ExecutionFailedEventDetails, HistoryEventType
    from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import (
        FailureEvent,
        FailureEventException,
    )
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import (
        StatesErrorName,
    )
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import (
        StatesErrorNameType,
    )
    from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails

    cause = f"{failed} of {total} items failed, more than the tolerated {tolerated:g}%"
    return FailureEventException(
        FailureEvent(
            env=env,
            error_name=StatesErrorName(
                typ=StatesErrorNameType.StatesExceedToleratedFailureThreshold
            ),
            event_type=HistoryEventType.MapRunFailed,
            event_details=EventDetails(
                executionFailedEventDetails=ExecutionFailedEventDetails(error=EXCEEDED, cause=cause)
            ),
        )
    )
