"""model.json, contract version 2: the layout, the input to feed, the version, and unknown keys
refused by name."""

from __future__ import annotations

import pytest
from droughtwatch_inference.model.manifest import (
    CONTRACT_VERSION,
    ModelManifest,
    describe_error_text,
    describe_errors,
)
from pydantic import ValidationError

BASE = {
    "name": "m",
    "version": "v1",
    "channels": ["B4", "B5"],
    "classes": ["0", "1"],
    "reference_class_shares": {"0": 0.5, "1": 0.5},
}


def _errors(values: dict) -> list[tuple[str | None, str]]:
    with pytest.raises(ValidationError) as caught:
        ModelManifest.model_validate(values)
    return describe_errors(caught.value)


def test_a_model_json_without_contract_version_is_version_1_channels_first() -> None:
    manifest = ModelManifest.model_validate(BASE)
    assert manifest.contract_version == 1
    assert manifest.layout == "NCHW" and manifest.input_name is None
    # a version 1 manifest dumped with its defaults reads back the same
    assert ModelManifest.model_validate_json(manifest.model_dump_json()) == manifest


def test_version_2_declares_layout_and_input_name() -> None:
    manifest = ModelManifest.model_validate(
        {**BASE, "contract_version": 2, "layout": "NHWC", "input_name": "input_1"}
    )
    assert (manifest.layout, manifest.input_name) == ("NHWC", "input_1")
    assert CONTRACT_VERSION == 2


@pytest.mark.parametrize("version", [3, 0, "2", True])
def test_an_unknown_contract_version_is_refused_naming_it(version: object) -> None:
    # the only problem named: a newer contract may spell every other key differently
    ((field, message),) = _errors({**BASE, "contract_version": version, "new_key": 1})
    assert field is None
    assert f"contract_version {version!r} is not one this droughtwatch reads (1, 2)" in message
    assert "upgrade droughtwatch" in message


def test_version_2_keys_need_contract_version_2() -> None:
    problems = _errors({**BASE, "layout": "NHWC", "input_name": "x", "labels": []})
    assert [f for f, _ in problems] == ["layout", "input_name", "labels"]
    assert problems[0][1] == (
        'exists from contract version 2 on: add "contract_version": 2 to model.json'
    )


def test_unknown_keys_are_refused_each_by_name() -> None:
    problems = _errors({**BASE, "labels": ["a"], "Layout": "NHWC"})
    assert [f for f, _ in problems] == ["labels", "Layout"]
    assert all(m.startswith("unknown key; the model contract knows ") for _, m in problems)
    assert "layout" in problems[0][1] and "input_name" in problems[0][1]


def test_a_bad_layout_and_a_missing_key_are_named() -> None:
    values = {**BASE, "contract_version": 2, "layout": "CHW"}
    del values["classes"]
    text = describe_error_text(_raise(values))
    assert "layout: Input should be 'NCHW' or 'NHWC'" in text
    assert "classes: missing; the model contract requires it" in text


def _raise(values: dict) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        ModelManifest.model_validate(values)
    return caught.value


@pytest.mark.parametrize("path", ["/abs/model.onnx", "../model.onnx", "a//b.onnx", "a\\b.onnx"])
def test_weights_must_be_a_path_inside_the_model_prefix(path: str) -> None:
    ((field, message),) = _errors({**BASE, "weights": path})
    assert field == "weights" and "relative to model.json" in message


def test_weights_sha256_must_be_a_sha256() -> None:
    ((field, _),) = _errors({**BASE, "contract_version": 2, "weights_sha256": "abc"})
    assert field == "weights_sha256"
    manifest = ModelManifest.model_validate(
        {
            **BASE,
            "contract_version": 2,
            "weights": "versions/v1/model.onnx",
            "weights_sha256": "a" * 64,
        }
    )
    assert manifest.weights_name == "versions/v1/model.onnx"
