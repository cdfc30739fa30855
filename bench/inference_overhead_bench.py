"""Inference's own work beside the model: the real shard x100 (8,100 records, one raw file of
7,900 images once Processing drops the blank ones) predicted by the seed model (the baseline a
first `local run` trains) exported to ONNX, on this checkout and on a base commit (default:
where this branch left main), in fresh processes, interleaved.

Each run loads the model as the Inference handler does (``adapters.models.load_checked``, one
intra-op thread per CPU), predicts one unmeasured warm-up file, then runs
``logic.inference.predict_file`` over the processed file: the stage's time is predict_file's
wall time, the model's the time inside ``predict`` (the layout copy and onnxruntime), and the
rest is reading the processed chunks, summarising the images (channel means, pixel counts,
labels) and writing the predictions file. CPU seconds are the process's.

Target: the rest under 30% of the stage's time.

    uv run python bench/inference_overhead_bench.py [--base REF] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

import harness

HERE = Path(__file__).resolve().parent
SHARD = harness.SHARD
SOURCES = ("services/inference/src", "packages/preprocess/src")
COPIES = 100
TARGET_REST_SHARE = 0.30

CHILD = """
import json, sys, time
from pathlib import Path
from droughtwatch_inference.adapters.models import load_checked
from droughtwatch_inference.logic.inference import inference_threads, predict_file
from droughtwatch_inference.model.manifest import ModelManifest

work, processed, repeats = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
manifest = ModelManifest.model_validate_json((work / "model.json").read_bytes())
weights = work / manifest.weights_name
predictor, problems = load_checked(weights, manifest, inference_threads(0), weights.name)
assert predictor is not None and not problems, problems


class Timed:
    seconds = 0.0

    def predict(self, images):
        started = time.perf_counter()
        out = predictor.predict(images)
        Timed.seconds += time.perf_counter() - started
        return out


predict_file(processed, Timed(), manifest, 64, work / f"warm-{processed.stem}.parquet")
runs = []
for _ in range(repeats):
    Timed.seconds = 0.0
    cpu, wall = time.process_time(), time.perf_counter()
    done = predict_file(processed, Timed(), manifest, 64, work / f"p-{processed.stem}.parquet")
    runs.append({
        "images": done.rows,
        "stage_s": time.perf_counter() - wall,
        "model_s": Timed.seconds,
        "cpu_s": time.process_time() - cpu,
    })
print(json.dumps(runs))
"""


def prepare(work: Path) -> None:
    """The seed model as ONNX, and the shard's records 100 times over as one raw file."""
    from droughtwatch_preprocess.tfrecord import iter_records, write_tfrecord
    from droughtwatch_tools import training

    trained = training.train_baseline(seed=training.BASELINE_SEED)
    manifest = trained.manifest.model_copy(
        update={"format": "onnx", "weights": None, "reference_features": None}
    )
    for name, body in training.artifacts(trained.model, manifest, ("onnx",)).items():
        (work / name).write_bytes(body)
    payloads = list(iter_records(SHARD))
    write_tfrecord(work / "x100.tfrecord", (p for _ in range(COPIES) for p in payloads))


def measure(work: Path, pythonpath: str | None, processed: Path, repeats: int) -> list[dict]:
    runs, _, _ = harness.run_child(
        ["-c", CHILD, str(work), str(processed), str(repeats)],
        what="predict_file",
        env=harness.checkout_env(pythonpath),
    )
    return runs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default=None, help="commit to compare with (default: main's)")
    parser.add_argument("--repeats", type=int, default=3, help="fresh processes per checkout")
    args = parser.parse_args(argv)
    if not SHARD.exists():
        print(f"the real shard is not at {SHARD}")
        return 1
    base = args.base or harness.merge_base()

    from rich.table import Table

    console = harness.console(120)
    work = Path(tempfile.mkdtemp(prefix="dw-inference-overhead-"))
    load_before = harness.machine_load()
    try:
        with console.status("training the seed model, exporting it to ONNX, writing the file"):
            prepare(work)
            cases: dict[str, str | None] = {}
            if base:
                folder = harness.export_base(base, work / "base", SOURCES)
                cases[f"before ({base[:10]})"] = os.pathsep.join(str(folder / s) for s in SOURCES)
            cases["after (this checkout)"] = None
            processed = {
                name: harness.process_with(work / "x100.tfrecord", work / f"x100-{k}.npz", path)
                for k, (name, path) in enumerate(cases.items())
            }
        runs: dict[str, list[dict]] = {name: [] for name in cases}
        with console.status("measuring fresh processes"):
            for _ in range(args.repeats):
                for name, path in cases.items():
                    runs[name].extend(measure(work, path, processed[name], 1))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    load_after = harness.machine_load()

    table = Table(
        title=f"Inference over the real shard x{COPIES}, seed model as ONNX: median of "
        f"{args.repeats} fresh processes"
    )
    for column in ("code", "stage s", "model s", "the rest s", "the rest", "CPU s", "images/s"):
        table.add_column(column, justify="left" if column == "code" else "right")
    for name, rows in runs.items():
        stage = statistics.median(r["stage_s"] for r in rows)
        model = statistics.median(r["model_s"] for r in rows)
        rest = statistics.median(r["stage_s"] - r["model_s"] for r in rows)
        share = statistics.median((r["stage_s"] - r["model_s"]) / r["stage_s"] for r in rows)
        target = f" (< {TARGET_REST_SHARE:.0%}: {harness.mark(share < TARGET_REST_SHARE)})"
        table.add_row(
            name,
            f"{stage:.2f}",
            f"{model:.2f}",
            f"{rest:.2f}",
            f"{share:.0%}" + (target if name.startswith("after") else ""),
            f"{statistics.median(r['cpu_s'] for r in rows):.2f}",
            f"{rows[0]['images'] / stage:,.0f}",
        )
    console.print(table)
    console.print(
        "The rest: reading the processed chunks, the indices, the channel means and pixel "
        "counts, the predictions file. Model: inside predict (the layout copy and onnxruntime "
        f"on {len(os.sched_getaffinity(0))} threads)."
    )
    console.print(f"Before: {load_before}. After: {load_after}; the machine is shared.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
