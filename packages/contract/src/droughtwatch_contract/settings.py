"""Typed settings of the stage handlers, read once per container from DROUGHTWATCH_* variables
(the service's runtime_settings turns a missing or invalid variable into an error naming it).

The Pulumi program reads the same models for the defaults it deploys and the variable names it
sets."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "DROUGHTWATCH_"


class CommonSettings(BaseSettings):
    """What every stage needs: the data bucket and its key layout, the database, AWS access."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, extra="ignore", frozen=True, protected_namespaces=()
    )

    data_bucket: str = Field(min_length=3, max_length=63)
    raw_prefix: str = "raw/"
    processed_prefix: str = "processed/"
    predictions_prefix: str = "predictions/"
    reports_prefix: str = "reports/"

    # Either a DSN (local runs, tests) or the RDS-managed secret plus where the database is.
    database_dsn: SecretStr | None = None
    database_secret_arn: str | None = None
    database_host: str | None = None
    database_port: int = Field(5432, ge=1, le=65535)
    database_name: str = "droughtwatch"
    database_sslmode: Literal["disable", "prefer", "require", "verify-ca", "verify-full"] = (
        "require"
    )
    database_connect_timeout_seconds: int = Field(10, ge=1, le=120)

    # Local runs: the buckets are folders under this root (<root>/<bucket>/<key>) instead of
    # S3, one store that every local process shares. Unset on AWS.
    store_root: str | None = None
    aws_endpoint_url: str | None = None
    aws_region: str | None = None

    max_attempts: int = Field(3, ge=1, le=100)
    # Stop claiming new files when less than this much Lambda time remains.
    time_margin_seconds: float = Field(60.0, ge=0)
    lease_seconds: int = Field(960, ge=60)
    work_dir: str = "/tmp/droughtwatch"

    @field_validator("raw_prefix", "processed_prefix", "predictions_prefix", "reports_prefix")
    @classmethod
    def _prefix_ends_with_slash(cls, value: str) -> str:
        if not value or not value.endswith("/") or value.startswith("/"):
            raise ValueError("must be a non-empty key prefix like 'raw/' (ends with '/')")
        return value

    @field_validator("store_root")
    @classmethod
    def _store_root_is_absolute(cls, value: str | None) -> str | None:
        if value is None:
            return None
        path = Path(value).expanduser()
        if not path.is_absolute():
            raise ValueError(
                f"must be an absolute folder path like /home/me/droughtwatch/buckets, not {value!r}"
            )
        return str(path)

    @model_validator(mode="after")
    def _database_is_configured(self) -> CommonSettings:
        if self.database_dsn is None and not (self.database_secret_arn and self.database_host):
            raise ValueError(
                "set DROUGHTWATCH_DATABASE_DSN, or both DROUGHTWATCH_DATABASE_SECRET_ARN and "
                "DROUGHTWATCH_DATABASE_HOST"
            )
        prefixes = [
            self.raw_prefix,
            self.processed_prefix,
            self.predictions_prefix,
            self.reports_prefix,
        ]
        for a in prefixes:
            for b in prefixes:
                if a is not b and a.startswith(b):
                    raise ValueError(f"key prefixes must not nest: {a!r} is inside {b!r}")
        return self


class ProcessingSettings(CommonSettings):
    chunk_size: int = Field(256, ge=1, le=10_000)
    max_files_per_run: int = Field(10_000, ge=1)


class InferenceSettings(CommonSettings):
    model_bucket: str = Field(min_length=3, max_length=63)
    model_prefix: str = "models/baseline/"
    # images per forward pass (the torch predictor runs at most 64 at once: faster on CPU)
    batch_size: int = Field(64, ge=1, le=8192)
    # 0 = as many threads as the CPUs available to this process.
    torch_threads: int = Field(0, ge=0, le=64)

    @field_validator("model_prefix")
    @classmethod
    def _model_prefix(cls, value: str) -> str:
        if not value.endswith("/"):
            raise ValueError("must end with '/', e.g. 'models/baseline/'")
        return value


class ObserveSettings(CommonSettings):
    # PSI is fixed on purpose: its value means the same at every sample size, so one alert
    # threshold holds (0.1 = moderate, 0.25 = significant shift, the usual rule of thumb).
    drift_method: Literal["psi", "jensenshannon"] = "psi"
    drift_threshold: float = Field(0.25, gt=0)
    # Input drift (logic/input_drift.py): a summary column drifts when its normed Wasserstein
    # distance to the reference reaches the threshold; the input drifts when that share of
    # the columns does.
    feature_drift_threshold: float = Field(0.3, gt=0)
    feature_drift_share: float = Field(0.5, gt=0, le=1)
    # The accuracy alert: accuracy more than this below the model's reference accuracy.
    accuracy_margin: float = Field(0.1, gt=0, lt=1)
    # A day with fewer images is "not enough data": no alert (logic/daily.py).
    min_daily_images: int = Field(200, ge=1)
    save_html_report: bool = True
