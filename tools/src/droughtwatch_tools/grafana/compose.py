"""Running Grafana: the repository's compose project (grafana/docker-compose.yaml) started with
`docker compose`, the datasource's connection in the subprocess's environment only, and the
dashboard's link, opened on the batches the database holds."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from droughtwatch_tools import printer
from droughtwatch_tools.errors import UserError
from droughtwatch_tools.grafana.connection import Connection
from droughtwatch_tools.grafana.dashboard import DASHBOARD_UID

# The variable the compose file reads Grafana's HTTP port from.
ENV_GRAFANA_PORT = "DROUGHTWATCH_GRAFANA_PORT"
BATCH_RANGE_SQL = "SELECT min(batch_date), max(batch_date) FROM ledger"


def compose_command(which: Callable[[str], str | None] = shutil.which) -> list[str]:
    """`docker compose` (the plugin), else the standalone `docker-compose`."""
    docker = which("docker")
    if docker is not None:
        probe = subprocess.run(
            [docker, "compose", "version"], capture_output=True, text=True, check=False
        )
        if probe.returncode == 0:
            return [docker, "compose"]
    standalone = which("docker-compose")
    if standalone is not None:
        return [standalone]
    if docker is None:
        raise UserError(
            "Docker is not installed: install Docker Engine with the Compose plugin",
            "see https://docs.docker.com/engine/install/ (packages docker-ce and "
            "docker-compose-plugin), then run this command again",
        )
    raise UserError(
        "Docker is installed but Compose is not",
        "install the Docker Compose plugin (package docker-compose-plugin, "
        "https://docs.docker.com/compose/install/linux/), then run this command again",
    )


def find_compose_file(start: Path | None = None) -> Path:
    """grafana/docker-compose.yaml in the working directory or a parent, else in the checkout
    this package is installed from."""
    here = (start or Path.cwd()).resolve()
    candidates = [d / "grafana" / "docker-compose.yaml" for d in (here, *here.parents)]
    # this file is <checkout>/tools/src/droughtwatch_tools/grafana/compose.py
    candidates.append(Path(__file__).resolve().parents[4] / "grafana" / "docker-compose.yaml")
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise UserError(
        "grafana/docker-compose.yaml not found",
        "run from the droughtwatch repository, or pass --compose-file",
    )


def dashboard_url(port: int, first: dt.date | None = None, last: dt.date | None = None) -> str:
    """The dashboard's address; with the data's first and last batch dates, a range that shows
    all of it (a day either side), whatever the dashboard's default."""
    url = f"http://127.0.0.1:{port}/d/{DASHBOARD_UID}"
    if first is None or last is None:
        return url

    def ms(day: dt.date) -> int:
        return int(dt.datetime.combine(day, dt.time(), dt.UTC).timestamp() * 1000)

    return f"{url}?from={ms(first - dt.timedelta(days=1))}&to={ms(last + dt.timedelta(days=2))}"


def batch_range(connection: Connection) -> tuple[dt.date, dt.date] | None:
    """First and last batch dates in the ledger, or None when it is empty."""
    import psycopg

    with psycopg.connect(
        host=connection.host,
        port=connection.port,
        dbname=connection.database,
        user=connection.user,
        password=connection.password,
        sslmode=connection.sslmode,
        connect_timeout=5,
    ) as conn:
        row = conn.execute(BATCH_RANGE_SQL).fetchone()
    if row is None or row[0] is None:
        return None
    return row[0], row[1]


def _say(text: str) -> None:
    """A result line on stdout, as written: no markup, and unwrapped so links stay whole."""
    printer.console.print(text, markup=False, highlight=False, soft_wrap=True)


def run_grafana(
    connection: Connection,
    compose: list[str],
    compose_file: Path,
    grafana_port: int,
    detach: bool,
) -> int:
    """`docker compose up` with the datasource variables in the subprocess's environment only;
    compose's exit code."""
    import psycopg

    env = {**os.environ, **connection.environment(), ENV_GRAFANA_PORT: str(grafana_port)}
    try:
        first_last = batch_range(connection)
    except (psycopg.Error, OSError) as exc:  # only the printed link depends on it
        printer.warning(
            f"could not read the batch dates ({type(exc).__name__}); the dashboard opens on "
            "its default range"
        )
        first_last = None
    url = dashboard_url(grafana_port, *(first_last or (None, None)))
    argv = [*compose, "-f", str(compose_file), "up", *(["--detach"] if detach else [])]
    _say(f"Grafana: {url}  (database {connection.database} at {connection.host}:{connection.port})")
    try:
        code = subprocess.run(argv, env=env, check=False).returncode
    except KeyboardInterrupt:  # Ctrl-C reached compose too, which stops the container
        return 0
    if detach and code == 0:
        _say(f"stop it with: {' '.join(compose)} -f {compose_file} down")
    return code
