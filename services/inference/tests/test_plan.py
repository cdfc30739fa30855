"""Plan: the waiting files split into items (pure), the ledger's waiting files (a real
PostgreSQL), claims restricted to an item's files, and the Plan handler against moto S3."""

from __future__ import annotations

import datetime as dt
import json
import threading

import psycopg
import pytest
from droughtwatch_contract.statemachine import STATE_LIMIT_BYTES
from droughtwatch_inference.adapters.ledger import Ledger, hold_claim_lock
from droughtwatch_inference.logic.plan import ItemLimits, item_value, plan_items, split_items
from droughtwatch_inference.logic.stage import Budget
from droughtwatch_inference.records import PendingFile, PlanReport, RawObject

DAY = dt.date(2026, 11, 27)
MB = 1024**2
ALWAYS = Budget(lambda: 900.0, 60)


def _files(n: int, size: int = MB) -> list[PendingFile]:
    return [PendingFile(id=i + 1, size_bytes=size) for i in range(n)]


def _ids(items: list[list[PendingFile]]) -> list[list[int]]:
    return [[f.id for f in item] for item in items]


# -- splitting ----------------------------------------------------------------------------------


def test_files_split_into_items_of_at_most_max_files_in_claim_order() -> None:
    items = split_items(_files(60), ItemLimits(25, 512 * MB, 1000), min_items=2)
    assert [len(i) for i in items] == [20, 20, 20]  # three items needed: spread evenly
    assert [f for item in _ids(items) for f in item] == list(range(1, 61))


def test_there_are_at_least_as_many_items_as_children_may_run_at_once() -> None:
    limits = ItemLimits(25, 512 * MB, 1000)
    assert [len(i) for i in split_items(_files(30), limits, min_items=2)] == [15, 15]
    assert [len(i) for i in split_items(_files(30), limits, min_items=10)] == [3] * 10
    # never more items than files
    assert [len(i) for i in split_items(_files(3), limits, min_items=10)] == [1, 1, 1]
    assert split_items([], limits, min_items=10) == []


def test_an_item_stays_under_its_bytes_and_a_larger_file_is_an_item_alone() -> None:
    files = [
        PendingFile(1, 300 * MB),
        PendingFile(2, 300 * MB),
        PendingFile(3, 2000 * MB),
        PendingFile(4, 100 * MB),
    ]
    items = split_items(files, ItemLimits(25, 512 * MB, 1000), min_items=1)
    assert _ids(items) == [[1], [2], [3], [4]]
    sizes = [sum(f.size_bytes for f in item) for item in items]
    assert all(size <= 512 * MB for size in sizes if size != 2000 * MB)


def test_an_item_names_its_ledger_ids_and_bytes() -> None:
    assert item_value([PendingFile(7, 10), PendingFile(9, 5)]) == {"ids": [7, 9], "bytes": 15}


# -- the ledger's waiting files -----------------------------------------------------------------


@pytest.fixture
def ledger(database_dsn: str):
    with psycopg.connect(database_dsn, autocommit=True) as conn:
        yield Ledger(conn)


def _register(ledger: Ledger, n: int) -> list[int]:
    objects = [(RawObject(f"raw/{DAY}/f-{i:03d}", f"e{i}", 1000 + i), DAY) for i in range(n)]
    ledger.register("bucket", objects, "run-0")
    return [i for (i,) in ledger.conn.execute("SELECT id FROM ledger ORDER BY id")]


def _claim(ledger: Ledger, stage: str) -> int:
    entry = ledger.claim(stage, max_attempts=3, lease_seconds=600)
    assert entry is not None
    return entry.id


def _plan(ledger: Ledger, *, round: int = 1, concurrency: int = 2, **limits: int) -> PlanReport:
    report = PlanReport(stage="plan", run_id="run-1", round=round)
    item_limits = ItemLimits(
        **{"max_files": 25, "max_bytes": 512 * MB, "round_files": 1000, **limits}
    )
    return plan_items(ledger, ALWAYS, report, item_limits, concurrency=concurrency, max_attempts=3)


