"""A backlog: `droughtwatch local run DIR` over a folder of many distinct raw files, at
``--concurrency 1`` and ``--concurrency 2`` side by side, as a user runs it.

The files come from the real shard (81 records): shard-sized files are its records in a
different order each, small files a different choice of a few records each, so that every
file's bytes differ (the ledger takes identical bytes as duplicates and would not process
them). Each run starts in a fresh DROUGHTWATCH_HOME whose embedded PostgreSQL is started and
migrated (`droughtwatch db migrate`) and whose model bucket holds the baseline (trained once
here, published as a first `local run` does), so the timed command does only the backlog.
Timed is the whole command, from spawning it to its exit; its process tree (the command and
whatever worker processes it starts) is polled through /proc for its peak RSS (the embedded
PostgreSQL server is not part of it: it outlives the command, as a database server would).
Beside it, the execution's own time, start to stop (its history's): the command also starts
the local AWS and copies the backlog into the local data bucket, which no concurrency changes
(on AWS the files are uploaded before, and apart from, the execution).
From the pipeline log: each stage's seconds per file (``file.done`` events) and the days'
pooling (``day.done``).

Targets: concurrency 2 in at most 0.65x the wall time of concurrency 1; at least 10 files/s
for small files (5 images each) at concurrency 2 on 2 cores; peak RSS flat in the number of
files (the larger backlog's at most 1.15x the smaller's).

With ``--repeat N`` each backlog runs N times at each concurrency, the levels taking turns
(1, 2, 1, 2, ...), and the targets are judged on the median wall times: on a shared machine one
run's wall time can be 10% off the next one's.

Before `--concurrency` exists, the command runs serially without it (said so in the output):
the per-stage costs per file are then the figures to read.

    uv run python bench/backlog_bench.py [--small-files 200] [--large-backlog 1000]
        [--shard-files 40] [--concurrency 1 2] [--repeat 1]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from pathlib import Path

import harness

SHARD = harness.SHARD
# The option of `droughtwatch local run` that sets how many children run at once.
CONCURRENCY_OPTION = "--concurrency"
SMALL_IMAGES = 5  # records per small file
TARGET_WALL_RATIO = 0.65  # concurrency 2's wall time / concurrency 1's, at most
TARGET_SMALL_FILES_PER_S = 10.0  # small files at concurrency 2, at least
TARGET_MEMORY_GROWTH = 1.15  # peak RSS of the large backlog / of the small one, at most
POLL_SECONDS = 0.05
DATE = dt.date(2026, 11, 27)
STAGES = ("processing", "inference", "observe")


# -- the backlog ---------------------------------------------------------------------------------


def write_backlog(folder: Path, files: int, records: int | None, seed: int) -> int:
    """``files`` distinct raw files in ``folder``: the shard's records reordered (``records``
    None: all of them) or ``records`` of them chosen, different for every file. Returns the
    records written."""
    import numpy as np
    from droughtwatch_preprocess.tfrecord import iter_records, write_tfrecord

    payloads = list(iter_records(SHARD))
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    seen: set[tuple[int, ...]] = set()
    written = 0
    while len(seen) < files:
        if records is None:
            order = tuple(int(k) for k in rng.permutation(len(payloads)))
        else:
            order = tuple(int(k) for k in rng.choice(len(payloads), records, replace=False))
        if order in seen:
            continue
        seen.add(order)
        path = folder / f"backlog-{len(seen):05d}.tfrecord"
        written += write_tfrecord(path, (payloads[k] for k in order))
    return written


# -- a fresh home --------------------------------------------------------------------------------


def cli() -> str:
    return str(Path(sys.executable).with_name("droughtwatch"))


def concurrency_supported() -> bool:
    """Whether this checkout's `local run` takes ``CONCURRENCY_OPTION``."""
    done = subprocess.run(
        [cli(), "local", "run", "--help"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1"},
    )
    return CONCURRENCY_OPTION in done.stdout


@contextlib.contextmanager
def fresh_home(workdir: Path, trained) -> Iterator[dict[str, str]]:
    """A new DROUGHTWATCH_HOME: its embedded PostgreSQL started and migrated, the baseline
    published in its model bucket; yields the environment the command runs in, and stops
    that server afterwards."""
    from droughtwatch_inference.adapters.folder_store import FolderStore
    from droughtwatch_tools import training
    from droughtwatch_tools.local.postgres import EmbeddedPostgres
    from droughtwatch_tools.local.runner import LocalConfig
    from droughtwatch_tools.local.state import HOME_VARIABLE, store_root

    home = Path(tempfile.mkdtemp(prefix="home-", dir=workdir))
    env = {k: v for k, v in os.environ.items() if not k.startswith("DROUGHTWATCH_")}
    env[HOME_VARIABLE] = str(home)
    defaults = {f.name: f.default for f in dataclasses.fields(LocalConfig)}
    try:
        subprocess.run([cli(), "db", "migrate"], env=env, check=True, capture_output=True)
        store = FolderStore(store_root(home))
        store.create_bucket(defaults["model_bucket"])
        training.publish_trained(store, defaults["model_bucket"], defaults["model_prefix"], trained)
        yield env
    finally:
        EmbeddedPostgres(home / "postgres").stop()
        shutil.rmtree(home, ignore_errors=True)


# -- one run -------------------------------------------------------------------------------------


def tree_rss_kb(root: int) -> int:
    """The summed RSS of ``root`` and all its descendants now, from /proc."""
    children: dict[int, list[int]] = defaultdict(list)
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may hold spaces and parentheses
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        children[ppid].append(int(entry.name))
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, ()))
        with contextlib.suppress(OSError, StopIteration):
            status = Path(f"/proc/{pid}/status").read_text().splitlines()
            total += int(next(x for x in status if x.startswith("VmRSS")).split()[1])
    return total


