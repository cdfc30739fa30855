"""Typed settings of the handlers, read once per container from DROUGHTWATCH_* variables (the
service's runtime_settings turns a missing or invalid variable into an error naming it).

The Pulumi program reads the same models for the defaults it deploys and the variable names it
sets."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from droughtwatch_contract.keys import PREFIX_SETTINGS, KeyLayout

ENV_PREFIX = "DROUGHTWATCH_"


def env_name(model: type[BaseModel], field: str) -> str:
    """The environment variable behind a settings field; fails on a field the model lacks."""
    if field not in model.model_fields:
        raise KeyError(f"{model.__name__} has no setting {field!r}")
    return f"{ENV_PREFIX}{field.upper()}"


# Where the service image keeps Amazon RDS's CA bundle (all regions), which verify-full checks
# the server's certificate against: services/inference/Dockerfile downloads it to this path
# from https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem.
RDS_CA_BUNDLE = "/opt/droughtwatch/rds-global-bundle.pem"
VERIFYING_SSLMODES = ("verify-ca", "verify-full")


class DatabaseSettings(BaseSettings):
    """How to reach the database, and as whom: what every handler needs, and all the migrate
    function needs.

    A DSN (local runs, tests) is used as given. Otherwise the host settings, with credentials
    from the RDS-managed secret (``database_auth="secret"``: the migrate function, as the master
    user) or a 15-minute IAM token for ``database_user`` (``"iam"``: the stages, as
    droughtwatch_app; RDS takes tokens over TLS only).

    TLS defaults to ``verify-full`` against the RDS CA bundle in the image: the connection is
    encrypted, and the server proves it is the RDS instance named by ``database_host`` (not
    just any server holding a certificate), which ``require`` does not check."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, extra="ignore", frozen=True, protected_namespaces=()
    )

    database_dsn: SecretStr | None = None
    database_auth: Literal["secret", "iam"] = "secret"
    database_secret_arn: str | None = None
    database_user: str | None = None
    database_host: str | None = None
    database_port: int = Field(5432, ge=1, le=65535)
    database_name: str = "droughtwatch"
    database_sslmode: Literal["disable", "prefer", "require", "verify-ca", "verify-full"] = (
        "verify-full"
    )
    # The CA bundle that verify-ca and verify-full check the server's certificate against.
    database_sslrootcert: str = RDS_CA_BUNDLE
    database_connect_timeout_seconds: int = Field(10, ge=1, le=120)
    # How long to keep trying while the server cannot take connections yet: an Aurora Serverless
    # cluster paused at 0 capacity takes about 15 s to resume (up to about 30 s after a day),
    # and refuses or drops the first connections meanwhile. 0 gives up at the first refusal.
    database_resume_seconds: int = Field(120, ge=0, le=600)

    aws_endpoint_url: str | None = None
    aws_region: str | None = None

    @property
    def uses_data_api(self) -> bool:
        """Whether SQL goes through the RDS Data API instead of a PostgreSQL connection (only
        the migrate function may; see MigrateSettings)."""
        return False

    @model_validator(mode="after")
    def _database_is_configured(self) -> DatabaseSettings:
        if self.database_dsn is not None:
            return self
        if self.uses_data_api:
            if self.database_auth != "secret" or not self.database_secret_arn:
                raise ValueError(
                    "the RDS Data API (DROUGHTWATCH_DATABASE_CLUSTER_ARN) needs "
                    "DROUGHTWATCH_DATABASE_SECRET_ARN, the secret it logs in with "
                    "(database_auth=secret)"
                )
            return self
        if not self.database_host:
            raise ValueError(
                "set DROUGHTWATCH_DATABASE_DSN, or DROUGHTWATCH_DATABASE_HOST with either "
                "DROUGHTWATCH_DATABASE_SECRET_ARN (database_auth=secret) or "
                "DROUGHTWATCH_DATABASE_USER (database_auth=iam)"
            )
        if self.database_auth == "secret" and not self.database_secret_arn:
            raise ValueError(
                "database_auth=secret needs DROUGHTWATCH_DATABASE_SECRET_ARN (the secret with "
                "the username and password)"
            )
        if self.database_auth == "iam":
            if not self.database_user:
                raise ValueError(
                    "database_auth=iam needs DROUGHTWATCH_DATABASE_USER (the database user the "
                    "token is signed for, e.g. droughtwatch_app)"
                )
            if self.database_sslmode in ("disable", "prefer"):
                raise ValueError(
                    "database_auth=iam needs TLS: RDS accepts IAM tokens over TLS only; set "
                    "DROUGHTWATCH_DATABASE_SSLMODE to verify-full (or require)"
                )
        return self

    @property
    def verifies_server(self) -> bool:
        """Whether the connection checks the server's certificate against the CA bundle."""
        return self.database_sslmode in VERIFYING_SSLMODES


