"""The model artifact contract: `model.json` beside the weights under a prefix of the model bucket.

    s3://<model bucket>/<prefix>/model.json    this manifest
    s3://<model bucket>/<prefix>/model.pt2     a torch.export program (format "torch.export")
    s3://<model bucket>/<prefix>/model.onnx    an ONNX model (format "onnx"), run with onnxruntime

The model takes float32 images with the channels named in ``channels`` (as the processed files
name them: B1..B11 scaled to [0, 1], NDVI, NDMI, EVI), N x C x H x W or, with ``layout``
"NHWC" (Keras' channels last), N x H x W x C, and returns N x K logits or probabilities
(``outputs``) for the ``classes`` in order. ``reference_class_shares`` is the class
distribution of the model's predictions on reference data: prediction drift is measured
against it.

Contract version 2 (``contract_version``: 2; a model.json without it is version 1) adds
``layout``, ``input_name`` (the graph input to feed when there are several),
``weights_sha256`` (checked after every download), ``reference_features`` (a Parquet file
of per-image input summaries of the reference data, see input_summaries.py: input drift is
measured against it) and ``reference_metrics`` (the model's quality on labelled reference
data, ``accuracy``, ``macro_f1`` and ``images``: the accuracy drop is measured against it).
``weights`` and ``reference_features`` are paths relative to the model.json's prefix:
`droughtwatch model publish` stores each version under ``versions/<version>/`` and writes a
top-level model.json that names them there.
"""

from __future__ import annotations

import math
import re
from typing import Any, Literal

from droughtwatch_preprocess import CHANNELS, IMAGE_SIZE
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

MANIFEST_NAME = "model.json"
WEIGHTS_NAME = {"torch.export": "model.pt2", "onnx": "model.onnx"}
REFERENCE_FEATURES_NAME = "reference_features.parquet"
#: The contract versions this droughtwatch reads; the newest is what publishing writes.
CONTRACT_VERSIONS: tuple[int, ...] = (1, 2)
CONTRACT_VERSION = CONTRACT_VERSIONS[-1]
#: Keys that exist from contract version 2 on.
VERSION_2_KEYS: tuple[str, ...] = (
    "layout",
    "input_name",
    "weights_sha256",
    "reference_features",
    "reference_metrics",
)

Layout = Literal["NCHW", "NHWC"]
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class ModelManifest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())

    contract_version: int = 1
    name: str = Field(min_length=1, max_length=100)
    version: str = Field(min_length=1, max_length=100)
    format: Literal["torch.export", "onnx"] = "torch.export"
    weights: str | None = None
    weights_sha256: str | None = None
    channels: tuple[str, ...] = Field(min_length=1)
    image_size: int = IMAGE_SIZE
    layout: Layout = "NCHW"
    input_name: str | None = Field(None, min_length=1)
    classes: tuple[str, ...] = Field(min_length=2)
    outputs: Literal["logits", "probabilities"] = "logits"
    reference_class_shares: dict[str, float]
    reference_features: str | None = None
    reference_metrics: dict[str, float] | None = None
    description: str = ""

    @model_validator(mode="before")
    @classmethod
    def _known_contract_version(cls, data: Any) -> Any:
        # Checked before anything else: a newer contract may spell every other key differently.
        if isinstance(data, dict) and "contract_version" in data:
            version = data["contract_version"]
            if isinstance(version, bool) or version not in CONTRACT_VERSIONS:
                raise ValueError(
                    f"contract_version {version!r} is not one this droughtwatch reads "
                    f"({', '.join(map(str, CONTRACT_VERSIONS))}): upgrade droughtwatch, or "
                    f"write the model.json for contract version {CONTRACT_VERSION}"
                )
        return data

    @field_validator("channels")
    @classmethod
    def _known_channels(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [c for c in value if c not in CHANNELS]
        if unknown:
            raise ValueError(f"unknown channels {unknown}; processed files have {list(CHANNELS)}")
        if len(set(value)) != len(value):
            raise ValueError("channels must not repeat")
        return value

    @field_validator("weights", "reference_features")
    @classmethod
    def _relative_path(cls, value: str | None) -> str | None:
        if value is None:
            return value
        parts = value.split("/")
        if not value or value.startswith("/") or "\\" in value or ".." in parts or "" in parts:
            raise ValueError(
                f"{value!r} must be a path relative to model.json, like 'model.onnx' "
                "(no leading '/', no '..')"
            )
        return value

    @field_validator("weights_sha256")
    @classmethod
    def _sha256(cls, value: str | None) -> str | None:
        if value is not None and not _SHA256.match(value):
            raise ValueError("must be the weights file's sha256 as 64 lowercase hex digits")
        return value

    @field_validator(*VERSION_2_KEYS)
    @classmethod
    def _needs_version_2(cls, value: Any, info: ValidationInfo) -> Any:
        # A key at its default (e.g. "layout": "NCHW", as a dump of a version 1 manifest
        # writes it) means what version 1 means.
        version = info.data.get("contract_version", 1)
        if version < 2 and value != cls.model_fields[str(info.field_name)].default:
            raise ValueError(
                'exists from contract version 2 on: add "contract_version": 2 to model.json'
            )
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


def describe_errors(exc: ValidationError) -> list[tuple[str | None, str]]:
    """(key, what is wrong) per problem of a model.json; key is None for a problem of the whole
    file (whose message names the keys). An unknown key is named with the keys the contract
    knows."""
    problems: list[tuple[str | None, str]] = []
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"]) or None
        if err["type"] == "extra_forbidden":
            known = ", ".join(ModelManifest.model_fields)
            problems.append((field, f"unknown key; the model contract knows {known}"))
        elif err["type"] == "missing":
            problems.append((field, "missing; the model contract requires it"))
        else:
            problems.append((field, err["msg"].removeprefix("Value error, ")))
    return problems


def describe_error_text(exc: ValidationError) -> str:
    """describe_errors as one line."""
    return "; ".join(f"{f}: {m}" if f else m for f, m in describe_errors(exc))
