"""The model's input layout: processed files hold images N x C x H x W (NCHW); a model may
declare channels last (NHWC, Keras' default). One function turns a batch into what the model
declares, copying at most once."""

from __future__ import annotations

import numpy as np

from droughtwatch_inference.model.manifest import Layout


def to_layout(images: np.ndarray, layout: Layout) -> np.ndarray:
    """``images`` (N, C, H, W) as a C-contiguous float32 array in ``layout``.

    NCHW: the array itself when it already is C-contiguous float32 (a batch sliced from a
    processed chunk is), else one copy. NHWC: the transposed view copied once into channels
    last order (and cast to float32 in the same pass).
    """
    if layout == "NHWC":
        return np.ascontiguousarray(images.transpose(0, 2, 3, 1), dtype=np.float32)
    return np.ascontiguousarray(images, dtype=np.float32)


def input_shape(layout: Layout, channels: int, size: int) -> tuple[int | None, ...]:
    """The input shape the contract feeds (None: the batch dimension, which varies)."""
    if layout == "NHWC":
        return (None, size, size, channels)
    return (None, channels, size, size)
