"""Two `local run`s at the same time, in two OS processes, on the same home and database (two
terminals, or a cron job and a person): they share the ledger and the local buckets, so each
file is done once, by one of them, and neither sees the other's work as missing."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

DAY = dt.date(2026, 11, 27)
FILES = 6

# One run in its own process (its handlers in its own worker processes). The imports happen
# before the barrier, so that both executions start together.
DRIVER = """
import datetime as dt, json, os, sys, time
from pathlib import Path
from droughtwatch_contract.stages import STAGES
from droughtwatch_tools.local.run import run_folder
ready, go, folder = (Path(a) for a in sys.argv[1:4])
ready.touch()
deadline = time.monotonic() + 300
while not go.exists():
    if time.monotonic() > deadline:
        sys.exit("the test never gave the go signal")
    time.sleep(0.01)
outcome = run_folder(folder, dt.date.fromisoformat(sys.argv[4]),
                     os.environ["DROUGHTWATCH_DATABASE_DSN"])
execution = outcome.execution
print(json.dumps({
    "name": execution.name,
    "status": execution.status,
    "exit": int(outcome.summary.exit_code()),
    "children": len(execution.children),
    "failures": [f for stage in STAGES for f in execution.step_failures(stage)],
}))
"""


@pytest.mark.slow
def test_two_concurrent_local_runs_do_each_file_once(
    database_dsn: str, tmp_path: Path, stored_model: Path, aws_env: None, raw_scenes
) -> None:
    folder = raw_scenes(FILES, 200)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DROUGHTWATCH_", "AWS_ENDPOINT_URL")) or k == "DROUGHTWATCH_TEST_DSN"
    }
    env |= {"DROUGHTWATCH_HOME": str(tmp_path / "home"), "DROUGHTWATCH_DATABASE_DSN": database_dsn}
    go = tmp_path / "go"
    ready = [tmp_path / f"ready-{n}" for n in (1, 2)]
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", DRIVER, str(r), str(go), str(folder), DAY.isoformat()],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for r in ready
    ]
    try:
        deadline = time.monotonic() + 300
        while not all(r.exists() for r in ready):
            assert all(p.poll() is None for p in runs), [p.communicate() for p in runs]
            assert time.monotonic() < deadline, "the runs did not start within 5 minutes"
            time.sleep(0.05)
        go.touch()
        outputs = [p.communicate(timeout=600) for p in runs]
    finally:
        for p in runs:
            if p.poll() is None:
                p.kill()
                p.wait()
    results = []
    for p, (out, err) in zip(runs, outputs, strict=True):
        assert p.returncode == 0, err[-3000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    for result in results:
        assert result["status"] == "SUCCEEDED", result
        assert result["failures"] == [], result
        assert result["exit"] == 0, result
    assert any(result["children"] for result in results)  # the failures were read from them

    with psycopg.connect(database_dsn) as conn:
        ledger = conn.execute(
            "SELECT raw_key, stage, status, last_error, last_error_at FROM ledger ORDER BY raw_key"
        ).fetchall()
        metrics = conn.execute(
            "SELECT ledger_id, count(*) FROM metrics GROUP BY ledger_id ORDER BY ledger_id"
        ).fetchall()
        per_stage = conn.execute(
            "SELECT stage, sum(files_done), sum(files_failed), bool_and(status = 'succeeded')"
            " FROM runs WHERE stage <> ALL(%s) GROUP BY stage ORDER BY stage",
            (["plan", "day"],),  # the steps around the stages move no file
        ).fetchall()
        windows = conn.execute(
            "SELECT run_id, min(started_at), max(finished_at) FROM runs GROUP BY run_id"
        ).fetchall()
    # every file done, once: one ledger row each, and no failure ever recorded on it
    # (Ledger.fail stamps last_error_at and nothing clears it; a used attempt is a failure,
    # since the attempt count itself goes back to 0 each time a file moves to its next stage)
    assert ledger == [
        (f"raw/{DAY}/scene-{i}.tfrecord", "done", "done", None, None) for i in range(FILES)
    ]
    assert len(metrics) == FILES and all(count == 1 for _, count in metrics)
    # each stage did each file once across both runs, and no stage failed a file
    assert per_stage == [
        ("inference", FILES, 0, True),
        ("observe", FILES, 0, True),
        ("processing", FILES, 0, True),
    ]
    # and the two executions really ran at the same time
    assert sorted(r for r, _, _ in windows) == sorted(r["name"] for r in results)
    (_, start_a, end_a), (_, start_b, end_b) = windows
    assert start_a < end_b and start_b < end_a
