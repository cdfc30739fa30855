"""`make bench`: every benchmark in turn, each in its own process; each prints its own figures
and targets, and this prints the machine's load before each (the machine is shared)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import harness

HERE = Path(__file__).resolve().parent
BENCHMARKS = [
    "preprocess_bench.py",
    "inference_bench.py",
    "inference_overhead_bench.py",
    "cold_start_bench.py",
    "observe_bench.py",
    "labels_bench.py",
    "pipeline_bench.py",
    "backlog_bench.py",
]


def main() -> int:
    failed = []
    for name in BENCHMARKS:
        print(f"\n=== {name} ({harness.machine_load()}) ===", flush=True)
        if subprocess.run([sys.executable, str(HERE / name)], check=False).returncode:
            failed.append(name)
    if failed:
        print(f"benchmarks that did not finish: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
