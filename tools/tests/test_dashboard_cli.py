"""`droughtwatch dashboard`: the page of the local database (read as Grafana reads it), nothing
written before the first run, and on a stack: the tunnel looked for before any secret is read,
with how to open it. The stack's outputs come from a file or a stand-in pulumi on PATH."""

from __future__ import annotations

import json
import os
import socket
import stat
from collections.abc import Iterator
from pathlib import Path

import boto3
import psycopg
import pytest
import typer
from droughtwatch_tools.commands.dashboard import register
from droughtwatch_tools.dashboard_page.html import read_figures
from droughtwatch_tools.grafana.dashboard import DRIFT_PANEL_ID
from psycopg.conninfo import conninfo_to_dict
from psycopg.types.json import Jsonb
from typer.testing import CliRunner

FAKE_PULUMI = """#!/bin/sh
cat "$FAKE_OUTPUTS"
"""


def _app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """droughtwatch"""

    register(app)
    return app


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _seed_day(admin_dsn: str, day: str, drift: float) -> None:
    """One raw file done and its day's row, as Observe writes them."""
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO ledger (bucket, raw_key, etag, size_bytes, batch_date, stage, status,"
            " images, dropped, predicted_images) VALUES ('data', %s, 'e', 1, %s, 'done',"
            " 'done', 300, 0, 300)",
            (f"raw/{day}/scene.tfrecord", day),
        )
        conn.execute(
            "INSERT INTO daily_metrics (batch_date, model_name, model_version, run_id, files,"
            " last_metrics_id, images, min_images, enough_data, class_counts, class_shares,"
            " missing_share, drift_score, drift_method, drift_threshold, drift_detected)"
            " VALUES (%s, 'baseline', '1', 'run-1', 1, 1, 300, 200, true, %s, %s, 0, %s,"
            " 'psi', 0.25, %s)",
            (day, Jsonb({"0": 300}), Jsonb({"0": 1.0}), drift, drift >= 0.25),
        )


@pytest.fixture
def local_dsn(monkeypatch: pytest.MonkeyPatch, grafana_dsn: str) -> str:
    """The local database of DROUGHTWATCH_DATABASE_DSN, here as the read-only Grafana role."""
    monkeypatch.setenv("DROUGHTWATCH_DATABASE_DSN", grafana_dsn)
    return grafana_dsn