class MigrateSettings(DatabaseSettings):
    """The migrate function: the database as its owner (the master secret), and the secret
    holding the password it gives droughtwatch_grafana (none locally).

    With ``database_cluster_arn`` (an Aurora cluster with its HTTP endpoint on) the SQL goes
    through the RDS Data API, a public AWS endpoint that reads ``database_secret_arn`` on the
    service side: the function needs no VPC, no route to the database and no Secrets Manager
    endpoint. Without it, a PostgreSQL connection as for the stages."""

    grafana_secret_arn: str | None = None
    database_cluster_arn: str | None = None

    @property
    def uses_data_api(self) -> bool:
        return self.database_dsn is None and bool(self.database_cluster_arn)


class CommonSettings(DatabaseSettings):
    """What every stage needs: the data bucket and its key layout, the database, AWS access."""

    data_bucket: str = Field(min_length=3, max_length=63)
    # The key layout's prefixes (keys.KeyLayout: one setting per field, its defaults).
    raw_prefix: str = KeyLayout.raw
    processed_prefix: str = KeyLayout.processed
    predictions_prefix: str = KeyLayout.predictions
    reports_prefix: str = KeyLayout.reports
    daily_reports_prefix: str = KeyLayout.daily_reports
    # Late ground truth (label files) that users upload; read by the step that ingests them.
    labels_prefix: str = KeyLayout.labels

    # Local runs: the buckets are folders under this root (<root>/<bucket>/<key>) instead of
    # S3, one store that every local process shares. Unset on AWS.
    store_root: str | None = None

    max_attempts: int = Field(3, ge=1, le=100)
    # Stop claiming new files when less than this much Lambda time remains.
    time_margin_seconds: float = Field(60.0, ge=0)
    lease_seconds: int = Field(960, ge=60)
    # Local runs: the key of the PostgreSQL advisory lock that the process running the stages
    # holds for as long as it lives (the local runner takes it). Each claim records it, and a
    # claim whose lock is gone (its process was killed) is taken over at once rather than when
    # its lease ends. Unset on AWS, where the lease alone ends a claim a function dropped.
    claim_lock: int | None = Field(None, ge=1, le=2**31 - 1)
    work_dir: str = "/tmp/droughtwatch"

    @field_validator(*(setting for _, setting in PREFIX_SETTINGS))
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
    def _prefixes_do_not_nest(self) -> CommonSettings:
        prefixes = list(KeyLayout.from_settings(self).prefix_settings().values())
        for a in prefixes:
            for b in prefixes:
                if a is not b and a.startswith(b):
                    raise ValueError(f"key prefixes must not nest: {a!r} is inside {b!r}")
        return self


class PlanSettings(CommonSettings):
    """The Plan step: how the pending files are split into items, each the work of one child
    workflow (Processing, Inference, Observe, one invocation each). An item is sized to finish
    well inside one invocation's time: at most ``item_max_files`` files and ``item_max_bytes``
    raw bytes (a larger single file is an item of its own)."""

    item_max_files: int = Field(25, ge=1, le=1000)
    item_max_bytes: int = Field(512 * 1024**2, ge=1024**2)
    # The files one round hands to the Map: their ids travel in the state's input, which Step
    # Functions limits to 256 KiB (the Plan also stops at a byte budget of that input); what
    # is left waits for the next round of the same execution.
    plan_max_files: int = Field(10_000, ge=1, le=20_000)


class ProcessingSettings(CommonSettings):
    chunk_size: int = Field(256, ge=1, le=10_000)
    max_files_per_run: int = Field(10_000, ge=1)
    # Days the stack's lifecycle rule keeps a processed file (None: kept, as locally). The
    # ledger records each file's expiry from it (retention.expires_at), so that the dashboard
    # shows an expired file as expired, and Inference knows it from a missing one.
    processed_retention_days: int | None = Field(None, ge=1)


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


class ObserveConfig(BaseModel):
    """What Observe compares with what: the Observe stage's own settings, which its logic takes
    (ObserveSettings below is one; a test builds one without a database or a bucket)."""

    model_config = ConfigDict(frozen=True)

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
    # The day's HTML report (Evidently's, with the day's values).
    save_html_report: bool = True
    # Days the stack's lifecycle rule keeps a per-file HTML report (None: kept); recorded in the
    # ledger with each report, as processed_retention_days is.
    report_retention_days: int | None = Field(None, ge=1)
    # An HTML report per predictions file too: Evidently runs for every file (a few tenths of a
    # second and about 4 MB each). Off, a file's metrics row holds the same values, computed
    # from its counts and summaries, and the day's report is what a user opens.
    save_file_reports: bool = False


class ObserveSettings(ObserveConfig, CommonSettings):
    """The Observe stage: what every stage needs, and ObserveConfig (its fields come last)."""
