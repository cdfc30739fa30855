"""Ledger SQL against a real PostgreSQL: registration, claiming under concurrency, leases and
local runs' claim locks, migrations."""

from __future__ import annotations

import datetime as dt
import threading
import time

import psycopg
import pytest
from droughtwatch_inference.adapters.database import migrate, migration_files
from droughtwatch_inference.adapters.ledger import Ledger, hold_claim_lock
from droughtwatch_inference.records import RawObject

DAY = dt.date(2026, 11, 27)


@pytest.fixture
def connections(database_dsn: str):
    opened: list[psycopg.Connection] = []

    def open_ledger() -> Ledger:
        conn = psycopg.connect(database_dsn, autocommit=True)
        opened.append(conn)
        return Ledger(conn)

    yield open_ledger
    for conn in opened:
        conn.close()


def _register(ledger: Ledger, n: int) -> None:
    objects = [
        (RawObject(f"raw/2026-11-27/file-{i:03d}", f"etag{i}", 100 + i), DAY) for i in range(n)
    ]
    assert ledger.register("bucket", objects, "run-1") == n


def test_one_listing_registers_new_keys_and_new_versions_together(connections) -> None:
    ledger = connections()
    _register(ledger, 3)
    listing = [
        (RawObject("raw/2026-11-27/file-000", "etag0", 100), DAY),  # seen: nothing new
        (RawObject("raw/2026-11-27/file-001", "etag1-v2", 150), DAY),  # a new version
        (RawObject("raw/2026-11-28/file-new", "etag-new", 7), DAY + dt.timedelta(days=1)),
        (RawObject("raw/2026-11-28/file-new", "etag-new", 7), DAY + dt.timedelta(days=1)),
    ]
    assert ledger.register("bucket", listing, "run-2") == 2
    assert ledger.register("bucket", [], "run-3") == 0
    rows = ledger.conn.execute(
        "SELECT raw_key, etag, size_bytes, batch_date, status, registered_run,"
        " superseded_by IS NOT NULL FROM ledger ORDER BY id"
    ).fetchall()
    assert rows == [
        ("raw/2026-11-27/file-000", "etag0", 100, DAY, "pending", "run-1", False),
        ("raw/2026-11-27/file-001", "etag1", 101, DAY, "superseded", "run-1", True),
        ("raw/2026-11-27/file-002", "etag2", 102, DAY, "pending", "run-1", False),
        ("raw/2026-11-27/file-001", "etag1-v2", 150, DAY, "pending", "run-2", False),
        (
            "raw/2026-11-28/file-new",
            "etag-new",
            7,
            DAY + dt.timedelta(days=1),
            "pending",
            "run-2",
            False,
        ),
    ]


def test_register_is_idempotent_and_a_new_etag_is_a_new_version(connections) -> None:
    ledger = connections()
    obj = RawObject('raw/2026-11-27/it\'s a "file"', "e1", 10)
    assert ledger.register("bucket", [(obj, DAY)], "run-1") == 1
    assert ledger.register("bucket", [(obj, DAY)], "run-2") == 0
    changed = RawObject(obj.key, "e2", 11)
    assert ledger.register("bucket", [(changed, DAY)], "run-3") == 1
    rows = ledger.conn.execute(
        "SELECT raw_key, etag, stage, status FROM ledger ORDER BY id"
    ).fetchall()
    # the older version is superseded by the newer one: only the newer is in the queue
    assert rows == [
        (obj.key, "e1", "processing", "superseded"),
        (obj.key, "e2", "processing", "pending"),
    ]


def test_two_concurrent_workers_never_claim_the_same_file(connections) -> None:
    _register(connections(), 40)
    claimed: dict[str, list[int]] = {"a": [], "b": []}
    start = threading.Barrier(2)

    def worker(name: str) -> None:
        ledger = connections()
        start.wait()
        while (entry := ledger.claim("processing", max_attempts=3, lease_seconds=600)) is not None:
            claimed[name].append(entry.id)
            ledger.complete(entry.id, "processing", processed_key=f"p/{entry.id}", images=1)

    threads = [threading.Thread(target=worker, args=(n,)) for n in claimed]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    both = claimed["a"] + claimed["b"]
    assert sorted(both) == list(range(1, 41))
    assert len(set(both)) == 40
    assert claimed["a"] and claimed["b"], "both workers should have had work"