@dataclasses.dataclass
class Run:
    case: str
    files: int
    images: int
    concurrency: int | None  # None: the option does not exist yet, the run is serial
    wall_s: float
    peak_rss_mb: float
    exit_code: int
    per_file_s: dict[str, float]  # stage -> median seconds per file (file.done)
    done: dict[str, int]  # stage -> files done
    days_s: float
    load: str
    execution_s: float  # the execution's own time, start to stop (0: no history)

    @property
    def files_per_s(self) -> float:
        return self.files / self.wall_s

    @property
    def images_per_s(self) -> float:
        return self.images / self.wall_s


def run_backlog(
    case: str,
    folder: Path,
    images: int,
    concurrency: int | None,
    workdir: Path,
    trained,
) -> Run:
    files = len(list(folder.iterdir()))
    with fresh_home(workdir, trained) as env:
        command = [cli(), "local", "run", str(folder), "--date", DATE.isoformat()]
        if concurrency is not None:
            command += [CONCURRENCY_OPTION, str(concurrency)]
        load = harness.machine_load()
        home = Path(env["DROUGHTWATCH_HOME"])
        # into a file, not a pipe: a pipe nobody reads while the command runs fills up with
        # the table of a thousand files and blocks it
        with (home / "output.txt").open("w+") as out:
            started = time.perf_counter()
            process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
            peak = 0
            while process.poll() is None:
                peak = max(peak, tree_rss_kb(process.pid))
                time.sleep(POLL_SECONDS)
            wall = time.perf_counter() - started
            out.seek(0)
            output = out.read()
        events = [e for log in (home / "logs").glob("*.jsonl") for e in _events(log)]
        execution_s = sum(
            float(json.loads(history.read_text()).get("seconds") or 0.0)
            for history in (home / "executions").glob("*.json")
        )
    if process.returncode not in (0, 3):
        raise RuntimeError(f"{' '.join(command)} exited {process.returncode}:\n{output[-3000:]}")
    seconds: dict[str, list[float]] = defaultdict(list)
    for event in events:
        if event.get("event") == "file.done":
            seconds[event["stage"]].append(event["seconds"])
    return Run(
        case=case,
        files=files,
        images=images,
        concurrency=concurrency,
        wall_s=wall,
        peak_rss_mb=peak / 1024,
        exit_code=process.returncode,
        per_file_s={s: statistics.median(v) for s, v in seconds.items() if v},
        done={s: len(v) for s, v in seconds.items()},
        days_s=sum(e["seconds"] for e in events if e.get("event") == "day.done"),
        load=load,
        execution_s=execution_s,
    )


