"""What the benchmarks share: a fresh measured process and its JSON report, the process's
own memory figures, the migrated PostgreSQL and the AWS setting the stages run against, and
the printing (a console wide enough for the tables, met / not met, the machine's load).

The benchmarks import it as ``harness`` (``python bench/<name>.py`` puts bench/ first on the
path); a child started as ``python bench/<name>.py --child`` imports it the same way, and a
``python -c`` child after putting bench/ on its path once its timed part is over.
"""

from __future__ import annotations

import json
import os
import sys
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REGION = "eu-west-1"
DATA_BUCKET = "bench-data"
MODEL_BUCKET = "bench-models"


# In a measured process


def status_kb(field: str) -> int:
    """A figure of this process from /proc/self/status, in kB: VmHWM is the peak RSS of its
    own address space (ru_maxrss would include a parent's, kept across exec), VmRSS the
    current one."""
    status = Path("/proc/self/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith(field)).split()[1])


def peak_rss_mb() -> float:
    return status_kb("VmHWM") / 1024


# Around it


def run_child(
    args: Sequence[str],
    *,
    what: str,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> tuple[dict[str, Any], str, float]:
    """Run ``python *args`` in a fresh interpreter and wait for it. Its last line on stdout is
    its report, as JSON. Returns the report, its stderr, and the wall seconds from spawning it
    to its exit. Raises naming ``what`` when it fails."""
    import subprocess  # here: a measured child importing this module does not pay for it

    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, *args],
        env=None if env is None else dict(env),
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - started
    if done.returncode:
        raise RuntimeError(f"{what} exited {done.returncode}:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stderr, seconds


def json_lines(text: str) -> list[dict[str, Any]]:
    """The JSON objects among ``text``'s lines (the stages' structured log), in order."""
    events = []
    for line in text.splitlines():
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            events.append(value)
    return events


@contextmanager
def migrated_postgres(workdir: Path) -> Iterator[str]:
    """A PostgreSQL server of our own under ``workdir`` for the block, its database migrated
    (as a deployment's migrate function leaves it: the stages refuse an outdated schema);
    yields its DSN."""
    from droughtwatch_tools.local.database import migrate_dsn
    from droughtwatch_tools.local.postgres import EmbeddedPostgres

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        server = EmbeddedPostgres(workdir / "pg", preferred_port=0)
        dsn = server.start()
    try:
        migrate_dsn(dsn)
        yield dsn
    finally:
        server.stop()


def stage_environment(dsn: str, work_dir: Path) -> dict[str, str]:
    """What every stage reads from its environment here: fake AWS credentials and region,
    the data bucket, the database and the work folder."""
    # here: a measured child importing this module does not pay for pydantic
    from droughtwatch_contract.settings import CommonSettings, env_name

    return {
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": REGION,
        env_name(CommonSettings, "data_bucket"): DATA_BUCKET,
        env_name(CommonSettings, "database_dsn"): dsn,
        env_name(CommonSettings, "work_dir"): str(work_dir),
    }


def create_buckets(s3: Any, *names: str) -> None:
    for name in names:
        s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION})


# Another checkout's code


REPO = Path(__file__).resolve().parent.parent
# The real droughtwatch shard (81 records) beside the checkout: what the benchmarks read.
SHARD = REPO.parent / "shared" / "data" / "droughtwatch" / "part-r-00012"


def merge_base() -> str | None:
    """Where this branch left main (None on main itself, or outside git)."""
    import subprocess

    git = ["git", "-C", str(REPO)]
    found = subprocess.run(
        [*git, "merge-base", "HEAD", "main"], capture_output=True, text=True, check=False
    ).stdout.strip()
    head = subprocess.run(
        [*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return found if found and found != head else None


def export_base(ref: str, dest: Path, sources: Sequence[str]) -> Path:
    """The ``sources`` folders of commit ``ref`` under ``dest`` (put them first on PYTHONPATH
    to run that commit's code in this environment)."""
    import subprocess
    import tarfile

    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", "--format=tar", ref, *sources],
        capture_output=True,
        check=True,
    ).stdout
    dest.mkdir(parents=True)
    tar = dest / "base.tar"
    tar.write_bytes(archive)
    with tarfile.open(tar) as t:
        t.extractall(dest, filter="data")
    tar.unlink()
    return dest


def checkout_env(pythonpath: str | None) -> dict[str, str]:
    """This environment, running another checkout's code (``pythonpath``, from export_base)
    or this one's (None)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    return env


def process_with(raw: Path, dest: Path, pythonpath: str | None) -> Path:
    """``raw`` processed into ``dest`` by a checkout's own preprocess code (the processed
    format has versions: a base commit reads only what it writes)."""
    import subprocess

    code = "import sys; from droughtwatch_preprocess import process_file; "
    code += "process_file(sys.argv[1], sys.argv[2])"
    subprocess.run(
        [sys.executable, "-c", code, str(raw), str(dest)], env=checkout_env(pythonpath), check=True
    )
    return dest


# Printing


def console(min_width: int = 0) -> Any:
    """A rich console at least ``min_width`` columns wide, also when the output is a file
    (rich's 80 columns would squeeze the tables)."""
    from rich.console import Console

    return Console(width=max(Console().width, min_width))


def mark(ok: bool) -> str:
    """A target met or not, in rich markup."""
    return "[green]met[/green]" if ok else "[red]not met[/red]"


def bytecode() -> str:
    """Whether the installed packages have their bytecode: where none is written
    (PYTHONDONTWRITEBYTECODE) and none was compiled at install (`uv sync --compile-bytecode`,
    as `make bench` and CI do), each process compiles torch's and Evidently's sources again,
    seconds that a user's second run does not pay."""
    import importlib.util

    spec = importlib.util.find_spec("torch")
    origin = Path(spec.origin).parent if spec and spec.origin else None
    if origin is not None and (origin / "__pycache__").is_dir():
        return "packages compiled to bytecode"
    return (
        "packages NOT compiled to bytecode: every process compiles torch's and Evidently's "
        "sources (run `uv sync --compile-bytecode` first)"
    )


def machine_load() -> str:
    """The load averages, for the figures' context: the machine is shared."""
    one, five, fifteen = os.getloadavg()
    cpus = len(os.sched_getaffinity(0))
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f} (1, 5, 15 min) on {cpus} CPUs"
