"""The model artifact contract: `model.json` beside the weights under a prefix of the model bucket.

    s3://<model bucket>/<prefix>/model.json    this manifest
    s3://<model bucket>/<prefix>/model.pt2     a torch.export program (format "torch.export")
    s3://<model bucket>/<prefix>/model.onnx    an ONNX model (format "onnx"), run with onnxruntime

The model takes float32 images N x C x H x W with the channels named in ``channels`` (as the
processed files name them: B1..B11 scaled to [0, 1], NDVI, NDMI, EVI) and returns N x K logits
or probabilities (``outputs``) for the ``classes`` in order. ``reference_class_shares`` is the
class distribution of the model's predictions on reference data: prediction drift is measured
against it. ``reference_features`` (optional) names a Parquet file beside model.json with the
per-image input summaries of that reference data (one row per image, a ``mean_<channel>``
column per channel of ``droughtwatch_preprocess.feature_channels``): input drift is measured
against it. ``reference_metrics`` (optional) is the model's quality on labelled reference data
(``accuracy``, ``macro_f1``, ``images``): the accuracy drop is measured against it.
"""

from __future__ import annotations

import math
from typing import Literal

from droughtwatch_preprocess import CHANNELS, IMAGE_SIZE
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

MANIFEST_NAME = "model.json"
WEIGHTS_NAME = {"torch.export": "model.pt2", "onnx": "model.onnx"}


class ModelManifest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())

    name: str = Field(min_length=1, max_length=100)
    version: str = Field(min_length=1, max_length=100)
    format: Literal["torch.export", "onnx"] = "torch.export"
    weights: str | None = None
    channels: tuple[str, ...] = Field(min_length=1)
    image_size: int = IMAGE_SIZE
    classes: tuple[str, ...] = Field(min_length=2)
    outputs: Literal["logits", "probabilities"] = "logits"
    reference_class_shares: dict[str, float]
    reference_features: str | None = None
    reference_metrics: dict[str, float] | None = None
    description: str = ""

    @field_validator("reference_features")
    @classmethod
    def _plain_file_name(cls, value: str | None) -> str | None:
        if value is not None and (not value or "/" in value or value == MANIFEST_NAME):
            raise ValueError("must name a file beside model.json, e.g. 'reference.parquet'")
        return value

    @field_validator("channels")
    @classmethod
    def _known_channels(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [c for c in value if c not in CHANNELS]
        if unknown:
            raise ValueError(f"unknown channels {unknown}; processed files have {list(CHANNELS)}")
        if len(set(value)) != len(value):
            raise ValueError("channels must not repeat")
        return value

    @model_validator(mode="after")
    def _reference_matches_classes(self) -> ModelManifest:
        if set(self.reference_class_shares) != set(self.classes):
            raise ValueError(
                "reference_class_shares must have exactly one share per class "
                f"{list(self.classes)}, got {sorted(self.reference_class_shares)}"
            )
        total = sum(self.reference_class_shares.values())
        if any(s < 0 for s in self.reference_class_shares.values()) or not math.isclose(
            total, 1.0, abs_tol=1e-3
        ):
            raise ValueError(f"reference_class_shares must be >= 0 and sum to 1, sum is {total}")
        return self

    @property
    def weights_name(self) -> str:
        return self.weights or WEIGHTS_NAME[self.format]