def _events(log: Path) -> list[dict]:
    return harness.json_lines(log.read_text())


# -- the report ----------------------------------------------------------------------------------


def print_runs(runs: Sequence[Run], supported: bool, console) -> None:
    from rich.table import Table

    table = Table(title="droughtwatch local run over a backlog (each run a fresh home)")
    for column in (
        "backlog",
        "concurrency",
        "wall s",
        "execution s",
        "files/s",
        "images/s",
        "peak RSS MB",
        *(f"{s} s/file" for s in STAGES),
        "days s",
        "load before (1, 5, 15 min)",
    ):
        table.add_column(column, justify="left" if column == "backlog" else "right")
    for run in runs:
        table.add_row(
            f"{run.files:,} x {run.case}",
            str(run.concurrency) if run.concurrency else "serial",
            f"{run.wall_s:.1f}",
            f"{run.execution_s:.1f}",
            f"{run.files_per_s:.2f}",
            f"{run.images_per_s:,.0f}",
            f"{run.peak_rss_mb:,.0f}",
            *(f"{run.per_file_s[s]:.3f}" if s in run.per_file_s else "-" for s in STAGES),
            f"{run.days_s:.2f}",
            run.load.split(" (")[0].removeprefix("load average "),
        )
    console.print(table)
    for run in runs:
        short = {s: n for s, n in run.done.items() if n != run.files}
        if short or run.exit_code:
            console.print(
                f"[red]{run.files} x {run.case}: exit code {run.exit_code}, files done per "
                f"stage {dict(run.done)}[/]"
            )
    if not supported:
        console.print(
            f"[yellow]`droughtwatch local run` has no {CONCURRENCY_OPTION} option in this "
            "checkout: every run above is the serial pipeline, so the concurrency targets "
            "cannot be judged; the per-file stage costs are the figures to read.[/]"
        )
    judge(runs, supported, console)


