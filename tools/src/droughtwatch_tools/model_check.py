"""`droughtwatch model check`: a model folder (model.json and its weights) against the model
contract, with every problem reported together, each naming the file and the model.json key.

The weights are loaded and checked as Inference loads them (adapters.models.load_checked:
input, output, the probe batch). Given raw data files, each goes through the real Processing
code (``droughtwatch_preprocess.process_file``) and the real Inference code
(``logic.inference.predict_file``), which gives the class shares, the model's throughput and
the peak memory; for publishing, the same run gives the reference class shares and the
per-image input summaries.
"""

from __future__ import annotations

import json
import resource
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from droughtwatch_contract.settings import InferenceSettings
from droughtwatch_inference import input_summaries, predictions
from droughtwatch_inference.adapters.models import load_checked, load_predictor
from droughtwatch_inference.errors import ModelInputMismatch, ModelOutputError
from droughtwatch_inference.logic.inference import inference_threads, predict_file
from droughtwatch_inference.model.fit import Problem
from droughtwatch_inference.model.manifest import (
    MANIFEST_NAME,
    WEIGHTS_NAME,
    ModelManifest,
    describe_errors,
)
from droughtwatch_inference.model.predictor import Predictor
from droughtwatch_preprocess import (
    PreprocessError,
    ProcessedReader,
    looks_like_tfrecord,
    process_file,
)
from pydantic import ValidationError

from droughtwatch_tools.class_shares import shares_of

# Images per forward pass, as Inference runs them by default.
BATCH_SIZE: int = InferenceSettings.model_fields["batch_size"].default


@dataclass(frozen=True)
class DataRun:
    """The model over raw files, through the real preprocessing."""

    files: tuple[str, ...]  # the files that went through
    images: int
    dropped: int  # blank images the preprocessing dropped
    class_counts: dict[str, int]
    model_seconds: float  # time inside the model
    seconds: float  # preprocessing, reading, the model and writing predictions
    summaries: pa.Table | None = None  # per-image input summaries, when asked for

    @property
    def class_shares(self) -> dict[str, float] | None:
        return shares_of(self.class_counts) if self.images else None

    @property
    def images_per_second(self) -> float:
        return self.images / self.model_seconds if self.model_seconds > 0 else 0.0


@dataclass
class CheckReport:
    folder: Path
    manifest: ModelManifest | None
    problems: list[Problem]
    data: DataRun | None = None
    peak_rss_mb: float = 0.0
    predictor: Predictor | None = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        return not self.problems


