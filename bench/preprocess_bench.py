"""Preprocess throughput, output size and peak memory on ONE core: raw TFRecords -> processed .npz.

Inputs are built from the real shard (../shared/data/droughtwatch/part-r-00012, 81 records)
in a temporary directory on local disk; concatenated TFRecord files are valid TFRecord files:

  (a) many shard-sized files totalling >= --images records,
  (b) one file of >= --images records (default 8,100: the shard repeated 100 times).

Each run of a case is a fresh subprocess pinned to one CPU (sched_setaffinity, and
OMP/OPENBLAS/MKL threads = 1) that processes every input of the case twice (read + check +
decode + write to local disk; outputs deleted after each pass, outside the timing) and
reports wall time, CPU time, the bytes written and peak RSS (VmHWM). Images/s counts raw
records (every image read, blank or not).

The targets (issue 11) are judged on the first pass, a whole fresh process: imports done,
nothing warm, reading the raw file and writing the processed one included:

  - images/s through process_file   >= 7,000
  - processed bytes / raw bytes     <= 1.1
  - peak RSS                        < 300 MB

The second, steady pass is shown too. Why both: on these VMs, page-cache pages that were
freed a few seconds earlier have been handed back to the host, and writing into them again
costs 5-10x more kernel time (measured: plain 1 GB writes run at ~5 GB/s back to back,
~0.6-1.3 GB/s after a 5-10 s pause). That is the machine, not the code; the sys column
shows it. The machine is shared, so compare min-max ranges, not single runs.

    uv run python bench/preprocess_bench.py [--images 8100] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import harness

SHARD = harness.SHARD
SHARD_RECORDS = 81
TARGET_IMAGES_PER_S = 7_000  # one core, fresh process, read + process + write
TARGET_SIZE_RATIO = 1.1  # processed bytes / raw bytes, at most
TARGET_PEAK_RSS_MB = 300  # below
CASES = {
    "many": "(a) shard-sized files",
    "single": "(b) one large file",
}
ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def build_inputs(workdir: Path, images: int) -> dict[str, list[Path]]:
    """Write the raw inputs of both cases under ``workdir``; return case -> input files."""
    shard = SHARD.read_bytes()
    copies = -(-images // SHARD_RECORDS)
    many = workdir / "raw-many"
    many.mkdir()
    files = []
    for i in range(copies):
        path = many / f"part-r-{i:05d}"
        path.write_bytes(shard)
        files.append(path)
    single = workdir / "raw-single" / "part-r-large"
    single.parent.mkdir()
    with single.open("wb") as f:
        for _ in range(copies):
            f.write(shard)
    return {"many": files, "single": [single]}


def _process_all(inputs: list[str], out: Path) -> dict:
    from droughtwatch_preprocess import process_file

    start_usage = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    records = kept = 0
    for path in inputs:
        result = process_file(path, out / f"{Path(path).name}.npz")
        records += result.records
        kept += result.kept
    seconds = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    written = sum(p.stat().st_size for p in out.iterdir())
    for p in out.iterdir():  # outside the timing
        p.unlink()
    return {
        "records": records,
        "kept": kept,
        "seconds": seconds,
        "user_s": usage.ru_utime - start_usage.ru_utime,
        "sys_s": usage.ru_stime - start_usage.ru_stime,
        "written_bytes": written,
        "raw_bytes": sum(os.path.getsize(path) for path in inputs),
        "peak_rss_mb": harness.peak_rss_mb(),  # up to the end of this pass
    }


def _child(case: str, inputs: list[str], outdir: str) -> None:
    """Run in a fresh process on one CPU: the first pass over the inputs (the judged one),
    then a steady pass right after it; print both as JSON."""
    cpu = max(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    first = _process_all(inputs, Path(outdir))
    steady = _process_all(inputs, Path(outdir))
    print(json.dumps({"case": case, "cpu": cpu, "files": len(inputs), "first": first,
                      "steady": steady}))  # fmt: skip


def _run_child(case: str, inputs: list[Path], outdir: Path) -> dict:
    outdir.mkdir(exist_ok=True)
    report, _, _ = harness.run_child(
        [__file__, "--child", case, str(outdir), *map(str, inputs)],
        what=f"benchmark child for {case!r}",
        env={**os.environ, **ONE_THREAD},
    )
    return report


def _summarise(case: str, runs: list[dict]) -> dict:
    """The figures of one case over its runs: medians, ranges, and each target met or not."""
    first = [r["first"] for r in runs]
    steady = [r["steady"] for r in runs]
    rates = [p["records"] / p["seconds"] for p in first]
    steady_rates = [p["records"] / p["seconds"] for p in steady]
    median = statistics.median(rates)
    ratio = first[0]["written_bytes"] / first[0]["raw_bytes"]
    peak_first = max(p["peak_rss_mb"] for p in first)
    return {
        "case": case,
        "label": CASES[case],
        "files": runs[0]["files"],
        "images": first[0]["records"],
        "kept": first[0]["kept"],
        "raw_mb": first[0]["raw_bytes"] / 1e6,
        "written_mb": first[0]["written_bytes"] / 1e6,
        "images_per_s": median,
        "images_per_s_min": min(rates),
        "images_per_s_max": max(rates),
        "steady_images_per_s": statistics.median(steady_rates),
        "user_us_per_image": statistics.median(p["user_s"] / p["records"] * 1e6 for p in first),
        "sys_us_per_image": statistics.median(p["sys_s"] / p["records"] * 1e6 for p in first),
        "size_ratio": ratio,
        "peak_rss_mb": peak_first,
        "peak_rss_mb_both_passes": max(p["peak_rss_mb"] for p in steady),
        "cpu": runs[0]["cpu"],
        "repeats": len(runs),
        "images_per_s_met": median >= TARGET_IMAGES_PER_S,
        "size_ratio_met": ratio <= TARGET_SIZE_RATIO,
        "peak_rss_met": peak_first < TARGET_PEAK_RSS_MB,
    }


def run_cases(
    images: int = 8_100,
    repeats: int = 3,
    workdir: Path | None = None,
    cases: tuple[str, ...] = tuple(CASES),
) -> list[dict]:
    """Measure ``cases``; one dict per case with the median figures and the targets."""
    if not SHARD.is_file():
        raise FileNotFoundError(f"the real shard is needed at {SHARD.resolve()}")
    own = workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="dw-preprocess-bench-")) if own else workdir
    try:
        inputs = build_inputs(workdir, images)
        os.sync()  # the inputs' writeback would otherwise compete with the first case
        rows = []
        for case in cases:
            files = inputs[case]
            runs = [_run_child(case, files, workdir / "out") for _ in range(repeats)]
            rows.append(_summarise(case, runs))
        return rows
    finally:
        if own:
            shutil.rmtree(workdir, ignore_errors=True)


def verdicts(row: dict) -> list[str]:
    """The three figures of a case, each beside its target, as plain text lines."""

    def met(ok: bool) -> str:
        return "met" if ok else "NOT met"

    return [
        f"images/s through process_file: {row['images_per_s']:,.0f} "
        f"(min-max {row['images_per_s_min']:,.0f}-{row['images_per_s_max']:,.0f}); "
        f"target >= {TARGET_IMAGES_PER_S:,}: {met(row['images_per_s_met'])}",
        f"processed bytes / raw bytes: {row['size_ratio']:.3f} "
        f"({row['written_mb']:,.1f} MB / {row['raw_mb']:,.1f} MB); "
        f"target <= {TARGET_SIZE_RATIO}: {met(row['size_ratio_met'])}",
        f"peak RSS: {row['peak_rss_mb']:,.0f} MB; "
        f"target < {TARGET_PEAK_RSS_MB} MB: {met(row['peak_rss_met'])}",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=8_100, help="records per case")
    parser.add_argument("--repeats", type=int, default=3, help="fresh processes per case")
    parser.add_argument("--case", choices=[*CASES, "both"], default="both", help="which inputs")
    args = parser.parse_args(argv)
    cases = tuple(CASES) if args.case == "both" else (args.case,)

    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not console.is_terminal:  # logs: do not squeeze the table into 80 columns
        console = Console(width=200)
    if not SHARD.is_file():
        console.print(f"[red]The real shard is needed at {SHARD.resolve()}[/red]")
        return 1
    with console.status("building inputs and running each case in fresh processes..."):
        rows = run_cases(args.images, args.repeats, cases=cases)

    table = Table(
        title=f"droughtwatch preprocess: read + process + write, one core (CPU {rows[0]['cpu']}),"
        f" median of {args.repeats} fresh processes",
        caption="first pass = a whole fresh process (judged); steady = a second pass in it",
    )
    for column in [
        "case",
        "files",
        "images (kept)",
        "img/s, first pass\nmedian (min-max)",
        f">= {TARGET_IMAGES_PER_S:,}\nimg/s",
        "steady\nimg/s",
        "CPU µs/img\nuser + sys",
        "processed /\nraw bytes",
        f"<= {TARGET_SIZE_RATIO}",
        "peak RSS",
        f"< {TARGET_PEAK_RSS_MB}\nMB",
    ]:
        table.add_column(column, justify="left" if column == "case" else "right", no_wrap=True)

    mark = harness.mark
    for row in rows:
        table.add_row(
            row["label"],
            f"{row['files']:,}",
            f"{row['images']:,} ({row['kept']:,})",
            f"{row['images_per_s']:,.0f} ({row['images_per_s_min']:,.0f}-"
            f"{row['images_per_s_max']:,.0f})",
            mark(row["images_per_s_met"]),
            f"{row['steady_images_per_s']:,.0f}",
            f"{row['user_us_per_image']:.0f} + {row['sys_us_per_image']:.0f}",
            f"{row['size_ratio']:.3f}",
            mark(row["size_ratio_met"]),
            f"{row['peak_rss_mb']:,.0f} MB",
            mark(row["peak_rss_met"]),
        )
    console.print(table)
    for row in rows:
        console.print(f"{row['label']}, {row['images']:,} records, whole fresh process:")
        for line in verdicts(row):
            console.print(f"  {line}", highlight=False)
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _child(sys.argv[2], sys.argv[4:], sys.argv[3])
    else:
        sys.exit(main())