def test_plan_takes_files_waiting_at_any_stage_and_leaves_live_claims(ledger: Ledger) -> None:
    ids = _register(ledger, 6)
    held = _claim(ledger, "processing")  # a live claim (this session's lease)
    moved = _claim(ledger, "processing")
    ledger.complete(moved, "processing")  # now waiting for inference
    failed = _claim(ledger, "processing")
    ledger.fail(failed, "processing", "InvalidRawFile: bad")  # attempts left
    report = _plan(ledger)
    planned = [i for item in report.items for i in item["ids"]]
    assert sorted(planned) == sorted(set(ids) - {held})
    assert (report.files, report.held, report.left, report.item_count) == (5, 1, 0, 2)
    assert report.bytes == sum(item["bytes"] for item in report.items)

    # a later round of the same execution leaves what failed in it for the next execution
    later = _plan(ledger, round=2)
    assert failed not in [i for item in later.items for i in item["ids"]]
    assert later.files == 4


def test_plan_takes_a_dead_runs_files_but_not_a_live_runs(database_dsn: str, ledger) -> None:
    ids = _register(ledger, 2)
    with psycopg.connect(database_dsn, autocommit=True) as other:
        key = hold_claim_lock(other)
        Ledger(other, claim_lock=key).claim("processing", max_attempts=3, lease_seconds=600)
        assert _plan(ledger).files == 1  # the other run is alive: its file is left to it
        # its lock is gone (as when its process dies): its file is planned again at once
        other.execute("SELECT pg_advisory_unlock_all()")
        assert sorted(i for item in _plan(ledger).items for i in item["ids"]) == ids


def test_a_round_hands_out_at_most_its_files_and_says_how_many_are_left(ledger) -> None:
    _register(ledger, 30)
    report = _plan(ledger, round_files=12)
    assert (report.files, report.left) == (12, 18)


def test_the_items_stop_at_their_byte_budget_and_the_rest_waits(ledger) -> None:
    _register(ledger, 40)
    report = _plan(ledger, max_files=1, concurrency=1, budget_bytes=200)
    assert 0 < report.files < 40 and report.left == 40 - report.files
    assert len(json.dumps(report.items, separators=(",", ":"))) <= 200


def test_no_time_left_plans_nothing(ledger) -> None:
    _register(ledger, 3)
    report = PlanReport(stage="plan", run_id="run-1")
    plan_items(
        ledger, Budget(lambda: 0.0, 60), report, ItemLimits(25, MB, 100), concurrency=2,
        max_attempts=3,
    )  # fmt: skip
    assert (report.files, report.item_count, report.items) == (0, 0, [])
    assert report.left == 3  # what waits is said


def test_the_largest_round_fits_the_state_machines_input(admin_dsn: str, ledger) -> None:
    """A full round of ten-digit ids in one-file items (the most JSON a round can make), in
    Plan's whole response body: under Step Functions' 256 KiB."""
    with psycopg.connect(admin_dsn, autocommit=True) as owner:
        owner.execute("SELECT setval('ledger_id_seq', 9999999999)")
    _register(ledger, 5000)
    report = _plan(ledger, max_files=1, concurrency=1, round_files=5000)
    assert report.left > 0  # the byte budget stopped it, not the files
    body = {"run_id": "x" * 80, "input": {"trigger": "scheduler"}, "plan": report.as_dict()}
    assert len(json.dumps({"statusCode": 200, "body": body})) < STATE_LIMIT_BYTES * 0.8


# -- claims restricted to an item ---------------------------------------------------------------


def test_an_item_claims_exactly_its_files(database_dsn: str, ledger: Ledger) -> None:
    ids = _register(ledger, 5)
    with psycopg.connect(database_dsn, autocommit=True) as conn:
        item = Ledger(conn, files=ids[1:3])
        claimed = []
        while (entry := item.claim("processing", max_attempts=3, lease_seconds=60)) is not None:
            claimed.append(entry.id)
            item.complete(entry.id, "processing")
        assert claimed == ids[1:3]
        assert item.remaining("inference", max_attempts=3) == 2
    assert ledger.remaining("processing", max_attempts=3) == 3  # the others still wait


