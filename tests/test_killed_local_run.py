"""A `local run` killed with SIGKILL in the middle of a file: the files it held are taken over
by the next run at once (not when their lease ends), each file is still done once, and while
the killed run was alive a second run left its file alone."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
from droughtwatch_tools.cli import app
from droughtwatch_tools.local.database import DSN_VARIABLE
from droughtwatch_tools.local.state import HOME_VARIABLE
from typer.testing import CliRunner

DAY = dt.date(2026, 11, 27)
FILES = 4

# `droughtwatch local run` in its own process, whose Inference keeps the first file it claims:
# it says which one, then waits to be killed, the claim held (the stage loop claimed the file
# and called the work on it). A script file: the run's worker processes import it as their
# main module (multiprocessing's spawn), and so run Inference with the patch.
HOLDING_RUN = """
import os, sys, time
from pathlib import Path
import droughtwatch_inference.handlers.inference as inference

claimed = Path(sys.argv[1])

def hold(entry, *args, **kwargs):
    if not claimed.exists():  # the first file only; the others go on
        claimed.write_text(entry.raw_key)
        time.sleep(3600)
    return real(entry, *args, **kwargs)

real = inference.infer_entry
inference.infer_entry = hold

if __name__ == "__main__":
    from droughtwatch_tools.cli import app

    app(["local", "run", *sys.argv[2:]])
"""


def _local_run(folder: Path) -> tuple[int, str]:
    """`droughtwatch local run` in this process: (exit code, output)."""
    result = CliRunner().invoke(app, ["local", "run", str(folder), "--date", DAY.isoformat()])
    return result.exit_code, result.output


def _row(output: str, name: str) -> str:
    (row,) = [x for x in output.splitlines() if x.split()[:1] == [name] and ".html" not in x]
    return row


def _lock_gone(dsn: str, key: int) -> None:
    """Wait until the server has ended the killed process's sessions (it does as soon as it
    reads the closed sockets, a moment after the kill) and so dropped its claim lock."""
    deadline = time.monotonic() + 30
    with psycopg.connect(dsn, autocommit=True) as conn:
        while conn.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = %s::oid", (key,)
        ).fetchone() != (0,):
            assert time.monotonic() < deadline, "the killed run's lock was not dropped"
            time.sleep(0.05)


@pytest.mark.slow
def test_a_killed_local_runs_file_is_taken_over_at_once_and_done_once(
    admin_dsn: str,
    tmp_path: Path,
    stored_model: Path,
    aws_env: None,
    no_settings_env: None,
    monkeypatch: pytest.MonkeyPatch,
    raw_scenes,
) -> None:
    folder = raw_scenes(FILES, 120)
    home = str(tmp_path / "home")  # where stored_model put the baseline: no run trains
    monkeypatch.setenv(HOME_VARIABLE, home)
    monkeypatch.setenv(DSN_VARIABLE, admin_dsn)
    monkeypatch.setenv("COLUMNS", "400")
    claimed = tmp_path / "claimed"
    script = tmp_path / "holding_run.py"
    script.write_text(HOLDING_RUN)
    # one child (one item of all the files): while it holds its first file at Inference, its
    # other files wait there too, so what the second run finds does not depend on how far a
    # second child of the holder got
    holder = subprocess.Popen(
        [
            sys.executable,
            str(script),
            str(claimed),
            str(folder),
            "--date",
            DAY.isoformat(),
            "--concurrency",
            "1",
        ],
        env=dict(os.environ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 300
        while not claimed.exists():
            assert holder.poll() is None, holder.communicate()
            assert time.monotonic() < deadline, "the run claimed no file within 5 minutes"
            time.sleep(0.05)
        held_key = claimed.read_text()
        held = Path(held_key).name
        with psycopg.connect(admin_dsn) as conn:
            stage, status, key, lease_until = conn.execute(
                "SELECT stage, status, claim_lock, lease_until FROM ledger WHERE raw_key = %s",
                (held_key,),
            ).fetchone()
        assert (stage, status) == ("inference", "running") and key is not None

        # While the holder lives, a second run does every other file and leaves its file alone.
        code, output = _local_run(folder)
        assert code == 0, output
        assert "inference: in progress in another run" in _row(output, held)
        for i in range(FILES):
            if f"scene-{i}.tfrecord" != held:
                assert " done " in _row(output, f"scene-{i}.tfrecord"), output
        with psycopg.connect(admin_dsn) as conn:
            assert conn.execute(
                "SELECT stage, status, claim_lock FROM ledger WHERE raw_key = %s", (held_key,)
            ).fetchone() == ("inference", "running", key)

        # kill -9 in the middle of the file; the next run takes the file over at once
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=60)
        _lock_gone(admin_dsn, key)
        code, output = _local_run(folder)
        assert code == 0, output
        assert all(" done " in _row(output, f"scene-{i}.tfrecord") for i in range(FILES)), output
        assert "in progress in another run" not in output and "not done yet" not in output
    finally:
        if holder.poll() is None:
            holder.kill()
        holder.communicate()

    with psycopg.connect(admin_dsn) as conn:
        ledger = conn.execute(
            "SELECT raw_key, stage, status, last_error FROM ledger ORDER BY raw_key"
        ).fetchall()
        (predicted_at,) = conn.execute(
            "SELECT predicted_at FROM ledger WHERE raw_key = %s", (held_key,)
        ).fetchone()
        metrics = conn.execute(
            "SELECT l.raw_key, count(m.id) FROM ledger l LEFT JOIN metrics m ON m.ledger_id = l.id"
            " GROUP BY l.raw_key ORDER BY l.raw_key"
        ).fetchall()
        done = dict(
            conn.execute(
                "SELECT stage, sum(files_done) FROM runs WHERE stage <> ALL(%s) GROUP BY stage",
                (["plan", "day"],),  # the steps around the stages move no file
            ).fetchall()
        )
    # every file done, once: one ledger row each and no failure, one metrics row each, and
    # each stage did each file once (the killed run's Inference never finished, or recorded
    # itself: the file it held was predicted by the last run)
    assert ledger == [(f"raw/{DAY}/scene-{i}.tfrecord", "done", "done", None) for i in range(FILES)]
    assert metrics == [(f"raw/{DAY}/scene-{i}.tfrecord", 1) for i in range(FILES)]
    assert done == {"processing": FILES, "inference": FILES, "observe": FILES}
    # taken over long before the killed run's lease would have let it go
    assert predicted_at < lease_until
