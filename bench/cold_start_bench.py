"""Cold start of the Inference handler with an ONNX model: a fresh process, from its start to
its first prediction, on this checkout and on a base commit (default: where this branch left
main), interleaved so that a busy moment on the machine hits both alike.

Each run is a new interpreter doing what the Inference handler does up to its first
prediction: import the handler module (Lambda's init phase), load the model as the handler
does (``adapters.models.load_model``: model.json, the weights, the runtime, the probe) from a
model bucket kept in a folder, and predict one processed file of the real shard
(``logic.inference.predict_file``). The database and S3 round trips are left out: they are
the same before and after. The base commit's service code is exported with ``git archive``
and put first on PYTHONPATH, so both run in this environment with the same packages.

    uv run python bench/cold_start_bench.py [--base REF] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import harness

HERE = Path(__file__).resolve().parent
SHARD = harness.SHARD
SOURCES = ("services/inference/src", "packages/preprocess/src")
BUCKET, PREFIX = "models", "bench/"

# What the child runs. It keeps to names both the base and this checkout have.
CHILD = """
import json, sys, time
started = float(sys.argv[1])
from pathlib import Path
work = Path(sys.argv[2])
import droughtwatch_inference.handlers.inference  # Lambda's init: the handler module
imported = time.time()
from droughtwatch_inference.adapters import models
from droughtwatch_inference.logic.inference import predict_file


class FolderBucket:
    def get_bytes(self, bucket, key):
        body = (work / bucket / key).read_bytes()
        return body, str(len(body))

    def download(self, bucket, key, dest, etag=None):
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes((work / bucket / key).read_bytes())
        return dest


model = models.load_model(FolderBucket(), "models", "bench/", work / "cache", threads=2)
loaded = time.time()
result = predict_file(work / sys.argv[3], model.predictor, model.manifest, 64, work / "p.parquet")
predicted = time.time()
sys.path.insert(0, sys.argv[4])  # bench/, for the harness: only now, outside the timing
from harness import peak_rss_mb
print(json.dumps({
    "source": str(Path(droughtwatch_inference.__file__).parent),
    "images": result.rows,
    "import_s": imported - started,
    "load_s": loaded - imported,
    "predict_s": predicted - loaded,
    "total_s": predicted - started,
    "torch": "torch" in sys.modules,
    "peak_rss_mb": peak_rss_mb(),
}))
"""


def prepare(work: Path) -> None:
    """The ONNX model in the folder bucket (a contract version 1 model.json, which both
    checkouts read) and the real shard's processed file (generated images without it)."""
    import numpy as np
    from droughtwatch_tools import synthetic, training
    from droughtwatch_tools.baseline_cnn import export_onnx

    model, manifest, _, _ = training.train_baseline(
        seed=1, train_images=300, holdout_images=200, epochs=1
    )
    prefix = work / BUCKET / PREFIX
    export_onnx(model, prefix / "model.onnx")
    values = manifest.model_dump(
        mode="json", include={"name", "version", "channels", "classes", "outputs"}
    )
    values |= {"format": "onnx", "reference_class_shares": manifest.reference_class_shares}
    (prefix / "model.json").write_text(json.dumps(values))
    raw = SHARD
    if not SHARD.exists():
        raw = work / "generated.tfrecord"
        synthetic.write_raw_file(raw, np.random.default_rng(0), 81)
    shutil.copyfile(raw, work / "shard.tfrecord")


def run_child(work: Path, pythonpath: str | None, processed: str) -> dict:
    shutil.rmtree(work / "cache", ignore_errors=True)
    report, _, _ = harness.run_child(
        ["-c", CHILD, repr(time.time()), str(work), processed, str(HERE)],
        what="cold start child",
        env=harness.checkout_env(pythonpath),
        cwd=work,
    )
    return report


# The last main commit whose Inference imported torch for every model (issue 12's "before").
TORCH_FOR_EVERY_MODEL = "7ec9222"


def default_base() -> str:
    """Where this branch left main; on main itself, the commit before ONNX went torch-free."""
    return harness.merge_base() or TORCH_FOR_EVERY_MODEL


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--base",
        default=None,
        help="commit to compare with (default: where this branch left main; on main, "
        f"{TORCH_FOR_EVERY_MODEL})",
    )
    parser.add_argument("--repeats", type=int, default=5, help="measured runs per checkout")
    args = parser.parse_args(argv)
    base = args.base or default_base()

    from rich.table import Table

    console = harness.console(120)
    work = Path(tempfile.mkdtemp(prefix="dw-cold-start-"))
    try:
        with console.status("training and exporting the ONNX model, preprocessing the shard"):
            prepare(work)
        base_dir = harness.export_base(base, work / "base", SOURCES)
        cases = {
            f"before ({base[:10]})": os.pathsep.join(str(base_dir / s) for s in SOURCES),
            "after (this checkout)": None,
        }
        runs: dict[str, list[dict]] = {name: [] for name in cases}
        processed = {
            name: harness.process_with(work / "shard.tfrecord", work / f"shard-{i}.npz", path).name
            for i, (name, path) in enumerate(cases.items())
        }
        with console.status("measuring fresh processes"):
            for name, path in cases.items():  # one unmeasured run each: the page cache
                run_child(work, path, processed[name])
            for _ in range(args.repeats):
                for name, path in cases.items():
                    runs[name].append(run_child(work, path, processed[name]))
    finally:
        shutil.rmtree(work, ignore_errors=True)

    table = Table(
        title=f"Inference cold start with an ONNX model: median of {args.repeats} fresh processes"
    )
    for column in (
        "code",
        "import handler s",
        "load model s",
        "first file s",
        "start to first prediction s",
        "torch imported",
        "peak RSS",
    ):
        table.add_column(column, justify="left" if column == "code" else "right")
    medians = {}
    for name, rows in runs.items():
        median = {
            k: statistics.median(r[k] for r in rows)
            for k in ("import_s", "load_s", "predict_s", "total_s", "peak_rss_mb")
        }
        medians[name] = median
        spread = f"{min(r['total_s'] for r in rows):.2f}-{max(r['total_s'] for r in rows):.2f}"
        table.add_row(
            name,
            f"{median['import_s']:.2f}",
            f"{median['load_s']:.2f}",
            f"{median['predict_s']:.2f}",
            f"{median['total_s']:.2f} ({spread})",
            "yes" if any(r["torch"] for r in rows) else "no",
            f"{median['peak_rss_mb']:,.0f} MB",
        )
    console.print(table)
    before, after = (medians[n]["total_s"] for n in cases)
    images = runs[next(iter(cases))][0]["images"]
    console.print(
        f"{images} images predicted per run. Cold start {before:.2f} s -> {after:.2f} s "
        f"({before - after:.2f} s, {after / before:.0%} of before). At the end: "
        f"{harness.machine_load()}; the machine is shared."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