def test_failed_file_is_retried_up_to_the_attempt_limit(connections) -> None:
    ledger = connections()
    _register(ledger, 1)
    for attempt in range(1, 4):
        entry = ledger.claim("processing", max_attempts=3, lease_seconds=600)
        assert entry is not None and entry.attempts == attempt
        ledger.fail(entry.id, "processing", f"InvalidRawFile: attempt {attempt}")
    assert ledger.claim("processing", max_attempts=3, lease_seconds=600) is None
    row = ledger.conn.execute("SELECT status, attempts, last_error FROM ledger").fetchone()
    assert row == ("failed", 3, "InvalidRawFile: attempt 3")
    assert ledger.remaining("processing", max_attempts=3) == 0


def test_expired_lease_makes_a_file_claimable_again(connections) -> None:
    ledger = connections()
    _register(ledger, 1)
    first = ledger.claim("processing", max_attempts=3, lease_seconds=600)
    assert first is not None
    assert ledger.claim("processing", max_attempts=3, lease_seconds=600) is None
    ledger.conn.execute("UPDATE ledger SET lease_until = now() - interval '1 second'")
    again = ledger.claim("processing", max_attempts=3, lease_seconds=600)
    assert again is not None and again.id == first.id and again.attempts == 2


@pytest.fixture
def local_run(database_dsn: str, connections):
    """A local run's process as the ledger sees it: a ledger whose claims name the claim lock
    that a connection of its own holds (closing that connection is the process dying)."""

    holders: list[psycopg.Connection] = []

    def start() -> tuple[Ledger, psycopg.Connection]:
        holder = psycopg.connect(database_dsn, autocommit=True)
        holders.append(holder)
        ledger = connections()
        ledger.claim_lock = hold_claim_lock(holder)
        return ledger, holder

    yield start
    for holder in holders:
        holder.close()


def _gone(ledger: Ledger, key: int) -> None:
    """Wait until the server has ended a closed session and dropped its lock (it does so as
    soon as it reads the connection's end, a moment after the client closed it)."""
    deadline = time.monotonic() + 10
    while ledger.conn.execute(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = %s::oid", (key,)
    ).fetchone() != (0,):
        assert time.monotonic() < deadline, "the closed session's lock was not dropped"
        time.sleep(0.01)


def _claimed(ledger: Ledger) -> list[bool]:
    """Whether each registered file shows as in progress in a run (Ledger.outcomes)."""
    versions = [
        RawObject(key, etag, 0)
        for key, etag in ledger.conn.execute("SELECT raw_key, etag FROM ledger ORDER BY id")
    ]
    return [o.claimed for o in ledger.outcomes("bucket", versions)]


def test_a_dead_local_runs_claim_is_taken_over_at_once(local_run) -> None:
    dead, holder = local_run()
    _register(dead, 1)
    first = dead.claim("processing", max_attempts=3, lease_seconds=600)
    assert first is not None
    (recorded,) = dead.conn.execute("SELECT claim_lock FROM ledger").fetchone()
    assert recorded == dead.claim_lock
    holder.close()  # the process is killed: its session, and with it the lock, ends
    _gone(dead, recorded)
    later, _ = local_run()
    assert _claimed(later) == [False]  # pending, not "in progress in another run"
    again = later.claim("processing", max_attempts=3, lease_seconds=600)
    assert again is not None and again.id == first.id and again.attempts == 2
    (recorded,) = later.conn.execute("SELECT claim_lock FROM ledger").fetchone()
    assert recorded == later.claim_lock


def test_a_live_local_runs_claim_is_left_alone(local_run) -> None:
    live, _ = local_run()
    _register(live, 2)
    first = live.claim("processing", max_attempts=3, lease_seconds=600)
    assert first is not None
    other, _ = local_run()
    assert _claimed(other) == [True, False]
    second = other.claim("processing", max_attempts=3, lease_seconds=600)
    assert second is not None and second.id != first.id
    assert other.claim("processing", max_attempts=3, lease_seconds=600) is None
    assert other.remaining("processing", max_attempts=3) == 0