def test_writes_the_page_of_the_local_database(
    local_dsn: str, admin_dsn: str, tmp_path: Path
) -> None:
    _seed_day(admin_dsn, "2026-11-26", 0.02)
    _seed_day(admin_dsn, "2026-11-27", 0.4)
    out = tmp_path / "pages" / "dashboard.html"
    result = CliRunner().invoke(_app(), ["dashboard", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert f"open {out} in a browser" in result.output
    assert "Prediction drift above threshold: 1 of 2 days (2026-11-27)" in result.output
    figures = read_figures(out.read_text())
    (score,) = [t for t in figures[DRIFT_PANEL_ID]["data"] if t["name"] == "drift_score"]
    assert (score["x"], score["y"]) == (["2026-11-26", "2026-11-27"], [0.02, 0.4])
    # --days 1: the newest day only
    result = CliRunner().invoke(_app(), ["dashboard", "--out", str(out), "--days", "1"])
    assert result.exit_code == 0, result.output
    (score,) = [
        t
        for t in read_figures(out.read_text())[DRIFT_PANEL_ID]["data"]
        if t["name"] == "drift_score"
    ]
    assert score["x"] == ["2026-11-27"]
    assert [p.name for p in out.parent.iterdir()] == ["dashboard.html"]  # no temporary left


def test_no_runs_yet_writes_nothing_and_says_what_to_do(local_dsn: str, tmp_path: Path) -> None:
    out = tmp_path / "dashboard.html"
    result = CliRunner().invoke(_app(), ["dashboard", "--out", str(out)])
    assert result.exit_code == 2
    assert "no runs yet" in result.output and "nothing written" in result.output
    assert "run `droughtwatch demo`" in result.output
    assert not out.exists()


def test_without_a_demo_database_says_to_run_the_demo(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("DROUGHTWATCH_DATABASE_DSN", raising=False)
    out = tmp_path / "dashboard.html"
    result = CliRunner().invoke(
        _app(), ["dashboard", "--data-dir", str(tmp_path / "nothing"), "--out", str(out)]
    )
    assert result.exit_code == 2
    assert "run `droughtwatch demo` first" in result.output
    assert not out.exists()


# -- a stack ----------------------------------------------------------------------------------
@pytest.fixture
def no_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    """No AWS credentials at all: a command that read a secret would fail on them."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")


def _outputs(tmp_path: Path, arn: str = "arn:aws:secretsmanager:eu-west-1:1:secret:g") -> Path:
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps({"grafana_secret_arn": arn, "region": "eu-west-1"}))
    return path


def test_a_stack_without_a_tunnel_says_how_to_open_one(no_aws: None, tmp_path: Path) -> None:
    port = _free_port()
    out = tmp_path / "dashboard.html"
    result = CliRunner().invoke(
        _app(),
        [
            "dashboard",
            "--stack-outputs",
            str(_outputs(tmp_path)),
            "--db-port",
            str(port),
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 2
    assert f"nothing listens on 127.0.0.1:{port}" in result.output
    assert f"`droughtwatch tunnel --local-port {port}`" in result.output
    assert "secret" not in result.output  # looked for before any secret is read
    assert not out.exists()


def test_a_named_stack_without_a_tunnel_names_it_in_the_command(
    no_aws: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    pulumi = bin_dir / "pulumi"
    pulumi.write_text(FAKE_PULUMI)
    pulumi.chmod(pulumi.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    monkeypatch.setenv("FAKE_OUTPUTS", str(_outputs(tmp_path)))
    port = _free_port()
    result = CliRunner().invoke(
        _app(),
        ["dashboard", "--stack", "dev", "--db-port", str(port), "--out", str(tmp_path / "d.html")],
    )
    assert result.exit_code == 2
    assert f"`droughtwatch tunnel --stack dev --local-port {port}`" in result.output


@pytest.fixture
def grafana_secret(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """moto with the stack's Grafana secret; its ARN."""
    from moto import mock_aws

    for name in list(os.environ):
        if name.startswith("AWS_ENDPOINT_URL") or name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        client = boto3.client("secretsmanager", region_name="eu-west-1")
        secret = {"username": "droughtwatch_grafana", "password": "pa55-w0rd"}
        yield client.create_secret(Name="grafana-db", SecretString=json.dumps(secret))["ARN"]


def test_a_tunnel_to_a_server_that_refuses_is_explained(
    grafana_secret: str, grafana_dsn: str, tmp_path: Path
) -> None:
    # something PostgreSQL listens on the port, but not over TLS as RDS does
    port = int(conninfo_to_dict(grafana_dsn)["port"])
    result = CliRunner().invoke(
        _app(),
        [
            "dashboard",
            "--stack-outputs",
            str(_outputs(tmp_path, grafana_secret)),
            "--db-port",
            str(port),
            "--out",
            str(tmp_path / "dashboard.html"),
        ],
    )
    assert result.exit_code == 2
    assert f"cannot read the stack of {tmp_path / 'outputs.json'}" in result.output
    assert "SSL" in result.output
    assert f"`droughtwatch tunnel --local-port {port}`" in result.output
    assert "pa55-w0rd" not in result.output


def test_stack_and_stack_outputs_exclude_each_other(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        _app(), ["dashboard", "--stack", "dev", "--stack-outputs", str(_outputs(tmp_path))]
    )
    assert result.exit_code == 2
    assert "either --stack or --stack-outputs" in result.output


def test_a_first_run_whose_files_all_failed_shows_them(
    local_dsn: str, admin_dsn: str, tmp_path: Path
) -> None:
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO ledger (bucket, raw_key, etag, size_bytes, batch_date, stage, status,"
            " attempts, last_error) VALUES ('data', 'raw/2026-11-27/bad.tfrecord', 'e', 1,"
            " '2026-11-27', 'processing', 'failed', 3, 'InvalidRawFile: record 3: truncated')"
        )
    out = tmp_path / "dashboard.html"
    result = CliRunner().invoke(_app(), ["dashboard", "--out", str(out)])
    assert result.exit_code == 0, result.output
    page = out.read_text()
    assert "InvalidRawFile: record 3: truncated" in page
    # no day was observed: the charts are drawn empty, over the one day
    figures = read_figures(page)
    assert all(t["x"] == [] or t["name"] == "threshold" for t in figures[DRIFT_PANEL_ID]["data"])
    assert figures[DRIFT_PANEL_ID]["layout"]["xaxis"]["range"] == [
        "2026-11-26 12:00:00",
        "2026-11-27 12:00:00",
    ]
