"""A backlog drains in one execution: Plan splits it into items, the Distributed Map runs one
child per item, two at once in two worker processes, each child's stages take exactly its
item's files, and the day is pooled once. Two executions started at once over the same backlog
still do each file once. (The full-size run, 1,000 shard-sized files, is the backlog benchmark
and the README's Scale section; this is its small, fast form.)"""

from __future__ import annotations

import datetime as dt
import itertools
import json
from pathlib import Path

import psycopg
import pytest
from droughtwatch_contract.stages import STAGES, WORKFLOW
from droughtwatch_contract.statemachine import ITEM_PATH, SUCCESS_PATH
from droughtwatch_tools.execution import Execution
from droughtwatch_tools.local.runner import (
    DAY_NICENESS,
    DAY_PRELOAD,
    PRELOAD,
    LocalConfig,
    LocalPipeline,
)
from droughtwatch_tools.local.workers import Invocation, WorkerPool

DAY = dt.date(2026, 11, 27)
BACKLOG = 30


def _ledger(dsn: str) -> dict[str, object]:
    with psycopg.connect(dsn) as conn:
        return {
            "states": conn.execute("SELECT DISTINCT stage, status FROM ledger").fetchall(),
            "files": conn.execute("SELECT count(*) FROM ledger").fetchone()[0],
            "metrics": conn.execute(
                "SELECT count(*), count(DISTINCT ledger_id) FROM metrics"
            ).fetchone(),
            "per_stage": dict(
                conn.execute(
                    "SELECT stage, sum(files_done) FROM runs WHERE stage = ANY(%s) GROUP BY stage",
                    (list(STAGES.names),),
                ).fetchall()
            ),
            "days": conn.execute("SELECT batch_date, files FROM daily_metrics").fetchall(),
            "day_steps": conn.execute(
                "SELECT run_id, files_done FROM runs WHERE stage = 'day'"
            ).fetchall(),
        }


def _overlap(children: list[Execution]) -> bool:
    """Whether two children ran at the same time."""
    spans = sorted((c.events[0].timestamp, c.events[-1].timestamp) for c in children)
    return any(later[0] < earlier[1] for earlier, later in itertools.pairwise(spans))


def test_a_backlog_drains_in_one_execution_two_items_at_once(
    database_dsn: str, tmp_path: Path, stored_model: Path, aws_env: None, raw_scenes, monkeypatch
) -> None:
    from droughtwatch_tools.local.run import run_folder
    from droughtwatch_tools.local.state import HOME_VARIABLE

    monkeypatch.setenv("DROUGHTWATCH_ITEM_MAX_FILES", "8")  # more items than children at once
    folder = raw_scenes(BACKLOG, 5)
    home = tmp_path / "home"
    monkeypatch.setenv(HOME_VARIABLE, str(home))
    pools: dict[str, set[tuple[tuple[str, ...], int]]] = {}
    invoke = WorkerPool.invoke

    def recording(pool: WorkerPool, invocation: Invocation):  # type: ignore[no-untyped-def]
        pools.setdefault(invocation.handler, set()).add((pool.preload, pool.niceness))
        return invoke(pool, invocation)

    monkeypatch.setattr(WorkerPool, "invoke", recording)
    outcome = run_folder(folder, DAY, database_dsn, concurrency=2, home=home)
    execution = outcome.execution
    assert execution.status == "SUCCEEDED", execution.error_line
    assert execution.states_entered() == SUCCESS_PATH  # one round, then nothing waits

    # Plan's one round: every file, in items of at most 8
    (plan, again) = execution.step_reports(WORKFLOW.plan)
    assert (plan["files"], plan["left"], again["files"]) == (BACKLOG, 0, 0)
    items = plan["items"]
    assert len(items) == 4 and max(len(i["ids"]) for i in items) <= 8
    (run,) = execution.map_runs
    assert (run.status, run.total, run.failed) == ("SUCCEEDED", 4, 0)
    children = run.children
    assert [c.item for c in children] == [0, 1, 2, 3]
    assert all(c.succeeded and c.states_entered() == ITEM_PATH for c in children)
    assert _overlap(children), [(c.events[0].timestamp, c.events[-1].timestamp) for c in children]
    # each child's stages did exactly its item's files
    for child, item in zip(children, items, strict=True):
        for stage in STAGES:
            assert child.step_counts(stage)["files_done"] == len(item["ids"]), (child.name, stage)

    # every file done once, one metrics row each, the day pooled once by the one day step
    ledger = _ledger(database_dsn)
    assert ledger["states"] == [("done", "done")] and ledger["files"] == BACKLOG
    assert ledger["metrics"] == (BACKLOG, BACKLOG)
    assert ledger["per_stage"] == {stage: BACKLOG for stage in STAGES.names}
    assert ledger["days"] == [(DAY, BACKLOG)]
    assert ledger["day_steps"] == [(execution.name, 1)]
    assert outcome.summary.exit_code() == 0 and len(outcome.summary.files) == BACKLOG

    # the day step ran in the worker of its own that preloads Evidently at a lower priority;
    # every other step in the Map's workers
    assert pools == {
        step.handler: {(DAY_PRELOAD, DAY_NICENESS) if step == WORKFLOW.day else (PRELOAD, 0)}
        for step in WORKFLOW
    }

    # the history file keeps the map run and its children
    saved = Execution.from_dict(json.loads(outcome.history_file.read_text()))
    assert [c.name for c in saved.children] == [f"item-{i}" for i in range(4)]
    assert saved.map_runs[0].items["succeeded"] == 4