def test_two_items_naming_the_same_files_never_claim_one_twice(database_dsn: str, ledger) -> None:
    """Two executions planned the same backlog at once: their children race for each file."""
    ids = _register(ledger, 40)
    claimed: dict[str, list[int]] = {"a": [], "b": []}
    start = threading.Barrier(2)

    def child(name: str) -> None:
        with psycopg.connect(database_dsn, autocommit=True) as conn:
            item = Ledger(conn, files=ids)
            start.wait()
            while (entry := item.claim("processing", max_attempts=3, lease_seconds=60)) is not None:
                claimed[name].append(entry.id)
                item.complete(entry.id, "processing")

    threads = [threading.Thread(target=child, args=(n,)) for n in claimed]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(claimed["a"] + claimed["b"]) == ids
    assert not set(claimed["a"]) & set(claimed["b"])


# -- the handler --------------------------------------------------------------------------------


class Context:
    def get_remaining_time_in_millis(self) -> int:
        return 900_000


def test_the_plan_handler_registers_new_objects_and_hands_out_items(
    service_env, s3, monkeypatch
) -> None:
    from droughtwatch_inference.handlers.plan import handler
    from droughtwatch_inference.runtime_settings import cached

    monkeypatch.setenv("DROUGHTWATCH_ITEM_MAX_FILES", "2")
    cached.cache_clear()
    for i in range(5):
        s3.put_object(
            Bucket=service_env["DROUGHTWATCH_DATA_BUCKET"],
            Key=f"raw/{DAY}/f{i}",
            Body=b"x" * (i + 1),
        )
    event = {
        "body": {"run_id": "exec-1", "input": {"trigger": "t"}, "rounds_done": 0, "concurrency": 2}
    }
    response = handler(event, Context())
    assert response["statusCode"] == 200, response
    plan = response["body"]["plan"]
    assert (plan["round"], plan["registered"], plan["files"], plan["item_count"]) == (1, 5, 5, 3)
    assert [len(item["ids"]) for item in plan["items"]] == [2, 2, 1]
    assert plan["bytes"] == 15
    assert response["body"]["run_id"] == "exec-1"
    # the next round finds them registered, and still waiting (no stage ran)
    again = handler({"body": {**event["body"], "rounds_done": 1}}, Context())
    assert again["body"]["plan"]["round"] == 2 and again["body"]["plan"]["registered"] == 0
    with psycopg.connect(service_env["DROUGHTWATCH_DATABASE_DSN"]) as conn:
        runs = conn.execute("SELECT stage, files_done, remaining FROM runs ORDER BY id").fetchall()
    assert runs == [("plan", 5, 0), ("plan", 5, 0)]


def test_a_hand_invocation_without_a_run_id_is_one_run(service_env, s3) -> None:
    from droughtwatch_inference.handlers.plan import handler

    response = handler({"input": {}}, Context())
    assert response["statusCode"] == 200, response
    run_id = response["body"]["run_id"]
    assert run_id.startswith("manual-") and response["body"]["plan"]["run_id"] == run_id
    with psycopg.connect(service_env["DROUGHTWATCH_DATABASE_DSN"]) as conn:
        assert conn.execute("SELECT run_id FROM runs").fetchall() == [(run_id,)]


def test_a_stage_given_a_malformed_item_fails_saying_what_it_expects(service_env, s3) -> None:
    from droughtwatch_inference.handlers.processing import handler

    response = handler({"body": {"run_id": "r", "item": {"ids": "1,2"}}}, Context())
    assert response["statusCode"] == 500
    assert response["body"]["error"] == "InvalidEvent"
    assert "ledger ids" in response["body"]["cause"]
