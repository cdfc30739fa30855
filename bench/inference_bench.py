"""Inference throughput and peak memory on this machine: BaselineCNN (4 input channels) as a
torch.export program under torch, and the same model exported to ONNX under onnxruntime.

10,000 generated droughtwatch images go through the real preprocessing (raw TFRecords ->
``process_file``) into processed files of 1,000 images. Each run is a fresh subprocess that
loads the model as the Inference handler does (``adapters.models``: channels_last torch
program, or an onnxruntime session with one intra-op thread per available CPU), warms it up on
one batch, then runs ``logic.inference.predict_file`` over every processed file: read the
manifest's channels chunk by chunk, predict in batches, write the predictions Parquet file.
It reports the model's images/s (time inside ``predict`` only), end-to-end images/s (read +
predict + write) and peak RSS (VmHWM).

Targets: torch >= 1,500 images/s on 2 cores, and torch within 1.5x of onnxruntime.

    uv run python bench/inference_bench.py [--images 10000] [--repeats 3] [--batch-size 256]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import harness

TARGET_TORCH_IMAGES_PER_S = 1_500
TARGET_RATIO_TO_ONNX = 1.5  # onnxruntime images/s / torch images/s at most
FILE_IMAGES = 1_000
RUNTIMES = {"torch.export": "torch (torch.export .pt2)", "onnx": "onnxruntime (.onnx)"}


def build_inputs(workdir: Path, images: int) -> tuple[list[Path], dict[str, int | str]]:
    """Processed files holding ``images`` generated images, and the published model files."""
    import numpy as np
    from droughtwatch_preprocess import process_file
    from droughtwatch_tools import synthetic, training
    from droughtwatch_tools.baseline_cnn import BaselineCNN, parameter_count

    rng = np.random.default_rng(2026)
    processed = []
    for i, start in enumerate(range(0, images, FILE_IMAGES)):
        raw = workdir / f"raw-{i:03d}.tfrecord"
        synthetic.write_raw_file(raw, rng, min(FILE_IMAGES, images - start), blank_share=0.0)
        out = workdir / f"processed-{i:03d}.npz"
        process_file(raw, out)
        raw.unlink()
        processed.append(out)
    # The model's weights do not change its speed: a short training gives a realistic model.
    model, manifest, _, reference = training.train_baseline(
        seed=1, train_images=300, holdout_images=200, epochs=1
    )
    assert isinstance(model, BaselineCNN)
    for name, body in training.artifacts(model, manifest, reference_features=reference).items():
        (workdir / name).write_bytes(body)
    info = {
        "parameters": parameter_count(model),
        "channels": ", ".join(manifest.channels),
        "pt2_kb": (workdir / "model.pt2").stat().st_size // 1024,
        "onnx_kb": (workdir / "model.onnx").stat().st_size // 1024,
    }
    return processed, info


def _child(runtime: str, workdir: str, batch_size: int, inputs: list[str]) -> None:
    """In a fresh process: load the model as the handler does, predict every processed file."""
    started = time.perf_counter()
    from droughtwatch_inference.adapters.models import load_checked
    from droughtwatch_inference.logic.inference import inference_threads, predict_file
    from droughtwatch_inference.model.manifest import ModelManifest

    manifest = ModelManifest.model_validate_json(Path(workdir, "model.json").read_bytes())
    manifest = manifest.model_copy(update={"format": runtime, "weights": None})
    threads = inference_threads(0)
    weights = Path(workdir, manifest.weights_name)
    predictor, problems = load_checked(weights, manifest, threads, weights.name)
    if predictor is None or problems:
        raise SystemExit(f"the benchmark model does not load: {problems}")
    load_seconds = time.perf_counter() - started

    import numpy as np

    size = manifest.image_size
    warm = np.random.default_rng(0).random(
        (batch_size, len(manifest.channels), size, size), dtype=np.float32
    )
    predictor.predict(warm)

    class Timed:
        seconds = 0.0

        def predict(self, images: np.ndarray) -> np.ndarray:
            t = time.perf_counter()
            out = predictor.predict(images)
            Timed.seconds += time.perf_counter() - t
            return out

    out_dir = Path(workdir, f"predictions-{runtime}")
    out_dir.mkdir(exist_ok=True)
    # One unmeasured file first: the first predictions file pays one-time costs (pyarrow
    # imports pandas on first use, memory pages are touched for the first time).
    predict_file(Path(inputs[0]), predictor, manifest, batch_size, out_dir / "warm.parquet")
    Timed.seconds = 0.0
    ready_rss_kb = harness.status_kb("VmRSS")
    rows = 0
    t = time.perf_counter()
    for path in inputs:
        result = predict_file(
            Path(path), Timed(), manifest, batch_size, out_dir / (Path(path).stem + ".parquet")
        )
        rows += result.rows
    seconds = time.perf_counter() - t
    shutil.rmtree(out_dir)
    hwm_kb = harness.status_kb("VmHWM")
    print(
        json.dumps(
            {
                "runtime": runtime,
                "threads": threads,
                "images": rows,
                "seconds": seconds,
                "model_seconds": Timed.seconds,
                "load_seconds": load_seconds,
                "peak_rss_mb": hwm_kb / 1024,
                "ready_rss_mb": ready_rss_kb / 1024,
            }
        )
    )


def _run_child(runtime: str, workdir: Path, batch_size: int, inputs: list[Path]) -> dict:
    report, _, _ = harness.run_child(
        [__file__, "--child", runtime, str(workdir), str(batch_size), *map(str, inputs)],
        what=f"benchmark child for {runtime!r}",
    )
    return report


def run_cases(images: int, repeats: int, batch_size: int, workdir: Path) -> list[dict]:
    inputs, info = build_inputs(workdir, images)
    rows = []
    runs: dict[str, list[dict]] = {runtime: [] for runtime in RUNTIMES}
    # interleave the runtimes so that a busy moment on the machine hits both alike
    for _ in range(repeats):
        for runtime in RUNTIMES:
            runs[runtime].append(_run_child(runtime, workdir, batch_size, inputs))
    for runtime, label in RUNTIMES.items():
        model_rates = [r["images"] / r["model_seconds"] for r in runs[runtime]]
        total_rates = [r["images"] / r["seconds"] for r in runs[runtime]]
        rows.append(
            {
                "runtime": runtime,
                "label": label,
                "images": runs[runtime][0]["images"],
                "threads": runs[runtime][0]["threads"],
                "model_images_per_s": statistics.median(model_rates),
                "model_min": min(model_rates),
                "model_max": max(model_rates),
                "end_to_end_images_per_s": statistics.median(total_rates),
                "load_seconds": statistics.median(r["load_seconds"] for r in runs[runtime]),
                "peak_rss_mb": max(r["peak_rss_mb"] for r in runs[runtime]),
                "ready_rss_mb": statistics.median(r["ready_rss_mb"] for r in runs[runtime]),
                **info,
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10_000, help="images to predict")
    parser.add_argument("--repeats", type=int, default=3, help="measured runs per runtime")
    parser.add_argument("--batch-size", type=int, default=256, help="images per model call")
    args = parser.parse_args(argv)

    from rich.table import Table

    console = harness.console(132)
    workdir = Path(tempfile.mkdtemp(prefix="dw-inference-bench-"))
    load_before = harness.machine_load()
    try:
        with console.status("generating, preprocessing, training, exporting, then measuring..."):
            rows = run_cases(args.images, args.repeats, args.batch_size, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    load_after = harness.machine_load()
    torch_row, onnx_row = rows
    ratio = onnx_row["model_images_per_s"] / torch_row["model_images_per_s"]
    console.print(
        f"BaselineCNN: {torch_row['parameters']:,} parameters, input channels "
        f"{torch_row['channels']}; model.pt2 {torch_row['pt2_kb']:,} kB, model.onnx "
        f"{torch_row['onnx_kb']:,} kB; {torch_row['images']:,} images, batch size "
        f"{args.batch_size}, {torch_row['threads']} threads (CPUs available)."
    )
    table = Table(title=f"droughtwatch inference, median of {args.repeats} fresh processes")
    for column, justify in [
        ("runtime", "left"),
        ("model images/s median (min-max)", "right"),
        ("end-to-end images/s", "right"),
        ("load s", "right"),
        ("RSS loaded", "right"),
        ("peak RSS", "right"),
        (f">= {TARGET_TORCH_IMAGES_PER_S:,} img/s", "center"),
        (f"within {TARGET_RATIO_TO_ONNX}x of onnxruntime", "center"),
    ]:
        table.add_column(column, justify=justify)

    mark = harness.mark
    for row in rows:
        is_torch = row["runtime"] == "torch.export"
        table.add_row(
            row["label"],
            f"{row['model_images_per_s']:,.0f} ({row['model_min']:,.0f}-{row['model_max']:,.0f})",
            f"{row['end_to_end_images_per_s']:,.0f}",
            f"{row['load_seconds']:.2f}",
            f"{row['ready_rss_mb']:,.0f} MB",
            f"{row['peak_rss_mb']:,.0f} MB",
            mark(row["model_images_per_s"] >= TARGET_TORCH_IMAGES_PER_S) if is_torch else "-",
            f"{mark(ratio <= TARGET_RATIO_TO_ONNX)} ({ratio:.2f}x)" if is_torch else "-",
        )
    console.print(table)
    console.print(
        "Model images/s counts time inside predict only; end-to-end adds reading the processed "
        "files and writing the predictions files. Load s includes importing the runtime; RSS "
        "loaded is the process with the model loaded and warmed up, before the measured files "
        "(onnxruntime runs no longer import torch)."
    )
    console.print(
        f"Before: {load_before}. After: {load_after}. Other processes on these cores slow"
        " torch's OpenMP threads far more than onnxruntime's."
    )
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _child(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5:])
    else:
        sys.exit(main())
