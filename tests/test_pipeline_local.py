"""The whole pipeline through the deployed state machine definition, executed by moto's
interpreter with the real handlers (in the runner's warm worker processes), the local folder
store and a real PostgreSQL."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg
import pytest
from droughtwatch_contract.keys import KeyLayout
from droughtwatch_contract.settings import ObserveSettings, env_name
from droughtwatch_contract.stages import STAGES, WORKFLOW
from droughtwatch_contract.statemachine import IDLE_PATH, ITEM_PATH, SUCCESS_PATH
from droughtwatch_tools.local.runner import LocalConfig, LocalPipeline
from psycopg.rows import dict_row

LAYOUT = KeyLayout()
DAY = dt.date(2026, 11, 27)


@pytest.fixture
def pipeline(database_dsn: str, tmp_path: Path, aws_env: None, baseline):
    from droughtwatch_tools import training

    config = LocalConfig(
        database_dsn=database_dsn, work_dir=tmp_path / "work", store_root=tmp_path / "buckets"
    )
    with LocalPipeline(config, concurrency=1) as runner:
        training.publish_trained(runner.store, config.model_bucket, config.model_prefix, baseline)
        yield runner


def _upload_day(
    runner: LocalPipeline,
    tmp_path: Path,
    date: dt.date,
    n: int,
    drought: float,
    seed: int,
    name: str | None = None,
) -> str:
    from droughtwatch_tools import synthetic

    path = tmp_path / f"scene-{date}-{seed}.tfrecord"
    synthetic.write_raw_file(path, np.random.default_rng(seed), n, drought=drought)
    key = LAYOUT.raw_key(name or path.name, date)
    runner.store.upload(path, runner.config.data_bucket, key)
    return key


def _ledger(dsn: str) -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "SELECT raw_key, stage, status, last_error FROM ledger ORDER BY id"
        ).fetchall()


def _body(execution) -> dict:
    """Each stage's counts over the execution's items, as one stage's body had them."""
    return {stage.name: execution.step_counts(stage) for stage in STAGES}


def test_full_execution_succeeds_through_the_seven_states(
    pipeline, tmp_path, database_dsn, monkeypatch
) -> None:
    monkeypatch.setenv(env_name(ObserveSettings, "save_file_reports"), "true")
    # a user's file name with quotes and spaces goes through every stage
    key = _upload_day(pipeline, tmp_path, DAY, 60, 0.0, seed=1, name='farmer\'s "north" field 7')
    execution = pipeline.run()
    assert execution.status == "SUCCEEDED", (execution.error, execution.cause)
    assert execution.states_entered() == SUCCESS_PATH
    (child,) = execution.children  # one file: one item
    assert child.states_entered() == ITEM_PATH and child.succeeded
    body = _body(execution)
    assert body["processing"]["files_done"] == 1
    assert body["inference"]["images"] == body["processing"]["images"] > 0
    assert body["observe"]["files_done"] == 1
    (row,) = _ledger(database_dsn)
    assert row == (key, "done", "done", None)
    with psycopg.connect(database_dsn) as conn:
        images, drift, report = conn.execute(
            "SELECT images, drift_score, report_key FROM metrics"
        ).fetchone()
    assert images == body["processing"]["images"] and drift is not None
    assert report.startswith('reports/2026-11-27/farmer\'s "north" field 7/')
    html = pipeline.store.path(pipeline.config.data_bucket, report).read_bytes()
    assert b"<!DOCTYPE html>" in html[:200]


