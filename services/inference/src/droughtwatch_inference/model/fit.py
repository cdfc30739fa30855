"""Whether loaded weights fit their model.json: the input the layout, channels and image size
imply, the output's number of classes, and a probe batch that must come back as one finite
probability distribution per image. Pure functions over shapes and arrays: the Inference loader
and `droughtwatch model check` both use them, so both name the same problems."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from droughtwatch_inference.model.layout import input_shape
from droughtwatch_inference.model.manifest import ModelManifest
from droughtwatch_inference.model.predictor import Signature, SignedPredictor

PROBE_IMAGES = 2  # two, not one: a batch of one would not catch a batch dimension fixed at 1
PROBE_VALUE = 0.25


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a model or its data: the file it is in, the model.json key it is
    about (None when no key is), and what to do."""

    source: str
    field: str | None
    message: str

    def __str__(self) -> str:
        where = f"{self.source}: {self.field}" if self.field else self.source
        return f"{where}: {self.message}"


class UnfitModel(Exception):
    """Raised while loading weights that cannot serve the manifest (e.g. no input to feed)."""

    def __init__(self, field: str | None, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def choose_input(required: Sequence[str], optional: Sequence[str], wanted: str | None) -> str:
    """The model input that takes the images: ``wanted`` (model.json's input_name) or the
    model's only required input. ``optional`` inputs have defaults in the model (ONNX
    initializers that may be overridden). Raises UnfitModel naming input_name otherwise."""
    names = ", ".join(repr(n) for n in [*required, *optional]) or "none"
    if wanted is not None:
        if wanted not in (*required, *optional):
            raise UnfitModel(
                "input_name", f"{wanted!r} is not an input of the model (its inputs: {names})"
            )
        others = [n for n in required if n != wanted]
        if others:
            raise UnfitModel(
                "input_name",
                f"the model also requires {', '.join(map(repr, others))}; Inference feeds the "
                "images only: give the other inputs default values in the model",
            )
        return wanted
    if len(required) == 1:
        return required[0]
    if not required:
        raise UnfitModel(
            "input_name",
            f"the model requires no input (its inputs: {names}): name the one that takes "
            "the images in input_name",
        )
    raise UnfitModel(
        "input_name",
        f"the model has several inputs ({names}): name the one that takes the images in "
        'input_name (with "contract_version": 2)',
    )


def _shape(dims: Sequence[int | None]) -> str:
    return " x ".join("N" if d is None else str(d) for d in dims)


def signature_problems(signature: Signature, manifest: ModelManifest, source: str) -> list[Problem]:
    """What the model's declared input and output shapes say against model.json."""
    problems: list[Problem] = []
    name = signature.input_name
    listed = f"{len(manifest.channels)} ({', '.join(manifest.channels)})"
    got = signature.input_shape
    if got is not None:
        if len(got) != 4:
            problems.append(
                Problem(
                    source,
                    "layout",
                    f"input {name!r} is {_shape(got)}; the contract feeds 4-D images "
                    "(N x C x H x W for layout NCHW, N x H x W x C for NHWC)",
                )
            )
        else:
            problems += _input_problems(name, got, manifest, source, listed)
    out = signature.output_shape
    if out is not None:
        classes = len(manifest.classes)
        if len(out) != 2:
            problems.append(
                Problem(
                    source,
                    "classes",
                    f"the output is {_shape(out)}; the contract wants N x {classes} "
                    f"(one score per class of classes: {', '.join(manifest.classes)})",
                )
            )
        elif out[1] is not None and out[1] != classes:
            problems.append(
                Problem(
                    source,
                    "classes",
                    f"the output gives {out[1]} classes, but classes lists {classes} "
                    f"({', '.join(manifest.classes)}): list the model's classes in output order",
                )
            )
    return problems


def _input_problems(
    name: str,
    got: tuple[int | None, ...],
    manifest: ModelManifest,
    source: str,
    listed: str,
) -> list[Problem]:
    channels, size = len(manifest.channels), manifest.image_size
    declared = manifest.layout
    other = "NHWC" if declared == "NCHW" else "NCHW"
    want = input_shape(declared, channels, size)

    def fits(expected: tuple[int | None, ...]) -> bool:
        return all(g is None or e is None or g == e for g, e in zip(got, expected, strict=True))

    problems = []
    if got[0] is not None:
        problems.append(
            Problem(
                source,
                None,
                f"input {name!r} has its batch dimension fixed at {got[0]}; Inference feeds "
                "batches of many images: export the model with a dynamic batch dimension",
            )
        )
    if fits(want):
        return problems
    if fits(input_shape(other, channels, size)):
        return [
            *problems,
            Problem(
                source,
                "layout",
                f"input {name!r} is {_shape(got)}, which is {other}, but model.json declares "
                f'layout {declared}: set "layout": "{other}"'
                + (' (with "contract_version": 2)' if other == "NHWC" else ""),
            ),
        ]
    c_axis, spatial = (1, (2, 3)) if declared == "NCHW" else (3, (1, 2))
    if got[c_axis] is not None and got[c_axis] != channels:
        problems.append(
            Problem(
                source,
                "channels",
                f"input {name!r} ({_shape(got)}, layout {declared}) takes {got[c_axis]} "
                f"channels, but channels lists {listed}: list the channels the model was "
                "trained on, in order",
            )
        )
    sizes = {got[a] for a in spatial if got[a] is not None}
    if sizes and sizes != {size}:
        problems.append(
            Problem(
                source,
                "image_size",
                f"input {name!r} ({_shape(got)}, layout {declared}) takes images of "
                f"{' x '.join(str(got[a]) for a in spatial)} pixels, but image_size is {size}",
            )
        )
    return problems


def probe_images(manifest: ModelManifest) -> np.ndarray:
    size = manifest.image_size
    shape = (PROBE_IMAGES, len(manifest.channels), size, size)
    return np.full(shape, PROBE_VALUE, dtype=np.float32)


def probe_problems(
    probabilities: np.ndarray, manifest: ModelManifest, source: str
) -> list[Problem]:
    """What the model's answer to the probe batch says: one finite distribution per image over
    the manifest's classes."""
    out = np.asarray(probabilities)
    classes = len(manifest.classes)
    if out.ndim != 2 or out.shape[0] != PROBE_IMAGES:
        return [
            Problem(
                source,
                None,
                f"returns shape {out.shape} for {PROBE_IMAGES} images; the contract wants "
                f"{PROBE_IMAGES} x {classes}",
            )
        ]
    if out.shape[1] != classes:
        return [
            Problem(
                source,
                "classes",
                f"returns {out.shape[1]} scores per image, but classes lists {classes} "
                f"({', '.join(manifest.classes)})",
            )
        ]
    if np.isnan(out).any() or not np.isfinite(out).all():
        what = "NaN" if np.isnan(out).any() else "infinite values"
        return [
            Problem(
                source,
                "outputs",
                f"returns {what} for the probe ({PROBE_IMAGES} images, every pixel "
                f"{PROBE_VALUE}): the model is broken or needs other inputs; check it with "
                "the framework it was trained in",
            )
        ]
    if manifest.outputs == "probabilities" and not np.allclose(out.sum(axis=1), 1.0, atol=1e-3):
        return [
            Problem(
                source,
                "outputs",
                f"outputs is 'probabilities', but the scores for the probe sum to "
                f"{', '.join(f'{s:.3g}' for s in out.sum(axis=1))} per image, not 1: if the "
                'model ends without a softmax, declare "outputs": "logits"',
            )
        ]
    return []


def fit_problems(predictor: SignedPredictor, manifest: ModelManifest, source: str) -> list[Problem]:
    """The signature's problems, or when it has none, the probe's."""
    problems = signature_problems(predictor.signature, manifest, source)
    if problems:
        return problems
    try:
        out = predictor.predict(probe_images(manifest))
    except Exception as exc:
        text = str(exc).strip().splitlines()
        return [
            Problem(
                source,
                None,
                f"does not run on {PROBE_IMAGES} images of {len(manifest.channels)} channels "
                f"at {manifest.image_size} x {manifest.image_size} (layout {manifest.layout}): "
                f"{type(exc).__name__}: {text[0][:300] if text else ''}",
            )
        ]
    return probe_problems(out, manifest, source)
