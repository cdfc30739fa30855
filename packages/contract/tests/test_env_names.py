"""Every DROUGHTWATCH_* variable is named from its settings model: env_name gives the variable
a model reads for a field, and refuses a field the model does not have."""

from __future__ import annotations

import pytest
from droughtwatch_contract.settings import (
    CommonSettings,
    DatabaseSettings,
    InferenceSettings,
    ObserveSettings,
    env_name,
)


def test_env_name_is_the_variable_the_model_reads(
    monkeypatch: pytest.MonkeyPatch, no_settings_env: None
) -> None:
    monkeypatch.setenv(env_name(InferenceSettings, "data_bucket"), "my-data")
    monkeypatch.setenv(env_name(InferenceSettings, "model_bucket"), "my-models")
    monkeypatch.setenv(env_name(InferenceSettings, "batch_size"), "17")
    monkeypatch.setenv(env_name(DatabaseSettings, "database_dsn"), "postgresql://x@h/db")
    settings = InferenceSettings()  # type: ignore[call-arg]
    assert (settings.data_bucket, settings.model_bucket, settings.batch_size) == (
        "my-data",
        "my-models",
        17,
    )
    assert env_name(ObserveSettings, "drift_threshold") == "DROUGHTWATCH_DRIFT_THRESHOLD"


def test_env_name_refuses_a_field_the_model_lacks() -> None:
    with pytest.raises(KeyError, match="CommonSettings has no setting 'batch_size'"):
        env_name(CommonSettings, "batch_size")  # Inference's, not every stage's