def test_a_claim_without_a_lock_ends_with_its_lease_alone(connections, local_run) -> None:
    """On AWS claims name no lock: the lease decides, as before claims had owners."""
    function = connections()
    _register(function, 1)
    first = function.claim("processing", max_attempts=3, lease_seconds=600)
    assert first is not None
    assert function.conn.execute("SELECT claim_lock FROM ledger").fetchone() == (None,)
    local, _ = local_run()
    assert _claimed(local) == [True]
    assert local.claim("processing", max_attempts=3, lease_seconds=600) is None
    local.conn.execute("UPDATE ledger SET lease_until = now() - interval '1 second'")
    again = local.claim("processing", max_attempts=3, lease_seconds=600)
    assert again is not None and again.id == first.id


def test_complete_moves_the_file_to_the_next_stage(connections) -> None:
    ledger = connections()
    _register(ledger, 1)
    entry = ledger.claim("processing", max_attempts=3, lease_seconds=600)
    assert entry is not None
    ledger.complete(entry.id, "processing", source_digest="d" * 64, processed_key="p", images=5)
    row = ledger.conn.execute(
        "SELECT stage, status, attempts, images, processed_at IS NOT NULL FROM ledger"
    ).fetchone()
    assert row == ("inference", "pending", 0, 5, True)
    with pytest.raises(ValueError, match="unknown ledger columns"):
        ledger.complete(entry.id, "inference", processed_key="x")


def test_release_gives_an_interrupted_claim_back(connections) -> None:
    ledger = connections()
    _register(ledger, 1)
    entry = ledger.claim("processing", max_attempts=3, lease_seconds=600)
    assert entry is not None
    ledger.release(entry.id, "processing")
    row = ledger.conn.execute("SELECT status, attempts FROM ledger").fetchone()
    assert row == ("pending", 0)


def test_migrations_are_idempotent_and_safe_concurrently(postgres) -> None:
    import uuid

    name = f"dw_migrate_{uuid.uuid4().hex[:8]}"
    dsn = postgres.create(name)
    results: list[list[str]] = []
    start = threading.Barrier(3)

    def run() -> None:
        with psycopg.connect(dsn, autocommit=True) as conn:
            start.wait()
            results.append(migrate(conn))

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    names = [n for _, n, _ in migration_files()]
    assert sorted(map(tuple, results)) == sorted([(), (), tuple(names)])
    with psycopg.connect(dsn, autocommit=True) as conn:
        assert migrate(conn) == []
        versions = [r[0] for r in conn.execute("SELECT version FROM schema_migrations ORDER BY 1")]
    assert versions == [v for v, _, _ in migration_files()]
    postgres.drop(name)


def test_metrics_columns_match_the_migrated_table(connections) -> None:
    from droughtwatch_inference.metrics_row import FileMetrics, columns

    ledger = connections()
    names = {
        r[0]
        for r in ledger.conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'metrics'"
        )
    }
    assert names - {"id", "computed_at"} == columns(FileMetrics)
    with pytest.raises(ValueError, match="unknown metrics columns"):
        ledger.insert_metrics({"images": 1, "images; DROP TABLE ledger": 2})


def test_a_file_superseded_while_claimed_keeps_its_new_status(connections) -> None:
    worker, uploader = connections(), connections()
    old = RawObject("raw/2026-11-27/scene", "e1", 10)
    worker.register("bucket", [(old, DAY)], "run-1")
    entry = worker.claim("processing", max_attempts=3, lease_seconds=600)
    assert entry is not None
    uploader.register("bucket", [(RawObject(old.key, "e2", 12), DAY)], "run-2")
    # the worker finishes the old version after the new one arrived: nothing moves
    worker.complete(entry.id, "processing", processed_key="p", images=1)
    worker.fail(entry.id, "processing", "late error")
    rows = worker.conn.execute(
        "SELECT etag, stage, status, processed_key FROM ledger ORDER BY id"
    ).fetchall()
    assert rows == [("e1", "processing", "superseded", None), ("e2", "processing", "pending", None)]
