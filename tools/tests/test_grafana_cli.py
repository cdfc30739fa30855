"""`droughtwatch grafana`: the compose project is started with the database's connection in the
subprocess's environment only, locally (embedded database) or in the cloud (Secrets Manager,
tunnel), with clear errors when something it needs is missing. Docker and Pulumi are stand-in
executables on PATH that record how they were called."""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import boto3
import psycopg
import pytest
import typer
from droughtwatch_inference.adapters.database import migrate
from droughtwatch_tools.commands.grafana import register
from droughtwatch_tools.grafana.compose import find_compose_file
from droughtwatch_tools.grafana.connection import cloud_connection, default_data_dir
from droughtwatch_tools.grafana.dashboard import DASHBOARD_UID
from droughtwatch_tools.grafana.datasource import DATASOURCE_ENV
from typer.testing import CliRunner

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "grafana" / "docker-compose.yaml"

FAKE_DOCKER = """#!/bin/sh
if [ "$1" = compose ] && [ "$2" = version ]; then
  [ -n "$FAKE_NO_COMPOSE" ] && exit 1
  echo "Docker Compose version v2.30.0"; exit 0
fi
printf '%s\\n' "$@" > "$FAKE_LOG/args"
env | grep -E '^DROUGHTWATCH_(DB|GRAFANA)_' | sort > "$FAKE_LOG/env"
exit 0
"""

FAKE_PULUMI = """#!/bin/sh
printf '%s\\n' "$@" > "$FAKE_LOG/pulumi-args"
pwd > "$FAKE_LOG/pulumi-cwd"
cat "$FAKE_LOG/outputs.json"
"""


def _app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """droughtwatch"""

    register(app)
    return app