def peak_rss_mb() -> float:
    """This process's peak resident memory so far."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1 << 20) if sys.platform == "darwin" else peak / 1024  # bytes vs kB


def read_manifest(
    folder: Path, *, shares_from_data: bool = False
) -> tuple[ModelManifest | None, dict[str, Any] | None, list[Problem]]:
    """(the manifest or None, model.json's raw object or None, its problems).

    ``shares_from_data``: reference_class_shares will be computed from data, so a model.json
    without them is fine; uniform shares stand in until then.
    """
    path = folder / MANIFEST_NAME
    if not folder.is_dir():
        return None, None, [Problem(str(folder), None, "is not a folder; pass the model's folder")]
    if not path.is_file():
        return (
            None,
            None,
            [
                Problem(
                    MANIFEST_NAME,
                    None,
                    f"missing from {folder}: write it (see the model contract in the README)",
                )
            ],
        )
    try:
        raw = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        return None, None, [Problem(MANIFEST_NAME, None, f"is not JSON: {exc}")]
    if not isinstance(raw, dict):
        return None, None, [Problem(MANIFEST_NAME, None, "must hold a JSON object")]
    values = dict(raw)
    classes = values.get("classes")
    if (
        shares_from_data
        and "reference_class_shares" not in values
        and isinstance(classes, list)
        and classes
        and all(isinstance(c, str) for c in classes)
    ):
        values["reference_class_shares"] = dict.fromkeys(classes, 1 / len(classes))
    try:
        return ModelManifest.model_validate(values), raw, []
    except ValidationError as exc:
        problems = []
        for key, message in describe_errors(exc):
            if key == "reference_class_shares" and "reference_class_shares" not in raw:
                message += (
                    "; `droughtwatch model publish DIR --reference RAW_FILES` computes it by "
                    "running the model on reference data (or write it into model.json)"
                )
            problems.append(Problem(MANIFEST_NAME, key, message))
        return None, raw, problems


def _weights_name(manifest: ModelManifest | None, raw: dict[str, Any] | None) -> str | None:
    """The weights file model.json names, even when model.json has other problems."""
    if manifest is not None:
        return manifest.weights_name
    raw = raw or {}
    weights = raw.get("weights")
    if isinstance(weights, str) and weights and ".." not in weights.split("/"):
        return weights
    return WEIGHTS_NAME.get(raw.get("format", "torch.export"))


def _load_only(path: Path, raw: dict[str, Any], threads: int) -> list[Problem]:
    """Whether the weights load at all, for a model.json too broken to check them against."""
    keys = {k: raw[k] for k in ("format", "layout", "input_name", "outputs") if k in raw}
    try:
        manifest = ModelManifest.model_construct(**{**_LOOSE_DEFAULTS, **keys})
        load_predictor(path, manifest, threads)
    except Exception as exc:
        text = str(exc).strip().splitlines()
        return [
            Problem(
                path.name,
                "format",
                f"does not load ({type(exc).__name__}: {text[0][:300] if text else ''}): the "
                "file is truncated or not in the format model.json names; export it again",
            )
        ]
    return []


_LOOSE_DEFAULTS = {
    "format": "torch.export",
    "layout": "NCHW",
    "input_name": None,
    "outputs": "logits",
}


class _TimedPredictor:
    def __init__(self, predictor: Predictor) -> None:
        self.predictor = predictor
        self.seconds = 0.0

    def predict(self, images: np.ndarray) -> np.ndarray:
        started = time.perf_counter()
        out = self.predictor.predict(images)
        self.seconds += time.perf_counter() - started
        return out


def run_on_files(
    files: Sequence[Path],
    predictor: Predictor | None,
    manifest: ModelManifest | None,
    work_dir: Path,
    *,
    summaries: bool = False,
    batch_size: int = BATCH_SIZE,
) -> tuple[DataRun, list[Problem]]:
    """Each raw file through process_file, then (with a model) through predict_file. A file
    that fails is a problem naming it; the others go on. Without a model, only the
    preprocessing is checked."""
    problems: list[Problem] = []
    classes = manifest.classes if manifest is not None else ()
    counts = dict.fromkeys(classes, 0)
    timed = _TimedPredictor(predictor) if predictor is not None else None
    done: list[str] = []
    tables: list[pa.Table] = []
    images = dropped = 0
    started = time.perf_counter()
    for i, path in enumerate(files):
        name = path.name
        if not path.is_file():
            problems.append(Problem(str(path), None, "does not exist or is not a file"))
            continue
        if not looks_like_tfrecord(path):
            problems.append(
                Problem(name, None, "is not a TFRecord file (no TFRecord framing): pass raw files")
            )
            continue
        processed = work_dir / f"{i:05d}.npz"
        try:
            result = process_file(path, processed, source_name=name)
        except PreprocessError as exc:
            problems.append(Problem(name, None, f"is not a valid raw file: {exc}"))
            continue
        if timed is None or manifest is None:
            continue
        out = work_dir / f"{i:05d}.parquet"
        try:
            predict_file(processed, timed, manifest, batch_size, out, name=name)
        except ModelInputMismatch as exc:
            problems.append(Problem(name, "channels", str(exc).removeprefix(f"{name}: ")))
            continue
        except ModelOutputError as exc:
            problems.append(Problem(name, "outputs", str(exc).removeprefix(f"{name}: ")))
            continue
        frame, _ = predictions.read(out)
        for label, count in frame["label"].value_counts().items():
            counts[str(label)] += int(count)
        if summaries and result.kept:
            tables.append(_summaries(processed, frame, manifest, name))
        images += result.kept
        dropped += result.dropped_blank
        done.append(name)
        processed.unlink()
    run = DataRun(
        files=tuple(done),
        images=images,
        dropped=dropped,
        class_counts=counts,
        model_seconds=timed.seconds if timed is not None else 0.0,
        seconds=time.perf_counter() - started,
        summaries=pa.concat_tables(tables) if tables else None,
    )
    return run, problems


def _summaries(processed: Path, frame: Any, manifest: ModelManifest, name: str) -> pa.Table:
    channels = input_summaries.summary_channels(manifest.channels)
    parts = []
    start = 0
    with ProcessedReader(processed) as reader:
        for chunk in reader.iter_chunks(list(channels)):
            labels = frame["label"].iloc[start : start + len(chunk.ids)]
            start += len(chunk.ids)
            parts.append(
                input_summaries.summary_table(chunk.ids, name, labels, chunk.images, channels)
            )
    return pa.concat_tables(parts)


def check_model(
    folder: Path,
    data: Sequence[Path] = (),
    *,
    shares_from_data: bool = False,
    summaries: bool = False,
    threads: int = 0,
    batch_size: int = BATCH_SIZE,
    work_dir: Path | None = None,
) -> CheckReport:
    """Check the model in ``folder``; with ``data`` (raw files), run it on them.

    ``shares_from_data``: compute reference_class_shares from ``data`` (model.json may lack
    them; the report's manifest carries the computed ones). ``summaries``: also compute the
    per-image input summaries. Never raises for a problem of the model or the data: every
    problem is in the report.
    """
    folder = Path(folder)
    threads = inference_threads(threads)
    manifest, raw, problems = read_manifest(folder, shares_from_data=shares_from_data)
    predictor = None
    weights = _weights_name(manifest, raw)
    if raw is not None and weights is not None:
        path = folder / weights
        if not path.is_file():
            problems.append(
                Problem(
                    weights,
                    "weights",
                    f"missing from {folder}: model.json names it (format "
                    f"{(manifest.format if manifest else raw.get('format', 'torch.export'))!r}"
                    f"{', weights ' + repr(raw['weights']) if 'weights' in raw else ''}); put "
                    "the weights file beside model.json or fix weights",
                )
            )
        elif manifest is not None:
            predictor, found = load_checked(path, manifest, threads, weights)
            problems += found
            if found:
                predictor = None
        else:
            problems += _load_only(path, raw, threads)
    features = manifest.reference_features if manifest is not None else None
    if features and not summaries and not (folder / features).is_file():
        problems.append(
            Problem(
                features,
                "reference_features",
                f"missing from {folder}: model.json names it; put it beside model.json, "
                "or publish with --reference RAW_FILES to compute it",
            )
        )

    run = None
    if data:
        with tempfile.TemporaryDirectory(dir=work_dir, prefix="model-check-") as scratch:
            run, found = run_on_files(
                data,
                predictor,
                manifest if predictor is not None else None,
                Path(scratch),
                summaries=summaries,
                batch_size=batch_size,
            )
        problems += found
    if shares_from_data and manifest is not None and predictor is not None:
        manifest, found = _with_reference_shares(manifest, run)
        problems += found
    return CheckReport(
        folder=folder,
        manifest=manifest,
        problems=problems,
        data=run,
        peak_rss_mb=peak_rss_mb(),
        predictor=predictor,
    )


def _with_reference_shares(
    manifest: ModelManifest, run: DataRun | None
) -> tuple[ModelManifest, list[Problem]]:
    shares = run.class_shares if run is not None else None
    if shares is None:
        return manifest, [
            Problem(
                "reference files",
                "reference_class_shares",
                "no image went through the model (no file, or only blank or failed ones): "
                "pass raw files with images the model is meant for",
            )
        ]
    values = {**manifest.model_dump(exclude_unset=True), "reference_class_shares": shares}
    return ModelManifest.model_validate(values), []