def test_two_executions_at_once_over_the_same_backlog_do_each_file_once(
    database_dsn: str, tmp_path: Path, aws_env: None, baseline, raw_scenes
) -> None:
    from droughtwatch_contract.keys import KeyLayout
    from droughtwatch_tools import training

    files = 12
    config = LocalConfig(
        database_dsn=database_dsn, work_dir=tmp_path / "work", store_root=tmp_path / "buckets"
    )
    with LocalPipeline(config, concurrency=2) as pipeline:
        training.publish_trained(pipeline.store, config.model_bucket, config.model_prefix, baseline)
        for path in sorted(raw_scenes(files, 5).iterdir()):
            pipeline.store.upload(path, config.data_bucket, KeyLayout().raw_key(path.name, DAY))
        first, second = pipeline.start(name="first"), pipeline.start(name="second")
        executions = [pipeline.wait(first), pipeline.wait(second)]
    for execution in executions:
        assert execution.status == "SUCCEEDED", execution.error_line
        for stage in STAGES:
            assert execution.step_failures(stage) == [], (execution.name, stage)
    planned = [
        {
            i
            for report in e.step_reports(WORKFLOW.plan)
            for item in report["items"]
            for i in item["ids"]
        }
        for e in executions
    ]
    with psycopg.connect(database_dsn) as conn:
        # (not 1..12: two Plans registering at once may each draw ids for the same objects,
        # and the one whose insert loses leaves a gap)
        ids = {row[0] for row in conn.execute("SELECT id FROM ledger").fetchall()}
    assert len(ids) == files
    assert planned[0] | planned[1] == ids  # together they planned all

    ledger = _ledger(database_dsn)
    assert ledger["states"] == [("done", "done")] and ledger["files"] == files
    assert ledger["metrics"] == (files, files)  # one metrics row per file
    # each stage did each file once, whichever execution's child claimed it
    assert ledger["per_stage"] == {stage: files for stage in STAGES.names}
    done = {
        stage.name: sum(e.step_counts(stage).get("files_done", 0) for e in executions)
        for stage in STAGES
    }
    assert done == {stage: files for stage in STAGES.names}


@pytest.mark.parametrize("concurrency", [0, -1])
def test_a_pipeline_needs_at_least_one_worker(tmp_path: Path, concurrency: int) -> None:
    config = LocalConfig(database_dsn="", work_dir=tmp_path, store_root=tmp_path)
    with pytest.raises(ValueError, match="at least 1"):
        LocalPipeline(config, concurrency=concurrency)
