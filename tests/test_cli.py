"""The `droughtwatch` CLI: the demo (the README's main command), local runs, bad options."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import psycopg
import pytest
from droughtwatch_contract.settings import ObserveSettings, env_name
from droughtwatch_tools.cli import app
from droughtwatch_tools.dashboard_page.html import read_figures
from droughtwatch_tools.grafana.dashboard import DRIFT_PANEL_ID
from typer.testing import CliRunner

runner = CliRunner()
# Each predictions file's own HTML report (off by default: the day's report is the one to open).
FILE_REPORTS = env_name(ObserveSettings, "save_file_reports")


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, admin_dsn: str, tmp_path: Path, aws_env: None) -> str:
    # a user's own DSN is used for everything (migrations, the demo's reset, the stages), so
    # it is the database's owner
    monkeypatch.setenv("DROUGHTWATCH_DATABASE_DSN", admin_dsn)
    monkeypatch.setenv("DROUGHTWATCH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("COLUMNS", "400")  # long paths stay on one line of the table
    return admin_dsn


def _table_row(output: str, name: str) -> str:
    """The local run table's row of a file (the one line that starts with its name and is not
    its report's line)."""
    (row,) = [x for x in output.splitlines() if x.split()[:1] == [name] and ".html" not in x]
    return row


def _report_of(output: str, name: str) -> str:
    """The report path printed for a file below the table."""
    reports = output[output.index("reports (Evidently HTML):") :]
    (line,) = [x for x in reports.splitlines() if x.split()[:1] == [name]]
    return line.split(maxsplit=1)[1]


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
    daily = [r for r in reports if "daily-reports" in r.parts]
    # the days' reports: a file's own report is off by default
    assert len(predictions) == 3 and len(reports) == 3 and len(daily) == 3
    with psycopg.connect(cli_env) as conn:
        assert conn.execute("SELECT count(*) FROM metrics").fetchone()[0] == 3
        assert conn.execute("SELECT count(*) FROM daily_metrics").fetchone()[0] == 3
    # the generated days carry labels; 120 images a day are too few for an alert
    assert all(d["accuracy"] is not None and 0 <= d["accuracy"] <= 1 for d in summary)
    assert not any(d["enough_data"] or d["drift_detected"] for d in summary)
    assert all(set(d["feature_drift"]) >= {"mean_NDVI", "mean_NDMI"} for d in summary)
    assert "NDVI" in result.output and "NDMI" in result.output and "too few" in result.output
    # the offline dashboard page, its path printed beside the table; its drift panel draws
    # each day's score apart, as not enough data
    page = out / "dashboard.html"
    assert f"open {page} in a browser" in result.output
    (too_few,) = [
        t
        for t in read_figures(page.read_text())[DRIFT_PANEL_ID]["data"]
        if t["name"].startswith("not enough data")
    ]
    assert too_few["x"] == [d["date"] for d in summary]
    assert too_few["y"] == pytest.approx([d["drift_score"] for d in summary])


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


def _raw(folder: Path, name: str, seed: int, n: int = 30) -> Path:
    from droughtwatch_tools import synthetic

    folder.mkdir(parents=True, exist_ok=True)
    synthetic.write_raw_file(folder / name, np.random.default_rng(seed), n, drought=0.0)
    return folder / name


def _corrupt(folder: Path, name: str) -> Path:
    """A raw file whose header is valid (it is taken for a TFRecord) but whose first record's
    payload is damaged: Processing fails it with InvalidRawFile."""
    path = _raw(folder, name, seed=99)
    data = bytearray(path.read_bytes())
    data[40] ^= 0xFF
    path.write_bytes(bytes(data))
    return path


def _ledger_rows(dsn: str) -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "SELECT raw_key, stage, status, attempts, images, report_key FROM ledger ORDER BY id"
        ).fetchall()


