"""Inference Lambda: processed -> predictions. Imports the model's runtime when the first file
needs the model: torch for a torch.export model, onnxruntime (and no torch) for an ONNX one;
never Evidently. The Processing and Observe handlers never import this."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from droughtwatch_contract.keys import KeyLayout
from droughtwatch_contract.settings import InferenceSettings

from droughtwatch_inference.adapters import models
from droughtwatch_inference.adapters.ledger import Ledger
from droughtwatch_inference.adapters.storage import open_store
from droughtwatch_inference.handlers.common import run_files, run_handler
from droughtwatch_inference.logic.inference import infer_entry, inference_threads
from droughtwatch_inference.logic.stage import Budget, FileResult
from droughtwatch_inference.records import LedgerEntry, StageReport


def infer(
    settings: InferenceSettings, ledger: Ledger, budget: Budget, report: StageReport
) -> StageReport:
    store = open_store(settings)
    layout = KeyLayout.from_settings(settings)
    work_dir = Path(settings.work_dir)
    threads = inference_threads(settings.torch_threads)
    model: models.LoadedModel | None = None

    def work(entry: LedgerEntry) -> FileResult:
        # The model is loaded when the first file is claimed, so a run with nothing to do
        # reads no model; a missing or invalid model raises a stage error here, and the stage
        # loop gives the claimed file back untouched before the stage fails.
        nonlocal model
        if model is None:
            model = models.load_model(
                store,
                settings.model_bucket,
                settings.model_prefix,
                work_dir / "models",
                threads=threads,
            )
        return infer_entry(entry, store, model, layout, work_dir, settings.batch_size)

    return run_files(settings, ledger, budget, report, work)


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return run_handler("inference", infer, event, context)