def _executable(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


@pytest.fixture
def scratch() -> Iterator[Path]:
    """A private temporary folder: a concurrent pytest session may rotate pytest's own away."""
    with tempfile.TemporaryDirectory(prefix="droughtwatch-grafana-") as folder:
        yield Path(folder)


@pytest.fixture
def tools(scratch: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A PATH holding only the stand-in docker and pulumi (and the shell tools they use)."""
    bin_dir = scratch / "bin"
    bin_dir.mkdir()
    log = scratch / "log"
    log.mkdir()
    _executable(bin_dir / "docker", FAKE_DOCKER)
    _executable(bin_dir / "pulumi", FAKE_PULUMI)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    monkeypatch.setenv("FAKE_LOG", str(log))
    for name in DATASOURCE_ENV:
        monkeypatch.delenv(name, raising=False)
    return log


def _recorded(log: Path) -> tuple[list[str], dict[str, str]]:
    args = (log / "args").read_text().splitlines()
    env = dict(line.split("=", 1) for line in (log / "env").read_text().splitlines())
    return args, env


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- local ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def demo_postgres() -> Iterator[object]:
    """An embedded PostgreSQL laid out as the demo leaves it, with one batch in the ledger."""
    from droughtwatch_tools.local.postgres import EmbeddedPostgres

    root = Path(tempfile.mkdtemp(prefix="droughtwatch-grafana-demo-"))
    pg = EmbeddedPostgres(root / "postgres")
    try:
        dsn = pg.start()
        with psycopg.connect(dsn, autocommit=True) as conn:
            migrate(conn)
            conn.execute(
                "INSERT INTO ledger (bucket, raw_key, etag, size_bytes, batch_date)"
                " VALUES ('data', 'raw/2026-01-05/a.tfrecord', 'e', 1, '2026-01-05')"
            )
        yield pg
    finally:
        pg.stop()
        shutil.rmtree(root, ignore_errors=True)


def test_local_starts_grafana_on_the_demo_database(tools: Path, demo_postgres) -> None:
    result = CliRunner().invoke(
        _app(),
        [
            "grafana",
            "--data-dir",
            str(demo_postgres.root),
            "--port",
            "3123",
            "--compose-file",
            str(COMPOSE_FILE),
        ],
    )
    assert result.exit_code == 0, result.output
    args, env = _recorded(tools)
    assert args == ["compose", "-f", str(COMPOSE_FILE), "up"]
    grafana_password = (demo_postgres.root / "droughtwatch_grafana.password").read_text().strip()
    assert env == {
        "DROUGHTWATCH_DB_HOST": "127.0.0.1",
        "DROUGHTWATCH_DB_PORT": str(demo_postgres.port),
        "DROUGHTWATCH_DB_NAME": "droughtwatch",
        # Grafana reads through its read-only role, never the owner
        "DROUGHTWATCH_DB_USER": "droughtwatch_grafana",
        "DROUGHTWATCH_DB_PASSWORD": grafana_password,
        "DROUGHTWATCH_DB_SSLMODE": "disable",
        "DROUGHTWATCH_GRAFANA_PORT": "3123",
    }
    with psycopg.connect(
        f"host=127.0.0.1 port={demo_postgres.port} dbname=droughtwatch"
        f" user=droughtwatch_grafana password={grafana_password}"
    ) as conn:
        assert conn.execute("SELECT count(*) FROM ledger").fetchone() == (1,)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DELETE FROM ledger")
    # the link opens on the data: 2026-01-04 .. 2026-01-07 (UTC, in ms)
    assert (
        f"http://127.0.0.1:3123/d/{DASHBOARD_UID}?from=1767484800000&to=1767744000000"
        in result.output
    )
    assert grafana_password not in result.output
    assert "DROUGHTWATCH_DB_PASSWORD" not in os.environ


def test_local_starts_a_stopped_demo_database(tools: Path, demo_postgres) -> None:
    demo_postgres.stop()
    result = CliRunner().invoke(
        _app(),
        [
            "grafana",
            "--data-dir",
            str(demo_postgres.root),
            "--detach",
            "--compose-file",
            str(COMPOSE_FILE),
        ],
    )
    assert result.exit_code == 0, result.output
    assert demo_postgres.is_running()
    args, env = _recorded(tools)
    assert args[-2:] == ["up", "--detach"]
    assert env["DROUGHTWATCH_DB_PORT"] == str(demo_postgres.port)
    assert "down" in result.output


def test_local_without_a_demo_database_says_to_run_the_demo(tools: Path, scratch: Path) -> None:
    result = CliRunner().invoke(
        _app(),
        ["grafana", "--data-dir", str(scratch / "nothing"), "--compose-file", str(COMPOSE_FILE)],
    )
    assert result.exit_code == 2
    assert "run `droughtwatch demo` first" in result.output
    assert not (tools / "args").exists()


def test_the_default_data_dir_is_the_demo_postgres_folder(
    scratch: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DROUGHTWATCH_HOME", str(scratch))
    assert default_data_dir() == scratch / "postgres"


# -- cloud ------------------------------------------------------------------------------------
SECRET = {"username": "droughtwatch_grafana", "password": "s3cr3tPa55word"}
MASTER = {"username": "droughtwatch_admin", "password": "master-Pa55/word"}


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """moto with the stack's two database secrets; yields the Grafana secret's ARN (the master
    secret's is master_arn(...))."""
    from moto import mock_aws

    for name in list(os.environ):
        if name.startswith("AWS_ENDPOINT_URL") or name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        client = boto3.client("secretsmanager", region_name="eu-west-1")
        client.create_secret(Name="rds!db-1", SecretString=json.dumps(MASTER))
        arn = client.create_secret(Name="grafana-db", SecretString=json.dumps(SECRET))["ARN"]
        yield arn


def master_arn(grafana_arn: str) -> str:
    return grafana_arn.replace("grafana-db", "rds!db-1")


def _outputs(arn: str, **extra: object) -> dict[str, object]:
    """A stack's outputs: both secrets' ARNs, as the program exports them."""
    return {
        "grafana_secret_arn": arn,
        "database_secret_arn": master_arn(arn),
        "region": "eu-west-1",
        **extra,
    }


def test_cloud_fetches_the_password_into_the_compose_environment_only(
    tools: Path, aws: str, scratch: Path
) -> None:
    outputs = scratch / "outputs.json"
    outputs.write_text(json.dumps(_outputs(aws, database_name="pipeline")))
    port = _free_port()
    result = CliRunner().invoke(
        _app(),
        [
            "grafana",
            "--stack-outputs",
            str(outputs),
            "--db-port",
            str(port),
            "--detach",
            "--compose-file",
            str(COMPOSE_FILE),
        ],
    )
    assert result.exit_code == 0, result.output
    args, env = _recorded(tools)
    assert args == ["compose", "-f", str(COMPOSE_FILE), "up", "--detach"]
    assert env == {
        "DROUGHTWATCH_DB_HOST": "127.0.0.1",
        "DROUGHTWATCH_DB_PORT": str(port),
        "DROUGHTWATCH_DB_NAME": "pipeline",
        "DROUGHTWATCH_DB_USER": SECRET["username"],
        "DROUGHTWATCH_DB_PASSWORD": SECRET["password"],
        "DROUGHTWATCH_DB_SSLMODE": "require",
        "DROUGHTWATCH_GRAFANA_PORT": "3000",
    }
    # nothing listens on the tunnel port here: the user is told, and still gets Grafana
    assert f"nothing listens on 127.0.0.1:{port}" in result.output
    assert SECRET["password"] not in result.output
    assert MASTER["password"] not in json.dumps(env)  # the read-only user, never the master
    assert "DROUGHTWATCH_DB_PASSWORD" not in os.environ
    for path in (REPO / "grafana").rglob("*"):
        if path.is_file():
            assert SECRET["password"] not in path.read_text(errors="replace"), path


def test_cloud_reads_the_outputs_of_a_named_stack(tools: Path, aws: str) -> None:
    (tools / "outputs.json").write_text(json.dumps(_outputs(aws)))
    port = _free_port()
    result = CliRunner().invoke(
        _app(),
        ["grafana", "--stack", "dev", "--db-port", str(port), "--compose-file", str(COMPOSE_FILE)],
    )
    assert result.exit_code == 0, result.output
    assert f"`droughtwatch tunnel --stack dev --local-port {port}`" in result.output
    pulumi_args = (tools / "pulumi-args").read_text().splitlines()
    assert pulumi_args == ["stack", "output", "--json", "--stack", "dev"]
    # run where Pulumi.yaml is: the repository holding grafana/
    assert Path((tools / "pulumi-cwd").read_text().strip()) == REPO
    _, env = _recorded(tools)
    assert env["DROUGHTWATCH_DB_NAME"] == "droughtwatch"
    assert env["DROUGHTWATCH_DB_PASSWORD"] == SECRET["password"]


def test_cloud_defaults_to_the_tunnel_on_5432(aws: str) -> None:
    connection = cloud_connection(_outputs(aws), 5432)
    assert (connection.host, connection.port, connection.sslmode) == ("127.0.0.1", 5432, "require")
    assert SECRET["password"] not in repr(connection)


def test_an_unreadable_secret_is_explained(tools: Path, aws: str, scratch: Path) -> None:
    outputs = scratch / "outputs.json"
    outputs.write_text(json.dumps(_outputs(aws.replace("grafana-db", "grafana-db-2"))))
    result = CliRunner().invoke(
        _app(), ["grafana", "--stack-outputs", str(outputs), "--compose-file", str(COMPOSE_FILE)]
    )
    assert result.exit_code == 2
    assert "cannot read the Grafana database secret" in result.output
    assert "operator_policy" in result.output
    assert "ResourceNotFoundException" in result.output
    assert not (tools / "args").exists()


def test_outputs_without_the_secret_arn_are_explained(tools: Path, scratch: Path) -> None:
    outputs = scratch / "outputs.json"
    # a stack deployed before the Grafana user had its secret: the master's is not used instead
    outputs.write_text(json.dumps({"region": "eu-west-1", "database_secret_arn": "arn:master"}))
    result = CliRunner().invoke(
        _app(), ["grafana", "--stack-outputs", str(outputs), "--compose-file", str(COMPOSE_FILE)]
    )
    assert result.exit_code == 2
    assert "no grafana_secret_arn" in result.output


def test_stack_and_stack_outputs_exclude_each_other(tools: Path, scratch: Path) -> None:
    outputs = scratch / "outputs.json"
    outputs.write_text("{}")
    result = CliRunner().invoke(
        _app(),
        [
            "grafana",
            "--stack",
            "dev",
            "--stack-outputs",
            str(outputs),
            "--compose-file",
            str(COMPOSE_FILE),
        ],
    )
    assert result.exit_code == 2
    assert "either --stack or --stack-outputs" in result.output


# -- what must be installed -------------------------------------------------------------------
def test_missing_docker_says_what_to_install(
    scratch: Path, monkeypatch: pytest.MonkeyPatch, demo_postgres
) -> None:
    empty = scratch / "empty"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    result = CliRunner().invoke(
        _app(),
        ["grafana", "--data-dir", str(demo_postgres.root), "--compose-file", str(COMPOSE_FILE)],
    )
    assert result.exit_code == 2
    assert "Docker is not installed: install Docker Engine with the Compose plugin" in (
        result.output
    )


def test_docker_without_compose_says_to_install_the_plugin(
    tools: Path, monkeypatch: pytest.MonkeyPatch, demo_postgres
) -> None:
    monkeypatch.setenv("FAKE_NO_COMPOSE", "1")
    result = CliRunner().invoke(
        _app(),
        ["grafana", "--data-dir", str(demo_postgres.root), "--compose-file", str(COMPOSE_FILE)],
    )
    assert result.exit_code == 2
    assert "install the Docker Compose plugin" in result.output


def test_missing_pulumi_points_to_stack_outputs(
    tools: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tools.parent / "bin" / "pulumi").unlink()
    monkeypatch.setenv("PATH", str(tools.parent / "bin"))
    result = CliRunner().invoke(
        _app(), ["grafana", "--stack", "dev", "--compose-file", str(COMPOSE_FILE)]
    )
    assert result.exit_code == 2
    assert "Pulumi CLI is not installed" in result.output
    assert "--stack-outputs" in result.output


def test_the_compose_file_is_found_from_inside_the_repository(scratch: Path) -> None:
    assert find_compose_file(REPO / "services" / "inference") == COMPOSE_FILE
    # outside the repository, the checkout this package is installed from
    assert find_compose_file(scratch) == COMPOSE_FILE


# -- a database that is resuming --------------------------------------------------------------


def test_grafana_waits_for_a_resuming_database_behind_the_tunnel(
    postgres, test_database: str, resuming_proxy
) -> None:
    """The tunnel is up, the (paused) database behind it drops the first connections while it
    resumes: the command waits for it and says how long, before Grafana starts."""
    from droughtwatch_tools.grafana.connection import Connection, wait_until_reachable

    _, proxy = resuming_proxy(postgres.dsn(test_database, "droughtwatch_grafana"))
    proxy.pause(2)
    grafana = Connection(
        "127.0.0.1", proxy.port, test_database, "droughtwatch_grafana",
        postgres.passwords["droughtwatch_grafana"], "disable",
    )  # fmt: skip
    said: list[str] = []
    assert wait_until_reachable(grafana, said.append) is None
    assert proxy.dropped == 2
    assert said[0].startswith(f"database at 127.0.0.1:{proxy.port}/{test_database} is not taking")
    assert said[-1].startswith("database resuming, waited ")
    # one that stays away is reported after the bound, its password never shown
    proxy.pause(100)
    problem = wait_until_reachable(grafana, said.append, bound_seconds=1)
    assert problem and grafana.password not in problem


def test_cloud_waits_for_the_database_when_the_tunnel_is_open(
    tools: Path, aws: str, scratch: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from droughtwatch_tools.commands import grafana as command

    waited: list[int] = []
    monkeypatch.setattr(
        command, "wait_until_reachable", lambda connection, say: waited.append(connection.port)
    )
    with socket.socket() as listener:  # the tunnel's local end
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        outputs = scratch / "outputs.json"
        outputs.write_text(json.dumps(_outputs(aws)))
        result = CliRunner().invoke(
            _app(),
            ["grafana", "--stack-outputs", str(outputs), "--db-port", str(port),
             "--compose-file", str(COMPOSE_FILE)],
        )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert waited == [port]
    assert "nothing listens" not in result.output
