"""The local Lambda service (local/workers.py): invocations in warm worker processes, each with a
scratch folder of its own, the environment each invocation carries, the runner's cancel event,
an uncaught exception or a dead worker as the function errors Lambda gives."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from droughtwatch_tools.local.workers import (
    WORK_DIR,
    WORKER_EXIT,
    Invocation,
    WorkerPool,
    default_concurrency,
    worker_threads,
)

# Handlers the workers import: a module on the path the spawned workers inherit.
PROBE = """
import os
import time

def describe(event, context):
    return {
        "pid": os.getpid(),
        "work_dir": os.environ.get("DROUGHTWATCH_WORK_DIR"),
        "probe": os.environ.get("DROUGHTWATCH_PROBE"),
        "remaining_ms": context.get_remaining_time_in_millis(),
        "event": event,
    }

def slow(event, context):
    time.sleep(event["seconds"])
    return describe(event, context)

def die(event, context):
    os._exit(3)

WARMED = []

def warm():
    WARMED.append(os.getpid())

def warmed(event, context):
    deadline = time.monotonic() + 30
    while not WARMED and time.monotonic() < deadline:
        time.sleep(0.01)  # the preload runs beside the first invocation
    return {"warmed": WARMED, "pid": os.getpid(), "niceness": os.nice(0)}
"""


@pytest.fixture
def pool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[WorkerPool]:
    (tmp_path / "probe_handlers.py").write_text(PROBE)
    monkeypatch.syspath_prepend(str(tmp_path))
    workers = WorkerPool(2)
    yield workers
    workers.close()


def call(pool: WorkerPool, handler: str, tmp_path: Path, **env: str) -> tuple[Any, bool]:
    invocation = Invocation(
        handler=f"probe_handlers.{handler}",
        function_name="dw-probe",
        event={"seconds": 1.0},
        environment={WORK_DIR: str(tmp_path / "work"), **env},
        timeout_seconds=60,
    )
    outcome = pool.invoke(invocation)
    return json.loads(outcome.payload), outcome.unhandled


def test_each_worker_has_its_own_scratch_folder(pool: WorkerPool, tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2) as threads:  # two at once: two workers
        answers = list(threads.map(lambda _: call(pool, "slow", tmp_path)[0], range(2)))
    assert len({a["pid"] for a in answers}) == 2
    assert {a["work_dir"] for a in answers} == {
        str(tmp_path / "work" / f"worker-{a['pid']}") for a in answers
    }


def test_the_environment_travels_with_each_invocation(pool: WorkerPool, tmp_path: Path) -> None:
    first, _ = call(pool, "describe", tmp_path, DROUGHTWATCH_PROBE="one")
    assert first["probe"] == "one" and first["event"] == {"seconds": 1.0}
    second, _ = call(pool, "describe", tmp_path, DROUGHTWATCH_PROBE="two")
    assert second["probe"] == "two"
    gone, _ = call(pool, "describe", tmp_path)  # a variable unset is unset in the worker too
    assert gone["probe"] is None


def test_the_runners_cancel_reads_as_no_time_left(pool: WorkerPool, tmp_path: Path) -> None:
    assert call(pool, "describe", tmp_path)[0]["remaining_ms"] > 50_000
    pool.cancelled.set()
    assert call(pool, "describe", tmp_path)[0]["remaining_ms"] == 0


def test_a_worker_ignores_the_terminals_ctrl_c(pool: WorkerPool, tmp_path: Path) -> None:
    pid = call(pool, "describe", tmp_path)[0]["pid"]
    os.kill(pid, signal.SIGINT)  # the terminal sends it to the whole process group
    answers = {call(pool, "describe", tmp_path)[0]["pid"] for _ in range(4)}
    assert pid in answers  # still alive and serving


def test_an_uncaught_exception_is_an_unhandled_function_error(
    pool: WorkerPool, tmp_path: Path
) -> None:
    outcome = pool.invoke(
        Invocation("probe_handlers.describe", "dw-probe", {}, {}, 60, crash="handler crashed")
    )
    assert outcome.unhandled
    error = json.loads(outcome.payload)
    assert (error["errorType"], error["errorMessage"]) == ("RuntimeError", "handler crashed")
    assert error["stackTrace"]


def test_a_dead_worker_fails_its_invocation_and_new_workers_take_the_next(
    pool: WorkerPool, tmp_path: Path
) -> None:
    error, unhandled = call(pool, "die", tmp_path)
    assert unhandled and error["errorType"] == WORKER_EXIT
    answer, unhandled = call(pool, "describe", tmp_path)
    assert not unhandled and answer["pid"] > 0


def test_the_default_concurrency_is_the_cpus_this_process_may_use() -> None:
    assert 1 <= default_concurrency() <= (os.cpu_count() or 1)


@pytest.mark.parametrize(
    ("cpus", "concurrency", "threads"), [(2, 1, 2), (2, 2, 1), (2, 8, 1), (8, 3, 2)]
)
def test_workers_share_the_cpus_out_for_the_model(
    monkeypatch: pytest.MonkeyPatch, cpus: int, concurrency: int, threads: int
) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: set(range(cpus)), raising=False)
    assert worker_threads(concurrency) == threads


def test_at_exit_idle_workers_end_at_once_and_busy_ones_are_left_to_finish(
    pool: WorkerPool, tmp_path: Path
) -> None:
    import threading

    answer, _ = call(pool, "describe", tmp_path)
    busy = threading.Thread(target=call, args=(pool, "slow", tmp_path))
    busy.start()
    time.sleep(0.3)  # the slow invocation is running
    assert pool.end_idle() is False  # it is left to finish
    busy.join()
    assert pool.end_idle() is True
    deadline = time.monotonic() + 10
    while _alive(answer["pid"]):
        assert time.monotonic() < deadline, "the idle worker did not end"
        time.sleep(0.05)
    # a later invocation starts new workers
    again, unhandled = call(pool, "describe", tmp_path)
    assert not unhandled and again["pid"] != answer["pid"]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie has ended; it waits only for its parent's wait()
    return "State:\tZ" not in Path(f"/proc/{pid}/status").read_text()


def test_a_pool_preloads_modules_and_calls_what_it_is_told_at_its_own_priority(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "probe_handlers.py").write_text(PROBE)
    monkeypatch.syspath_prepend(str(tmp_path))
    ours = os.nice(0)
    workers = WorkerPool(1, ("json", "probe_handlers:warm", "no_such_module"), niceness=5)
    try:
        answer, unhandled = call(workers, "warmed", tmp_path)
    finally:
        workers.close()
    assert not unhandled, answer
    # the function ran in the worker, once; a module that cannot be imported is passed over
    assert answer["warmed"] == [answer["pid"]]
    assert answer["niceness"] == min(19, ours + 5)
