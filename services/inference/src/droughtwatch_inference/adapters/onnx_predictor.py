"""An ONNX model under onnxruntime's CPU provider. Imports onnxruntime (and never torch)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from droughtwatch_inference.model.fit import choose_input
from droughtwatch_inference.model.layout import to_layout
from droughtwatch_inference.model.manifest import ModelManifest
from droughtwatch_inference.model.predictor import Signature


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    np.exp(shifted, out=shifted)
    shifted /= shifted.sum(axis=1, keepdims=True)
    return shifted


def _dims(shape: object) -> tuple[int | None, ...] | None:
    # onnxruntime gives an int per fixed dimension and a name (or None) per dynamic one
    if not isinstance(shape, list | tuple):
        return None
    return tuple(d if isinstance(d, int) and d >= 0 else None for d in shape)


class OnnxPredictor:
    """Feeds the manifest's input (``input_name``, or the only one) in the manifest's layout;
    logits get a softmax, probabilities are returned as they are."""

    def __init__(self, path: Path, manifest: ModelManifest, *, threads: int) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Between two batches Inference reads and summarises the next images on the main thread;
        # by default onnxruntime's idle threads spin meanwhile, taking the CPU that work needs
        # (and, on a shared machine or beside other workers, everyone's). They sleep instead.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(
            str(path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        inputs = {i.name: i for i in self.session.get_inputs()}
        optional = {i.name: i for i in self.session.get_overridable_initializers()}
        self.input_name = choose_input(list(inputs), list(optional), manifest.input_name)
        output = self.session.get_outputs()[0]
        self.output_name = output.name
        self.signature = Signature(
            input_name=self.input_name,
            input_shape=_dims({**optional, **inputs}[self.input_name].shape),
            output_shape=_dims(output.shape),
        )
        self.outputs = manifest.outputs
        self.layout = manifest.layout

    def predict(self, images: np.ndarray) -> np.ndarray:
        feed = {self.input_name: to_layout(images, self.layout)}
        (out,) = self.session.run([self.output_name], feed)
        out = np.asarray(out, dtype=np.float32)
        return softmax(out) if self.outputs == "logits" else out
