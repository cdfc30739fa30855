"""Each Lambda's cold start pays only for itself: importing a handler in a fresh interpreter loads
no heavy library another stage needs (torch for Inference, Evidently for Observe)."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("torch", "evidently", "onnxruntime")


def _fresh_import(module: str, stage: str, then: str = "") -> dict[str, object]:
    """Import ``module`` (and run ``then``) in a new interpreter; report which heavy packages got
    loaded and whether HANDLERS[stage] names that module's callable ``handler``."""
    code = f"""
import importlib, json, sys
import {module} as m
{then}
from droughtwatch_inference.handlers import HANDLERS
path, _, name = HANDLERS[{stage!r}].rpartition(".")
target = getattr(importlib.import_module(path), name)
print(json.dumps({{
    "loaded": sorted(p for p in {HEAVY!r} if p in sys.modules),
    "handler_is_named": target is m.handler and callable(target),
}}))
"""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_processing_handler_loads_neither_torch_nor_evidently() -> None:
    result = _fresh_import("droughtwatch_inference.handlers.processing", "processing")
    assert result["loaded"] == []
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


def test_inference_handler_loads_torch_but_not_evidently() -> None:
    result = _fresh_import("droughtwatch_inference.handlers.inference", "inference")
    assert "evidently" not in result["loaded"]
    assert result["handler_is_named"] is True
