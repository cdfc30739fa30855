"""The embedded PostgreSQL starts from nothing and recovers from what a machine leaves behind:
no system user yet (as root), a busy port, a killed server, spaces in the path, another major
version's data folder, a read-only or full home."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from droughtwatch_tools.local.postgres import (
    EmbeddedPostgres,
    EmbeddedPostgresError,
    server_major_version,
)

as_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (the root path is tested)")


@pytest.fixture
def pg_root() -> Iterator[Path]:
    # not under pytest's tmp_path: as root the server runs as another user, which must be able
    # to traverse the folder's parents (pytest keeps them 0700)
    root = Path(f"/tmp/droughtwatch-pg-test-{uuid.uuid4().hex[:8]}")
    yield root
    with contextlib.suppress(EmbeddedPostgresError, OSError):
        EmbeddedPostgres(root).stop()
    shutil.rmtree(root, ignore_errors=True)


def _select_one(dsn: str) -> int:
    with psycopg.connect(dsn, connect_timeout=5) as conn:
        return conn.execute("SELECT 1").fetchone()[0]


@as_root
def test_root_starts_from_nothing_creating_its_system_user(pg_root: Path) -> None:
    user = f"dwpg{uuid.uuid4().hex[:8]}"
    with pytest.raises(KeyError):
        pwd.getpwnam(user)
    server = EmbeddedPostgres(pg_root / "postgres", preferred_port=0, system_user=user)
    try:
        dsn = server.start()
        assert _select_one(dsn) == 1
        assert server.pgdata.stat().st_uid == pwd.getpwnam(user).pw_uid
        server.stop()
        assert not server.is_running()
    finally:
        with contextlib.suppress(EmbeddedPostgresError):
            server.stop()
        subprocess.run(["userdel", user], check=False, capture_output=True)


@as_root
def test_a_recreated_system_user_gets_the_data_folder_back(pg_root: Path) -> None:
    user = f"dwpg{uuid.uuid4().hex[:8]}"
    server = EmbeddedPostgres(pg_root, preferred_port=0, system_user=user)
    try:
        server.start()
        server.stop()
        old_uid = pwd.getpwnam(user).pw_uid
        subprocess.run(["userdel", user], check=True)
        # the next user takes the freed uid unless we hold it with another account
        holder = f"dwhold{uuid.uuid4().hex[:6]}"
        subprocess.run(["useradd", "--system", "--uid", str(old_uid), holder], check=True)
        try:
            dsn = EmbeddedPostgres(pg_root, preferred_port=0, system_user=user).start()
            assert pwd.getpwnam(user).pw_uid != old_uid
            assert server.pgdata.stat().st_uid == pwd.getpwnam(user).pw_uid
            assert _select_one(dsn) == 1
            server.stop()
        finally:
            subprocess.run(["userdel", holder], check=False, capture_output=True)
    finally:
        with contextlib.suppress(EmbeddedPostgresError, KeyError):
            server.stop()
        subprocess.run(["userdel", user], check=False, capture_output=True)


def test_sigkilled_server_leaves_a_stale_pid_file_and_the_next_start_recovers(
    pg_root: Path,
) -> None:
    server = EmbeddedPostgres(pg_root, preferred_port=0)
    server.start()
    pid = server._postmaster_pid()
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while server.is_running() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert (server.pgdata / "postmaster.pid").exists()
    assert not server.is_running()

    dsn = EmbeddedPostgres(pg_root, preferred_port=0).start()
    assert _select_one(dsn) == 1
    assert server._postmaster_pid() != pid


def test_a_pid_file_naming_another_live_process_is_stale(pg_root: Path) -> None:
    # after a reboot the old pid may belong to any process: here, this test's own
    server = EmbeddedPostgres(pg_root, preferred_port=0)
    server.start()
    server.stop()
    lock = server.pgdata / "postmaster.pid"
    lock.write_text(f"{os.getpid()}\n{server.pgdata}\n")
    dsn = server.start()
    assert _select_one(dsn) == 1
    assert server._postmaster_pid() != os.getpid()


def test_a_busy_preferred_port_moves_the_server_to_a_free_one(pg_root: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        busy = other.getsockname()[1]
        server = EmbeddedPostgres(pg_root, preferred_port=busy)
        dsn = server.start()
        assert server.port != busy
        assert _select_one(dsn) == 1
        server.stop()
        # the port it kept is taken too by the next start: it moves again
        (pg_root / "port").write_text(f"{busy}\n")
        dsn = server.start()
        assert server.port != busy
        assert _select_one(dsn) == 1


def test_a_home_with_spaces_in_its_path(pg_root: Path) -> None:
    server = EmbeddedPostgres(pg_root / "my data" / "drought watch", preferred_port=0)
    dsn = server.start()
    assert _select_one(dsn) == 1


def test_a_data_folder_of_another_major_version_says_what_to_do(pg_root: Path) -> None:
    server = EmbeddedPostgres(pg_root, preferred_port=0)
    server.start()
    server.stop()
    older = server_major_version() - 2
    (server.pgdata / "PG_VERSION").write_text(f"{older}\n")
    with pytest.raises(EmbeddedPostgresError) as caught:
        EmbeddedPostgres(pg_root, preferred_port=0).start()
    message = str(caught.value)
    assert f"made by PostgreSQL {older}" in message
    assert f"runs PostgreSQL {server_major_version()}" in message
    assert "pg_dump" in message and f"move {pg_root} away" in message
    assert not server.is_running()


@contextlib.contextmanager
def _tmpfs(where: Path, options: str) -> Iterator[Path]:
    where.mkdir(parents=True)
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


@as_root
def test_a_read_only_home_is_a_clear_error(pg_root: Path) -> None:
    with (
        _tmpfs(pg_root / "ro", "ro,size=1m") as home,
        pytest.raises(EmbeddedPostgresError) as caught,
    ):
        EmbeddedPostgres(home / "postgres", preferred_port=0).start()
    message = str(caught.value)
    assert "read-only" in message
    assert str(home / "postgres") in message
    assert "DROUGHTWATCH_HOME" in message


@as_root
def test_a_full_home_is_a_clear_error(pg_root: Path) -> None:
    with _tmpfs(pg_root / "full", "size=64k") as home:
        with contextlib.suppress(OSError), (home / "filler").open("wb") as filler:
            filler.write(b"\0" * 128 * 1024)
        with pytest.raises(EmbeddedPostgresError) as caught:
            EmbeddedPostgres(home / "postgres", preferred_port=0).start()
    message = str(caught.value)
    assert "disk is full" in message
    assert "DROUGHTWATCH_HOME" in message
