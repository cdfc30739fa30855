"""The `droughtwatch` CLI: the demo (the README's main command), local runs, bad options."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import psycopg
import pytest
from droughtwatch_inference.cli import app
from typer.testing import CliRunner

runner = CliRunner()


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, admin_dsn: str, tmp_path: Path, aws_env: None) -> str:
    # a user's own DSN is used for everything (migrations, the demo's reset, the stages), so
    # it is the database's owner
    monkeypatch.setenv("DROUGHTWATCH_DATABASE_DSN", admin_dsn)
    monkeypatch.setenv("DROUGHTWATCH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("COLUMNS", "200")
    return admin_dsn


def test_demo_three_days(cli_env: str, tmp_path: Path) -> None:
    out = tmp_path / "demo-out"
    result = runner.invoke(
        app, ["demo", "--days", "3", "--images-per-day", "120", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "droughtwatch demo" in result.output and str(out) in result.output.replace("\n", "")
    summary = json.loads((out / "summary.json").read_text())
    assert [d["status"] for d in summary] == ["SUCCEEDED"] * 3
    assert all(d["images"] > 0 for d in summary)
    assert len(list((out / "executions").glob("*.json"))) == 3
    predictions = [p for p in (out / "s3").rglob("*.parquet") if "_reference" not in p.parts]
    reports = list((out / "s3").rglob("*.html"))
    daily = [r for r in reports if "_daily" in r.parts]
    assert len(predictions) == 3 and len(reports) == 6 and len(daily) == 3
    with psycopg.connect(cli_env) as conn:
        assert conn.execute("SELECT count(*) FROM metrics").fetchone()[0] == 3
        assert conn.execute("SELECT count(*) FROM daily_metrics").fetchone()[0] == 3
    # the generated days carry labels; 120 images a day are too few for an alert
    assert all(d["accuracy"] is not None and 0 <= d["accuracy"] <= 1 for d in summary)
    assert not any(d["enough_data"] or d["drift_detected"] for d in summary)
    assert all(set(d["feature_drift"]) >= {"mean_NDVI", "mean_NDMI"} for d in summary)
    assert "NDVI drift" in result.output and "too few" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["demo", "--days", "0"], "--days"),
        (["demo", "--days", "2", "--drought-days", "3"], "cannot exceed"),
        (["demo", "--data", "/nonexistent/folder"], "is not a folder"),
        (["local", "run", "/nonexistent/folder"], "is not a folder"),
    ],
)
def test_bad_options_give_clear_errors(cli_env: str, args: list[str], message: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert message in result.output


def test_local_run_processes_only_new_files(cli_env: str, tmp_path: Path) -> None:
    from droughtwatch_inference import synthetic

    folder = tmp_path / "incoming"
    folder.mkdir()
    synthetic.write_raw_file(folder / "a.tfrecord", np.random.default_rng(1), 30, drought=0.0)
    first = runner.invoke(app, ["local", "run", str(folder), "--date", "2026-11-20"])
    assert first.exit_code == 0, first.output
    assert "processing: 1 files" in first.output
    synthetic.write_raw_file(folder / "b.tfrecord", np.random.default_rng(2), 30, drought=0.0)
    second = runner.invoke(app, ["local", "run", str(folder), "--date", "2026-11-20"])
    assert second.exit_code == 0, second.output
    assert "processing: 1 files" in second.output
    with psycopg.connect(cli_env) as conn:
        rows = conn.execute("SELECT raw_key, stage FROM ledger ORDER BY id").fetchall()
    assert rows == [("raw/2026-11-20/a.tfrecord", "done"), ("raw/2026-11-20/b.tfrecord", "done")]


def test_history_prints_an_exported_execution(cli_env: str, tmp_path: Path) -> None:
    out = tmp_path / "demo-out"
    assert (
        runner.invoke(
            app, ["demo", "--days", "1", "--images-per-day", "40", "--out", str(out)]
        ).exit_code
        == 0
    )
    (history,) = list((out / "executions").glob("*.json"))
    result = runner.invoke(app, ["local", "history", str(history)])
    assert result.exit_code == 0, result.output
    for state in ("Processing", "Inference succeeded?", "Done"):
        assert state in result.output


def test_demo_on_real_data_skips_files_that_are_not_tfrecords(
    cli_env: str, tmp_path: Path, shard_path: Path
) -> None:
    out = tmp_path / "demo-real"
    result = runner.invoke(app, ["demo", "--data", str(shard_path.parent), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "skipped (not TFRecord files): README.md" in result.output
    (day,) = json.loads((out / "summary.json").read_text())
    assert day["status"] == "SUCCEEDED"
    assert day["images"] + day["dropped"] == 81


def test_demo_on_a_folder_without_tfrecords_is_a_clear_error(cli_env: str, tmp_path: Path) -> None:
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "README.md").write_text("nothing here\n")
    result = runner.invoke(app, ["demo", "--data", str(folder), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "no TFRecord files" in result.output