def test_rerun_with_no_new_data_processes_nothing(pipeline, tmp_path, database_dsn) -> None:
    _upload_day(pipeline, tmp_path, DAY, 20, 0.0, seed=2)
    assert pipeline.run().status == "SUCCEEDED"
    before = _ledger(database_dsn)
    again = pipeline.run()
    assert again.status == "SUCCEEDED"
    assert again.states_entered() == IDLE_PATH  # Plan found nothing: no item, no stage ran
    assert again.children == []
    for stage in STAGES:
        assert again.step_counts(stage).get("files_done", 0) == 0
    assert _ledger(database_dsn) == before
    with psycopg.connect(database_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM metrics").fetchone()[0] == 1


def test_missing_model_ends_in_the_inference_fail_state(pipeline, tmp_path, database_dsn) -> None:
    _upload_day(pipeline, tmp_path, DAY, 20, 0.0, seed=3)
    bucket = pipeline.config.model_bucket
    for item in pipeline.store.list(bucket, ""):
        pipeline.store.path(bucket, item.key).unlink()
    execution = pipeline.run()
    assert execution.status == "FAILED"
    # the item's child ends in Inference's Fail state; the Map, past its tolerance (0 %), fails
    (child,) = execution.failed_children
    assert child.states_entered()[-1] == "Inference failed"
    assert child.error == "ModelNotFound"
    assert "model.json" in child.cause
    assert execution.states_entered()[-1] == execution.failed_state == "Items"
    assert execution.error == "States.ExceedToleratedFailureThreshold"
    assert "ModelNotFound" in execution.error_line and "item-0" in execution.error_line
    (row,) = _ledger(database_dsn)
    assert row[1:3] == ("inference", "pending")  # nothing lost: the next run picks it up


def test_database_down_ends_in_the_processing_fail_state(pipeline, tmp_path, monkeypatch) -> None:
    from droughtwatch_inference.runtime_settings import cached

    monkeypatch.setenv("DROUGHTWATCH_DATABASE_DSN", "postgresql://dw:pw@127.0.0.1:1/droughtwatch")
    monkeypatch.setenv("DROUGHTWATCH_DATABASE_CONNECT_TIMEOUT_SECONDS", "1")
    monkeypatch.setenv("DROUGHTWATCH_DATABASE_RESUME_SECONDS", "0")
    cached.cache_clear()
    execution = pipeline.run()
    assert execution.status == "FAILED"
    assert execution.states_entered() == ["Start", "Plan", "Plan succeeded?", "Plan failed"]
    assert execution.error == "DatabaseUnavailable"
    assert "pw@" not in (execution.cause or "")


def test_a_paused_database_is_waited_for_and_the_run_succeeds(
    baseline, database_dsn, resuming_proxy, tmp_path, aws_env
) -> None:
    """The database is paused (as Aurora Serverless at 0 capacity): each stage's first
    connections are dropped while it resumes. The stages wait, say so (in the log file the
    workers write, as `local run` has them), and the run succeeds."""
    import logging

    from droughtwatch_inference import logs
    from droughtwatch_tools import training

    dsn, proxy = resuming_proxy(database_dsn)
    config = LocalConfig(
        database_dsn=dsn, work_dir=tmp_path / "work", store_root=tmp_path / "buckets"
    )
    with LocalPipeline(config) as runner:
        training.publish_trained(runner.store, config.model_bucket, config.model_prefix, baseline)
        key = _upload_day(runner, tmp_path, DAY, 30, 0.0, seed=11)
        proxy.pause(2)
        logger = logging.getLogger("droughtwatch")
        before = list(logger.handlers)
        log = tmp_path / "run.jsonl"
        logs.to_file(str(log))
        try:
            execution = runner.run()
        finally:
            for handler in list(logger.handlers):
                logger.removeHandler(handler)
                handler.close()
            for handler in before:
                logger.addHandler(handler)
    assert execution.status == "SUCCEEDED", (execution.error, execution.cause)
    assert proxy.dropped == 2 and proxy.forwarded >= 3
    assert _ledger(database_dsn) == [(key, "done", "done", None)]
    assert "database resuming, waited" in log.read_text()


def test_observe_failure_ends_in_the_observe_fail_state(pipeline, tmp_path, monkeypatch) -> None:
    from droughtwatch_inference.runtime_settings import cached

    _upload_day(pipeline, tmp_path, DAY, 20, 0.0, seed=4)
    monkeypatch.setenv("DROUGHTWATCH_DRIFT_THRESHOLD", "-1")  # invalid for Observe only
    cached.cache_clear()
    execution = pipeline.run()
    assert execution.status == "FAILED"
    (child,) = execution.failed_children
    assert child.states_entered()[-1] == "Observe failed"
    assert child.error == "ConfigurationError"
    assert "DROUGHTWATCH_DRIFT_THRESHOLD" in child.cause


def test_transient_lambda_service_error_is_retried(pipeline, tmp_path) -> None:
    _upload_day(pipeline, tmp_path, DAY, 20, 0.0, seed=5)
    pipeline.inject_service_error("inference", "TooManyRequestsException", times=1)
    execution = pipeline.run()
    assert execution.status == "SUCCEEDED", (execution.error, execution.cause)
    assert execution.states_entered() == SUCCESS_PATH
    (child,) = execution.children
    failed = [e for e in child.events if e.type == "TaskFailed"]
    assert len(failed) == 1 and "Lambda.TooManyRequestsException" in failed[0].detail
    assert child.succeeded and child.states_entered() == ITEM_PATH
    # the refused invocation never reached a function
    assert [s for s, _ in pipeline.invocations] == [
        "plan", "processing", "inference", "observe", "plan", "day",
    ]  # fmt: skip


def test_unhandled_exception_is_caught_into_the_fail_state(pipeline, tmp_path) -> None:
    pipeline.inject_crash("plan", "handler crashed")  # raised in the worker, as a handler's
    execution = pipeline.run()
    assert execution.status == "FAILED"
    assert execution.states_entered() == ["Start", "Plan", "Plan error caught", "Plan failed"]
    assert execution.error == "RuntimeError"
    assert "handler crashed" in execution.cause


def test_an_unhandled_exception_in_a_child_fails_its_item(pipeline, tmp_path) -> None:
    _upload_day(pipeline, tmp_path, DAY, 20, 0.0, seed=6)
    pipeline.inject_crash("processing", "handler crashed")
    execution = pipeline.run()
    assert execution.status == "FAILED"
    (child,) = execution.failed_children
    assert child.states_entered() == [
        "Processing",
        "Processing error caught",
        "Processing failed",
    ]
    assert (child.error, child.failed_state) == ("RuntimeError", "Processing")
    assert "handler crashed" in child.cause


def test_real_shard_runs_end_to_end(pipeline, shard_path, database_dsn, baseline, tmp_path) -> None:
    pipeline.store.upload(
        shard_path, pipeline.config.data_bucket, LAYOUT.raw_key("part-r-00012", DAY)
    )
    execution = pipeline.run()
    assert execution.status == "SUCCEEDED", (execution.error, execution.cause)
    body = _body(execution)
    assert body["processing"]["images"] + body["processing"]["dropped"] == 81
    with psycopg.connect(database_dsn, row_factory=dict_row) as conn:
        row = conn.execute("SELECT * FROM metrics").fetchone()
        day = conn.execute("SELECT * FROM daily_metrics").fetchone()
    assert row["images"] == body["processing"]["images"] == 79
    assert abs(sum(row["class_shares"].values()) - 1.0) < 1e-6

    # the shard's labels came through: the baseline's quality, by hand from the predictions file
    local = tmp_path / "predictions.parquet"
    pipeline.store.download(pipeline.config.data_bucket, row["predictions_key"], local)
    frame = pd.read_parquet(local)
    true, predicted = frame["true_label"], frame["label"]
    assert true.notna().all() and len(frame) == 79
    f1 = []
    for c in sorted(set(true) | set(predicted)):
        tp = int(((predicted == c) & (true == c)).sum())
        wrong = int(((predicted == c) != (true == c)).sum())  # false positives + negatives
        f1.append(2 * tp / (2 * tp + wrong))
    assert row["labelled_images"] == 79
    assert row["accuracy"] == pytest.approx((true == predicted).mean(), abs=1e-12)
    assert row["macro_f1"] == pytest.approx(sum(f1) / len(f1), abs=1e-12)
    manifest = baseline.manifest
    assert row["reference_accuracy"] == manifest.reference_metrics["accuracy"]
    assert row["accuracy_drop"] == pytest.approx(row["reference_accuracy"] - row["accuracy"])
    assert row["blank_share"] == pytest.approx(2 / 81) and row["missing_label_share"] == 0.0
    assert row["notes"] == []
    # one file, one day: the day's values are the file's, and 79 images are not enough data
    assert (day["files"], day["images"], day["enough_data"]) == (1, 79, False)
    assert (day["accuracy"], day["macro_f1"]) == (row["accuracy"], row["macro_f1"])
    assert day["drift_detected"] is False and day["input_drift_detected"] is False


def test_input_drift_is_detected_on_the_demos_first_drought_day(pipeline, tmp_path, database_dsn):
    from droughtwatch_tools import synthetic
    from droughtwatch_tools.local.demo import DemoOptions

    demo = DemoOptions()
    severities = synthetic.scenario(demo.days, demo.drought_day_count())
    first_drought = next(s for s in severities if s > 0)
    assert first_drought == pytest.approx(1 / 3)
    normal_day, drought_day = DAY - dt.timedelta(days=1), DAY
    for date, severity, seed in ((normal_day, 0.0, 200), (drought_day, first_drought, 201)):
        _upload_day(pipeline, tmp_path, date, demo.images_per_day, severity, seed=seed)
        assert pipeline.run(name=f"day-{date}").status == "SUCCEEDED"
    with psycopg.connect(database_dsn, row_factory=dict_row) as conn:
        days = conn.execute("SELECT * FROM daily_metrics ORDER BY batch_date").fetchall()
    normal, drought = days
    assert normal["enough_data"] and drought["enough_data"]
    assert normal["input_drift_detected"] is False, normal["feature_drift"]
    assert max(normal["feature_drift"].values()) < normal["feature_drift_threshold"]
    assert drought["input_drift_detected"] is True, drought["feature_drift"]
    for index in ("mean_NDVI", "mean_NDMI"):
        assert drought["feature_drift"][index] >= drought["feature_drift_threshold"] * 3


def test_drought_days_raise_drift_above_the_threshold(pipeline, tmp_path, database_dsn) -> None:
    from droughtwatch_tools import synthetic

    severities = synthetic.scenario(6, 2)
    for offset, severity in enumerate(severities):
        date = DAY - dt.timedelta(days=len(severities) - 1 - offset)
        _upload_day(pipeline, tmp_path, date, 300, severity, seed=100 + offset)
        assert pipeline.run(name=f"day-{date}").status == "SUCCEEDED"
    with psycopg.connect(database_dsn) as conn:
        rows = conn.execute(
            "SELECT l.batch_date, m.drift_score FROM metrics m JOIN ledger l ON l.id = m.ledger_id"
            " ORDER BY l.batch_date"
        ).fetchall()
    scores = [s for _, s in rows]
    assert len(scores) == 6
    normal, drought = scores[:4], scores[4:]
    assert max(normal) < 0.25, scores
    assert min(drought) > 0.25, scores


def test_ctrl_c_lets_the_stage_finish_its_file_and_leaves_the_rest_pending(
    pipeline,
    tmp_path,
    database_dsn,
    monkeypatch,
) -> None:
    from droughtwatch_tools.local import runner as runner_module

    for seed in range(3):
        _upload_day(pipeline, tmp_path, DAY, 20, 0.0, seed=10 + seed)
    real_sleep = runner_module.time.sleep
    calls = {"n": 0}

    def interrupted_sleep(seconds: float) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise KeyboardInterrupt  # the user presses Ctrl-C while the execution runs
        real_sleep(seconds)

    monkeypatch.setattr(runner_module.time, "sleep", interrupted_sleep)
    execution = pipeline.run()
    monkeypatch.setattr(runner_module.time, "sleep", real_sleep)
    assert execution.status == "SUCCEEDED"
    rows = _ledger(database_dsn)
    assert len(rows) == 3
    assert all(status in {"pending", "done"} for _, _, status, _ in rows), rows
    assert any(status == "pending" for _, _, status, _ in rows), rows
    # what it left is said: by Plan (its items not handed out) or by the stage that stopped
    left = execution.step_reports(WORKFLOW.plan)[-1]["left"]
    assert left + _body(execution)["processing"].get("remaining", 0) >= 1
    again = pipeline.run()
    assert again.status == "SUCCEEDED"
    assert {r[1:3] for r in _ledger(database_dsn)} == {("done", "done")}