def test_local_run_processes_only_new_files(
    cli_env: str, tmp_path: Path, stored_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(FILE_REPORTS, "true")
    home = tmp_path / "home"
    folder = tmp_path / "incoming"
    _raw(folder, "a.tfrecord", seed=1)
    first = runner.invoke(app, ["local", "run", str(folder), "--date", "2026-11-20"])
    assert first.exit_code == 0, first.output
    _raw(folder, "b.tfrecord", seed=2)
    monkeypatch.setenv("COLUMNS", "80")  # a cron log or a default terminal
    second = runner.invoke(app, ["local", "run", str(folder), "--date", "2026-11-20"])
    assert second.exit_code == 0, second.output
    rows = _ledger_rows(cli_env)
    assert [r[:3] for r in rows] == [
        ("raw/2026-11-20/a.tfrecord", "done", "done"),
        ("raw/2026-11-20/b.tfrecord", "done", "done"),
    ]
    with psycopg.connect(cli_env) as conn:
        runs = conn.execute(
            "SELECT stage, sum(files_done) FROM runs WHERE stage <> ALL(%s)"
            " GROUP BY stage ORDER BY stage",
            (["plan", "day"],),  # the steps around the stages; their counts are not files done
        ).fetchall()
    assert runs == [("inference", 2), ("observe", 2), ("processing", 2)]  # each file once
    # the second run's table lists both of its files, done, with their products
    assert "2 files" in second.output
    for raw_key, *_, images, report_key in rows:
        name = raw_key.rsplit("/", 1)[-1]
        line = _table_row(second.output, name)
        assert " done " in line and f" {images} " in line
        report = home / "buckets" / "droughtwatch-local-data" / report_key
        assert _report_of(second.output, name) == str(report)
        assert b"<!DOCTYPE html>" in report.read_bytes()[:200]
    # the table fits the 80 columns; the paths after it are whole, one a line, to copy
    table = second.output[: second.output.index("reports (Evidently HTML):")]
    assert max(len(x) for x in table.splitlines()) <= 80
    assert len(str(report)) > 80
    # the products live in the shared store, not in a copy made at the end of the run
    assert not list((home / "work").iterdir())
    assert "local buckets: " + str(home / "buckets") in second.output


def test_an_expired_report_shows_as_expired_not_missing(
    cli_env: str, tmp_path: Path, stored_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Observe records when the stack's lifecycle rule deletes the report (from the same
    retention the stack sets); once it is gone, the table says expired, with the date."""
    import datetime as dt

    monkeypatch.setenv("DROUGHTWATCH_REPORT_RETENTION_DAYS", "30")
    monkeypatch.setenv(FILE_REPORTS, "true")
    folder = tmp_path / "incoming"
    _raw(folder, "a.tfrecord", seed=1)
    first = runner.invoke(app, ["local", "run", str(folder), "--date", "2026-11-20"])
    assert first.exit_code == 0, first.output
    with psycopg.connect(cli_env, autocommit=True) as conn:
        report_key, expires = conn.execute(
            "SELECT report_key, report_expires_at FROM ledger"
        ).fetchone()
        # S3's rule: 30 days after it was written, at the next midnight UTC
        soon = dt.datetime.now(dt.UTC) + dt.timedelta(days=30)
        assert expires.tzinfo and soon < expires <= soon + dt.timedelta(days=1)
        assert (expires.hour, expires.minute) == (0, 0)
        # the lifecycle rule's work, a month on
        conn.execute("UPDATE ledger SET report_expires_at = '2026-12-01 00:00+00'")
    (tmp_path / "home" / "buckets" / "droughtwatch-local-data" / report_key).unlink()
    again = runner.invoke(app, ["local", "run", str(folder), "--date", "2026-11-20"])
    assert again.exit_code == 0, again.output
    assert _report_of(again.output, "a.tfrecord") == (
        "expired on 2026-12-01 (report_retention_days)"
    )


def test_local_run_lists_failed_files_and_exits_3(
    cli_env: str, tmp_path: Path, stored_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DROUGHTWATCH_MAX_ATTEMPTS", "1")
    monkeypatch.setenv(FILE_REPORTS, "true")
    folder = tmp_path / "incoming"
    _raw(folder, "good.tfrecord", seed=3)
    _corrupt(folder, "bad.tfrecord")
    result = runner.invoke(app, ["local", "run", str(folder), "--date", "2026-11-21"])
    assert result.exit_code == 3, result.output
    rows = {r[0].rsplit("/", 1)[-1]: r for r in _ledger_rows(cli_env)}
    good = _table_row(result.output, "good.tfrecord")
    *_, images, report_key = rows["good.tfrecord"]
    assert " done " in good and f" {images} " in good
    assert _report_of(result.output, "good.tfrecord").endswith(report_key)
    bad = _table_row(result.output, "bad.tfrecord")
    assert "failed at processing, attempts used up (1 of 1)" in bad
    failures = result.output[result.output.index("1 failed:") :]
    assert "- bad.tfrecord: InvalidRawFile: " in failures
    assert "used up its attempts at processing (1 of 1) and is not retried" in failures
    # the Step Functions events are for --verbose and `local history`
    assert "TaskStateEntered" not in result.output
    with psycopg.connect(cli_env) as conn:
        (error,) = conn.execute(
            "SELECT last_error FROM ledger WHERE raw_key LIKE %s", ("%bad.tfrecord",)
        ).fetchone()
    assert error.splitlines()[0] in failures


def test_verbose_adds_the_events_and_a_retried_failure_says_so(
    cli_env: str, tmp_path: Path, stored_model: Path
) -> None:
    folder = tmp_path / "incoming"
    _corrupt(folder, "bad.tfrecord")
    result = runner.invoke(app, ["local", "run", str(folder), "--date", "2026-11-22", "--verbose"])
    assert result.exit_code == 3, result.output
    assert "TaskStateEntered" in result.output and "ExecutionSucceeded" in result.output
    assert "failed at processing (attempt 1 of 3)" in result.output
    assert "The next run retries it (2 of its 3 attempts left)." in result.output


def test_a_failed_execution_exits_4_and_names_its_error_once(
    cli_env: str, tmp_path: Path, stored_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DROUGHTWATCH_DRIFT_THRESHOLD", "-1")  # invalid for Observe only
    folder = tmp_path / "incoming"
    _raw(folder, "a.tfrecord", seed=4)
    result = runner.invoke(app, ["local", "run", str(folder), "--date", "2026-11-23"])
    assert result.exit_code == 4, result.output
    line = _table_row(result.output, "a.tfrecord")
    assert "observe: pending" in line  # processed and predicted; the next run observes it
    text = " ".join(result.output.split())
    assert "FAILED: ConfigurationError: invalid configuration: DROUGHTWATCH_DRIFT_THRESHOLD" in text
    assert "ConfigurationError: ConfigurationError" not in text


def _model_folder(folder: Path, baseline, **manifest_changes) -> Path:
    from droughtwatch_tools import training

    model, manifest, _, reference = baseline
    files = training.artifacts(
        model, manifest, formats=("torch.export",), reference_features=reference
    )
    values = {**json.loads(files["model.json"]), **manifest_changes}
    files["model.json"] = json.dumps(values).encode()
    folder.mkdir(parents=True)
    for name, body in files.items():
        (folder / name).write_bytes(body)
    return folder


def test_a_bad_model_folder_never_replaces_the_stored_model(
    cli_env: str, tmp_path: Path, baseline, stored_model: Path
) -> None:
    stored = stored_model
    before = stored.read_bytes()
    empty = tmp_path / "incoming"
    empty.mkdir()

    # model.json breaks the contract
    broken = _model_folder(tmp_path / "broken model", baseline, classes=["only-one"])
    result = runner.invoke(app, ["local", "run", str(empty), "--model", str(broken)])
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())
    assert f"error: {broken} does not pass `droughtwatch model check`" in text
    assert "model.json: classes" in text
    assert "InvalidModel" not in text and "ModelCheckFailed" not in text and "s3://" not in text
    assert stored.read_bytes() == before

    # a valid model.json beside weights that do not load
    corrupt = _model_folder(tmp_path / "corrupt", baseline, version="2")
    (corrupt / "model.pt2").write_bytes(b"not a torch.export archive")
    result = runner.invoke(app, ["local", "run", str(empty), "--model", str(corrupt)])
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())
    assert f"error: {corrupt} does not pass `droughtwatch model check`" in text
    assert "model.pt2" in text and "InvalidModel" not in text
    assert stored.read_bytes() == before


def test_a_good_model_folder_replaces_the_stored_model(
    cli_env: str, tmp_path: Path, baseline, stored_model: Path
) -> None:
    stored = stored_model
    newer = _model_folder(tmp_path / "v2", baseline, version="2026.12")
    empty = tmp_path / "incoming"
    empty.mkdir()
    result = runner.invoke(app, ["local", "run", str(empty), "--model", str(newer)])
    assert result.exit_code == 0, result.output
    pointer = json.loads(stored.read_bytes())
    assert pointer["version"] == "2026.12"
    assert pointer["weights"] == "versions/2026.12/model.pt2"


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
    assert "not taken (not TFRecord files): README.md (text file)" in result.output
    (day,) = json.loads((out / "summary.json").read_text())
    assert day["status"] == "SUCCEEDED"
    assert day["images"] + day["dropped_blank"] == 81


def test_demo_on_a_folder_without_tfrecords_is_a_clear_error(cli_env: str, tmp_path: Path) -> None:
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "README.md").write_text("nothing here\n")
    result = runner.invoke(app, ["demo", "--data", str(folder), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "no TFRecord files" in result.output
