"""What loaded weights offer, whatever their runtime: a prediction over a batch of images, and
the input and output shapes the model declares. adapters.models loads one for torch.export
and ONNX (each runtime sets its own threads, so the code using a predictor imports neither);
fit.py checks one against its model.json."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Predictor(Protocol):
    """A loaded model."""

    def predict(self, images: np.ndarray) -> np.ndarray:
        """Class probabilities float32 (n, K), rows summing to one, of images float32
        (n, C, H, W) with the manifest's channels in order; n >= 1. The predictor gives the
        model the layout it declares."""
        ...


@dataclass(frozen=True)
class Signature:
    """The model's own description of what it takes and gives; a dimension is None when the
    model leaves it dynamic, a shape None when the runtime does not say."""

    input_name: str
    input_shape: tuple[int | None, ...] | None
    output_shape: tuple[int | None, ...] | None


class SignedPredictor(Predictor, Protocol):
    """A loaded model that also declares its input and output shapes (both runtimes do)."""

    signature: Signature
