"""Settings: a missing or invalid variable fails at cold start naming the variable."""

from __future__ import annotations

import pytest
from droughtwatch_contract.settings import (
    RDS_CA_BUNDLE,
    InferenceSettings,
    MigrateSettings,
    ObserveSettings,
    ProcessingSettings,
)
from droughtwatch_inference.errors import ConfigurationError
from droughtwatch_inference.runtime_settings import load


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("DROUGHTWATCH_"):
            monkeypatch.delenv(name)


def test_missing_bucket_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DROUGHTWATCH_DATABASE_DSN", "postgresql://x@localhost/db")
    with pytest.raises(ConfigurationError, match="DROUGHTWATCH_DATA_BUCKET"):
        load(ProcessingSettings)


def test_missing_database_says_which_variables_to_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DROUGHTWATCH_DATA_BUCKET", "bucket-a")
    with pytest.raises(ConfigurationError, match="DROUGHTWATCH_DATABASE_SECRET_ARN"):
        load(ProcessingSettings)


def test_bad_number_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DROUGHTWATCH_DATA_BUCKET", "bucket-a")
    monkeypatch.setenv("DROUGHTWATCH_DATABASE_DSN", "postgresql://x@localhost/db")
    monkeypatch.setenv("DROUGHTWATCH_CHUNK_SIZE", "lots")
    with pytest.raises(ConfigurationError, match="DROUGHTWATCH_CHUNK_SIZE"):
        load(ProcessingSettings)


def test_nested_prefixes_are_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DROUGHTWATCH_DATA_BUCKET", "bucket-a")
    monkeypatch.setenv("DROUGHTWATCH_DATABASE_DSN", "postgresql://x@localhost/db")
    monkeypatch.setenv("DROUGHTWATCH_PROCESSED_PREFIX", "raw/processed/")
    with pytest.raises(ConfigurationError, match="must not nest"):
        load(ProcessingSettings)


def test_model_settings_and_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DROUGHTWATCH_DATA_BUCKET", "bucket-a")
    monkeypatch.setenv("DROUGHTWATCH_DATABASE_SECRET_ARN", "arn:aws:secretsmanager:x")
    monkeypatch.setenv("DROUGHTWATCH_DATABASE_HOST", "db.internal")
    with pytest.raises(ConfigurationError, match="DROUGHTWATCH_MODEL_BUCKET"):
        load(InferenceSettings)
    monkeypatch.setenv("DROUGHTWATCH_MODEL_BUCKET", "models-a")
    settings = load(InferenceSettings)
    assert settings.model_prefix == "models/baseline/"
    # TLS checked against the RDS CA bundle the image carries
    assert (settings.database_sslmode, settings.database_sslrootcert) == (
        "verify-full",
        RDS_CA_BUNDLE,
    )
    assert settings.database_auth == "secret"
    observe = load(ObserveSettings)
    assert (observe.drift_method, observe.drift_threshold) == ("psi", 0.25)
    # the day's HTML report is written, a file's own is not (a backlog is many files)
    assert (observe.save_html_report, observe.save_file_reports) == (True, False)


def test_secret_values_do_not_show_in_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DROUGHTWATCH_DATA_BUCKET", "bucket-a")
    monkeypatch.setenv("DROUGHTWATCH_DATABASE_DSN", "postgresql://u:hunter2@localhost/db")
    settings = load(ProcessingSettings)
    assert "hunter2" not in repr(settings)


def test_iam_authentication_needs_the_user_and_tls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DROUGHTWATCH_DATA_BUCKET", "bucket-a")
    monkeypatch.setenv("DROUGHTWATCH_DATABASE_HOST", "db.internal")
    monkeypatch.setenv("DROUGHTWATCH_DATABASE_AUTH", "iam")
    with pytest.raises(ConfigurationError, match="DROUGHTWATCH_DATABASE_USER"):
        load(ProcessingSettings)
    monkeypatch.setenv("DROUGHTWATCH_DATABASE_USER", "droughtwatch_app")
    monkeypatch.setenv("DROUGHTWATCH_DATABASE_SSLMODE", "disable")
    with pytest.raises(ConfigurationError, match="RDS accepts IAM tokens over TLS only"):
        load(ProcessingSettings)
    monkeypatch.setenv("DROUGHTWATCH_DATABASE_SSLMODE", "verify-full")
    settings = load(ProcessingSettings)
    assert (settings.database_auth, settings.database_user) == ("iam", "droughtwatch_app")
    assert settings.database_secret_arn is None


def test_the_migrate_settings_need_the_database_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DROUGHTWATCH_DATABASE_HOST", "db.internal")
    monkeypatch.setenv("DROUGHTWATCH_DATABASE_SECRET_ARN", "arn:aws:secretsmanager:master")
    settings = load(MigrateSettings)
    assert settings.grafana_secret_arn is None
    assert not hasattr(settings, "data_bucket")
    monkeypatch.delenv("DROUGHTWATCH_DATABASE_SECRET_ARN")
    with pytest.raises(ConfigurationError, match="DROUGHTWATCH_DATABASE_SECRET_ARN"):
        load(MigrateSettings)


def test_relative_store_root_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DROUGHTWATCH_DATA_BUCKET", "bucket-a")
    monkeypatch.setenv("DROUGHTWATCH_DATABASE_DSN", "postgresql://x@localhost/db")
    monkeypatch.setenv("DROUGHTWATCH_STORE_ROOT", "buckets")
    with pytest.raises(ConfigurationError, match=r"DROUGHTWATCH_STORE_ROOT: .*absolute folder"):
        load(ProcessingSettings)
