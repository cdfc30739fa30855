"""Each Lambda's cold start pays only for itself: importing a handler in a fresh interpreter loads
no heavy library another stage needs (torch for Inference, Evidently for Observe)."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from droughtwatch_contract.database import MIGRATE_HANDLER
from droughtwatch_contract.settings import RDS_CA_BUNDLE
from droughtwatch_contract.stages import WORKFLOW

DOCKERFILE = Path(__file__).resolve().parents[1] / "Dockerfile"
HEAVY = ("torch", "evidently", "onnxruntime")
# What Plan, a listing and two queries, needs none of.
ARRAYS = ("numpy", "pandas")


def _fresh_import(
    module: str, stage: str, then: str = "", watch: tuple[str, ...] = HEAVY
) -> dict[str, object]:
    """Import ``module`` (and run ``then``) in a new interpreter; report which heavy packages got
    loaded and whether the stage registry's handler path names that module's callable
    ``handler``."""
    code = f"""
import importlib, json, sys
import {module} as m
{then}
from droughtwatch_contract.stages import WORKFLOW
path, _, name = WORKFLOW[{stage!r}].handler.rpartition(".")
target = getattr(importlib.import_module(path), name)
print(json.dumps({{
    "loaded": sorted(p for p in {watch!r} if p in sys.modules),
    "handler_is_named": target is m.handler and callable(target),
}}))
"""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_plan_handler_loads_no_array_library_at_all() -> None:
    result = _fresh_import("droughtwatch_inference.handlers.plan", "plan", watch=HEAVY + ARRAYS)
    assert result["loaded"] == []
    assert result["handler_is_named"] is True


def test_processing_handler_loads_neither_torch_nor_evidently() -> None:
    result = _fresh_import("droughtwatch_inference.handlers.processing", "processing")
    assert result["loaded"] == []
    assert result["handler_is_named"] is True


def test_day_handler_loads_evidently_only_to_pool_a_day() -> None:
    result = _fresh_import("droughtwatch_inference.handlers.day", "day")
    assert result["loaded"] == []  # Evidently waits for the first stale day
    assert result["handler_is_named"] is True


def test_observe_handler_loads_evidently_but_not_torch() -> None:
    bare = _fresh_import("droughtwatch_inference.handlers.observe", "observe")
    assert bare["loaded"] == []  # Evidently waits for the first file
    assert bare["handler_is_named"] is True
    # ...and what the first file loads (Evidently's whole import graph) brings no torch either
    result = _fresh_import(
        "droughtwatch_inference.handlers.observe",
        "observe",
        then="from droughtwatch_inference.logic.observe import load_evidently; load_evidently()",
    )
    assert result["loaded"] == ["evidently"]
    assert result["handler_is_named"] is True


def test_inference_handler_loads_no_model_runtime_before_the_model() -> None:
    result = _fresh_import("droughtwatch_inference.handlers.inference", "inference")
    assert result["loaded"] == []  # torch or onnxruntime: whichever the model's format needs
    assert result["handler_is_named"] is True


def test_migrate_handler_loads_no_heavy_library() -> None:
    code = f"""
import json, sys
import droughtwatch_inference.handlers.migrate as m
print(json.dumps(sorted(p for p in {HEAVY!r} if p in sys.modules)))
"""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []


def test_the_image_carries_the_rds_ca_bundle_where_the_settings_expect_it() -> None:
    """verify-full checks RDS's certificate against this file: the image fetches AWS's bundle
    of all regions at build time, readable by the Lambda's (non-root) user."""
    from droughtwatch_inference.adapters.database import RDS_CA_BUNDLE_URL

    (line,) = [line for line in DOCKERFILE.read_text().splitlines() if RDS_CA_BUNDLE_URL in line]
    assert line.startswith("ADD --chmod=644 ")
    assert line.split() == ["ADD", "--chmod=644", RDS_CA_BUNDLE_URL, RDS_CA_BUNDLE]


def _dockerfile_commands() -> list[str]:
    found = []
    for line in DOCKERFILE.read_text().splitlines():
        if line.startswith("CMD "):
            found.extend(json.loads(line.removeprefix("CMD ")))
    return found


@pytest.mark.slow  # imports each handler's heavy libraries (torch, Evidently)
@pytest.mark.parametrize(
    "path",
    sorted({*(s.handler for s in WORKFLOW), MIGRATE_HANDLER, *_dockerfile_commands()}),
    ids=lambda p: p.split(".")[-2],
)
def test_every_handler_named_imports_and_is_callable(path: str) -> None:
    """What the registry (the functions' commands) and the image's default CMD name."""
    module, _, attribute = path.rpartition(".")
    handler = getattr(importlib.import_module(module), attribute)
    assert callable(handler)


def test_inference_with_an_onnx_model_never_imports_torch(
    tmp_path: Path, tiny_onnx, shard_path: Path
) -> None:
    """A fresh interpreter runs the Inference handler's code path on an ONNX model: load it
    from the model bucket (a folder-backed one) and predict the real shard's processed file."""
    from droughtwatch_preprocess import process_file

    prefix = tmp_path / "buckets" / "models" / "m" / ""
    prefix.mkdir(parents=True)
    (prefix / "model.onnx").write_bytes(tiny_onnx())
    manifest = {
        "name": "tiny",
        "version": "v1",
        "format": "onnx",
        "channels": ["B4", "B5", "B6", "NDVI"],
        "classes": ["0", "1", "2", "3+"],
        "reference_class_shares": {"0": 0.25, "1": 0.25, "2": 0.25, "3+": 0.25},
    }
    (prefix / "model.json").write_text(json.dumps(manifest))
    process_file(shard_path, tmp_path / "shard.npz")
    then = f"""
from pathlib import Path
from droughtwatch_inference.adapters import models
from droughtwatch_inference.adapters.folder_store import FolderStore
from droughtwatch_inference.logic.inference import predict_file
root = Path({str(tmp_path)!r})
model = models.load_model(FolderStore(root / "buckets"), "models", "m/", root / "cache", threads=1)
done = predict_file(root / "shard.npz", model.predictor, model.manifest, 64, root / "p.parquet")
assert done.rows == 79, done
"""
    result = _fresh_import("droughtwatch_inference.handlers.inference", "inference", then=then)
    assert result["loaded"] == ["onnxruntime"]  # no torch, no evidently


def test_the_first_prediction_does_not_import_pandas(tmp_path: Path, shard_path: Path) -> None:
    """Reading a processed file, predicting it and writing its predictions file never needs
    pandas, whose import would cost Inference's cold start a second or more of CPU (pyarrow
    imports it on the first pa.array call: the predictions' columns are built without it)."""
    from droughtwatch_preprocess import process_file

    process_file(shard_path, tmp_path / "shard.npz")
    then = f"""
import numpy as np
from pathlib import Path
from droughtwatch_inference.logic.inference import predict_file
from droughtwatch_inference.model.manifest import ModelManifest
root = Path({str(tmp_path)!r})
manifest = ModelManifest(
    name="m", version="v", channels=("B4", "NDVI"), classes=("0", "1"),
    reference_class_shares={{"0": 0.5, "1": 0.5}},
)
class Half:
    def predict(self, images):
        return np.full((len(images), 2), 0.5, np.float32)
assert "pandas" not in sys.modules
done = predict_file(root / "shard.npz", Half(), manifest, 64, root / "p.parquet")
assert done.rows == 79, done
assert "pandas" not in sys.modules, "the first prediction imported pandas"
"""
    result = _fresh_import("droughtwatch_inference.handlers.inference", "inference", then=then)
    assert result["loaded"] == []
