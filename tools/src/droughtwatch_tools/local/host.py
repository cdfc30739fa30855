"""What the embedded PostgreSQL needs from this machine: a system user to run as when we are root
(PostgreSQL refuses root), a free TCP port, and whether a pid is a live server of a data folder
(a killed server's ``postmaster.pid`` may name a dead pid, a zombie, or a pid reused after a
reboot)."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
from pathlib import Path

from droughtwatch_tools.local.database import DSN_VARIABLE


class EmbeddedPostgresError(RuntimeError):
    """The embedded PostgreSQL cannot start here; the message says why and what to do."""


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` runs; a zombie (killed, not yet reaped by a parent that does not reap,
    as in many containers) does not."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state not in {"Z", "X"}


def is_postmaster(pid: int, pgdata: Path) -> bool:
    """Whether ``pid`` is a live server of ``pgdata`` (not a pid reused after a reboot): the
    postmaster's working directory is its data folder."""
    if not pid_alive(pid):
        return False
    try:
        return Path(os.readlink(f"/proc/{pid}/cwd")) == pgdata
    except OSError:
        return True  # no /proc to ask: trust the live pid, as pg_ctl does


def ensure_system_user(name: str) -> pwd.struct_passwd:
    """The system user ``name``, created (no login, no home) when missing. Root only."""
    try:
        return pwd.getpwnam(name)
    except KeyError:
        pass
    tool = shutil.which("useradd")
    if tool is None:
        raise EmbeddedPostgresError(
            f"PostgreSQL cannot run as root and the system user {name!r} does not exist; "
            "`useradd` is not installed to create it. Create the user by hand, run as a normal "
            f"user, or set {DSN_VARIABLE} to a PostgreSQL you run"
        )
    result = subprocess.run(
        [tool, "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        # another process may have created it at the same moment (exit 9): fine either way
        return pwd.getpwnam(name)
    except KeyError:
        raise EmbeddedPostgresError(
            f"could not create the system user {name!r} for PostgreSQL: "
            f"{result.stderr.strip() or result.returncode}"
        ) from None