def medians(runs: Sequence[Run]) -> dict[tuple[str, int, int | None], Run]:
    """Per backlog and concurrency, the run of median wall time (of an even number of
    repeats, the slower middle one), with the highest peak RSS of its repeats."""
    groups: dict[tuple[str, int, int | None], list[Run]] = defaultdict(list)
    for run in runs:
        groups[(run.case, run.files, run.concurrency)].append(run)
    chosen = {}
    for key, group in groups.items():
        ordered = sorted(group, key=lambda r: r.wall_s)
        median = ordered[len(ordered) // 2]
        peak = max(r.peak_rss_mb for r in group)
        chosen[key] = dataclasses.replace(median, peak_rss_mb=peak)
    return chosen


def judge(runs: Sequence[Run], supported: bool, console) -> None:
    by = medians(runs)
    mark = harness.mark
    repeats = max(Counter((r.case, r.files, r.concurrency) for r in runs).values())
    what = f"median of {repeats} " if repeats > 1 else ""
    lines = []
    for (case, files, concurrency), run in by.items():
        one = by.get((case, files, 1))
        if concurrency == 2 and one is not None:
            ratio = run.wall_s / one.wall_s
            lines.append(
                f"{files:,} x {case}: concurrency 2 at {ratio:.2f}x the {what}wall time of "
                f"concurrency 1 ({run.wall_s:.1f} s / {one.wall_s:.1f} s; target <= "
                f"{TARGET_WALL_RATIO}x): {mark(ratio <= TARGET_WALL_RATIO)}"
            )
            if run.execution_s and one.execution_s:
                inner = run.execution_s / one.execution_s
                lines.append(
                    f"    the execution alone (without starting up and copying the files in): "
                    f"{inner:.2f}x ({run.execution_s:.1f} s / {one.execution_s:.1f} s; those "
                    f"runs' own times)"
                )
    wanted = 2 if supported else None
    small = [r for r in by.values() if r.case == small_case() and r.concurrency == wanted]
    for run in small:
        ok = run.files_per_s >= TARGET_SMALL_FILES_PER_S
        lines.append(
            f"{run.files:,} x {run.case} at {'concurrency 2' if supported else 'serial'}: "
            f"{run.files_per_s:.2f} files/s, {what}(target >= {TARGET_SMALL_FILES_PER_S:g} at "
            f"concurrency 2): {mark(ok) if supported else 'not judged'}"
        )
    if len(small) >= 2:
        low, high = min(small, key=lambda r: r.files), max(small, key=lambda r: r.files)
        growth = high.peak_rss_mb / low.peak_rss_mb
        lines.append(
            f"peak RSS {low.peak_rss_mb:,.0f} MB at {low.files:,} files, {high.peak_rss_mb:,.0f}"
            f" MB at {high.files:,} ({growth:.2f}x; target flat, <= {TARGET_MEMORY_GROWTH}x): "
            f"{mark(growth <= TARGET_MEMORY_GROWTH)}"
        )
    for line in lines:
        console.print(line)


def small_case() -> str:
    return f"{SMALL_IMAGES} images"


def main(argv: list[str] | None = None) -> int:
    # a kill ends the benchmark through its finally blocks: the servers it started stop
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small-files", type=int, default=200, help="small files per run")
    parser.add_argument(
        "--large-backlog",
        type=int,
        default=1_000,
        help="small files of the larger runs (the memory check's; 0: skip them)",
    )
    parser.add_argument("--shard-files", type=int, default=40, help="shard-sized files per run")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 2])
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs of each backlog at each concurrency"
    )
    args = parser.parse_args(argv)
    if not SHARD.exists():
        print(f"the real shard is not at {SHARD}: it is what the backlog is made of")
        return 1

    from droughtwatch_tools import training

    console = harness.console(150)
    supported = concurrency_supported()
    levels: list[int | None] = list(args.concurrency) if supported else [None]
    workdir = Path(tempfile.mkdtemp(prefix="dw-backlog-bench-"))
    load_before = harness.machine_load()
    runs: list[Run] = []
    try:
        with console.status("training the baseline and writing the backlogs"):
            trained = training.train_baseline(seed=training.BASELINE_SEED)
            small = workdir / "small"
            small_images = write_backlog(small, args.small_files, SMALL_IMAGES, seed=1)
            shard = workdir / "shard"
            shard_images = write_backlog(shard, args.shard_files, None, seed=2)  # 0: none
            large = workdir / "large"
            large_images = (
                write_backlog(large, args.large_backlog, SMALL_IMAGES, seed=3)
                if args.large_backlog
                else 0
            )
        backlogs = [(small_case(), small, small_images)]
        if args.shard_files:
            backlogs.append(("shard-sized", shard, shard_images))
        if args.large_backlog:
            # at each level too: the fixed cost of a run (starting up, the cold starts, the
            # day's Evidently report) weighs less, and the ratio says what the fan-out buys
            backlogs.append((small_case(), large, large_images))
        plan = [
            (case, folder, images, c)
            for case, folder, images in backlogs
            for _ in range(max(1, args.repeat))
            for c in levels
        ]
        for case, folder, images, concurrency in plan:
            level = concurrency or "serial"
            what = f"{len(list(folder.iterdir())):,} x {case}, concurrency {level}"
            with console.status(what):
                runs.append(run_backlog(case, folder, images, concurrency, workdir, trained))
            console.print(
                f"{what}: {runs[-1].wall_s:.1f} s, {runs[-1].files_per_s:.2f} files/s "
                f"({runs[-1].load})",
                highlight=False,
            )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print_runs(runs, supported, console)
    console.print(
        "Images are the records in the raw files (the real shard has 2 blank records, dropped "
        "by Processing). Stage s/file: the median of the stage's file.done seconds (the file's "
        "own work: its claim and ledger update excluded); days s: the days' pooling (day.done)."
    )
    console.print(f"Before: {load_before}. After: {harness.machine_load()}. {harness.bytecode()}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
