"""The stack's typed configuration: one pydantic model over `pulumi.Config`, validated before any
resource exists. Defaults live here; stack files (Pulumi.<stack>.yaml) hold only overrides.

An invalid value stops `pulumi preview` with a message naming the key (``droughtwatch:...``) and
the accepted form.
"""

from __future__ import annotations

import ipaddress
import re
import zoneinfo
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal

import pulumi
from droughtwatch_contract import statemachine
from droughtwatch_contract.settings import InferenceSettings, ObserveSettings
from droughtwatch_contract.stages import WORKFLOW, Workflow
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)

from droughtwatch_infra.naming import Namer, NamingError

# --- schedule expressions ----------------------------------------------------------------------

RATE_FORM = "rate(<n> minute|minutes|hour|hours|day|days), e.g. rate(24 hours) or rate(1 day)"
CRON_FORM = (
    "cron(<minutes> <hours> <day-of-month> <month> <day-of-week> <year>) with '?' in "
    "day-of-month or day-of-week, e.g. cron(0 6 * * ? *)"
)
SCHEDULE_FORM = f"{RATE_FORM}, or {CRON_FORM}"

_RATE = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$")
_CRON = re.compile(r"^cron\((.*)\)$")
_MONTHS = "JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC"
_DAYS = "SUN|MON|TUE|WED|THU|FRI|SAT"


def _cron_field(text: str, low: int, high: int, names: str = "", extra: str = "") -> bool:
    """One cron field: '*', or a comma list of values, ranges and steps (value/step, */step),
    plus the field's own specials (L, W, #, ?) given as a regex fragment."""
    if text == "*":
        return True
    value = rf"(\d+|{names})" if names else r"(\d+)"

    def in_range(token: str) -> bool:
        return not token.isdigit() or low <= int(token) <= high

    for item in text.split(","):
        if extra and re.fullmatch(extra, item):
            continue
        match = re.fullmatch(rf"(\*|{value}(-{value})?)(/(\d+))?", item)
        if not match:
            return False
        tokens = [t for t in re.split(r"[-/]", item) if t and t != "*"]
        step = match.group(6)
        if not all(in_range(t) for t in (tokens[:-1] if step else tokens)):
            return False
        if step is not None and int(step) == 0:
            return False
    return True


def _valid_cron(body: str) -> bool:
    fields = body.split()
    if len(fields) != 6:
        return False
    minutes, hours, dom, month, dow, year = fields
    if (dom == "?") == (dow == "?"):
        return False  # exactly one of day-of-month and day-of-week is '?'
    return (
        _cron_field(minutes, 0, 59)
        and _cron_field(hours, 0, 23)
        and (dom == "?" or _cron_field(dom, 1, 31, extra=r"L|LW|\d{1,2}W"))
        and _cron_field(month, 1, 12, _MONTHS)
        and (dow == "?" or _cron_field(dow, 1, 7, _DAYS, extra=rf"([1-7]|{_DAYS})(L|#[1-5])"))
        and _cron_field(year, 1970, 2199)
    )


def check_schedule_expression(expression: str) -> str:
    """Return the expression if EventBridge Scheduler accepts it as a recurring cadence."""
    rate = _RATE.match(expression)
    if rate:
        value, unit = int(rate[1]), rate[2]
        if value < 1:
            raise ValueError(f"the rate must be at least 1; use {RATE_FORM}")
        if (value == 1) != (not unit.endswith("s")):
            raise ValueError(f"use the singular unit for 1 and the plural otherwise: {RATE_FORM}")
        return expression
    cron = _CRON.match(expression)
    if cron:
        if not _valid_cron(cron[1]):
            raise ValueError(f"malformed cron expression; use {CRON_FORM}")
        return expression
    raise ValueError(f"not a rate() or cron() expression; use {SCHEDULE_FORM}")


@cache
def _timezones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


# --- the model ---------------------------------------------------------------------------------

# CloudWatch Logs accepts only these retention periods.
LOG_RETENTION_DAYS = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557,
    2922, 3288, 3653,
)  # fmt: skip


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FunctionConfig(_Model):
    memory_mb: int = Field(2048, ge=128, le=10240)
    timeout_seconds: int = Field(900, ge=1, le=900)
    ephemeral_storage_mb: int = Field(2048, ge=512, le=10240)


class StageFunctions(_Model):
    """One FunctionConfig field per step of the workflow (see `functions_config`)."""

    def for_stage(self, stage: str) -> FunctionConfig:
        return getattr(self, stage)

    @property
    def timeouts(self) -> dict[str, int]:
        return {stage: self.for_stage(stage).timeout_seconds for stage in type(self).model_fields}


def functions_config(stages: Workflow) -> type[StageFunctions]:
    """The ``functions`` config model of a workflow: a field per step, each defaulting to that
    step's own memory from the registry."""
    defaults = {stage.name: {"memory_mb": stage.memory_mb} for stage in stages}

    class _Functions(StageFunctions):
        @model_validator(mode="before")
        @classmethod
        def _merge_stage_defaults(cls, data: Any) -> Any:
            """A stack file may set one field of one function; the rest keep that function's
            own defaults (not the generic ones)."""
            if not isinstance(data, dict):
                return data
            merged: dict[str, Any] = dict(data)  # unknown stage names stay for extra="forbid"
            for stage, stage_defaults in defaults.items():
                given = data.get(stage, {})
                merged[stage] = {**stage_defaults, **given} if isinstance(given, dict) else given
            return merged

    fields: dict[str, Any] = {stage.name: (FunctionConfig, ...) for stage in stages}
    return create_model("FunctionsConfig", __base__=_Functions, **fields)


FunctionsConfig = functions_config(WORKFLOW)


# Aurora PostgreSQL's first minor versions that scale to 0 ACUs and pause (by major version).
AURORA_SCALE_TO_ZERO = {13: 15, 14: 12, 15: 7, 16: 3, 17: 0}
INSTANCE_ONLY = ("instance_class", "allocated_storage_gb", "max_allocated_storage_gb", "multi_az")
AURORA_ONLY = ("min_capacity", "max_capacity", "seconds_until_auto_pause")


class DatabaseConfig(_Model):
    """``kind``: ``aurora-serverless`` (Aurora PostgreSQL Serverless v2: pauses at 0 capacity
    when idle, billed per ACU-second while it runs) or ``instance`` (an RDS PostgreSQL instance,
    billed every hour)."""

    kind: Literal["aurora-serverless", "instance"] = "instance"
    # an instance
    instance_class: str = Field("db.t4g.micro", pattern=r"^db\.[a-z0-9]+\.[a-z0-9]+$")
    allocated_storage_gb: int = Field(20, ge=20, le=65536)
    # Storage autoscaling ceiling; 0 turns autoscaling off.
    max_allocated_storage_gb: int = Field(100, ge=0, le=65536)
    multi_az: bool = False
    # Aurora Serverless v2: capacity in ACUs (about 2 GiB of memory each), in steps of 0.5; a
    # minimum of 0 pauses the cluster after seconds_until_auto_pause without connections.
    min_capacity: float = Field(0, ge=0, le=256)
    max_capacity: float = Field(2, ge=1, le=256)
    seconds_until_auto_pause: int = Field(300, ge=300, le=86400)
    # A PostgreSQL major (instance) or Aurora's major.minor; default 17 (instance), 16.6 (Aurora).
    engine_version: str | None = Field(None, pattern=r"^\d+(\.\d+)?$")
    backup_retention_days: int = Field(7, ge=1, le=35)
    # Take a final snapshot when the database is destroyed (prod); dev stacks skip it.
    final_snapshot: bool = True

    @property
    def aurora(self) -> bool:
        return self.kind == "aurora-serverless"

    @property
    def version(self) -> str:
        return self.engine_version or ("16.6" if self.aurora else "17")

    @model_validator(mode="after")
    def _consistent(self) -> DatabaseConfig:
        other = INSTANCE_ONLY if self.aurora else AURORA_ONLY
        misplaced = sorted(self.model_fields_set & set(other))
        if misplaced:
            verb = "applies" if len(misplaced) == 1 else "apply"
            other_kind = "instance" if self.aurora else "aurora-serverless"
            raise ValueError(
                f"{', '.join(misplaced)} {verb} only to kind {other_kind}, not {self.kind}: "
                "remove it, or set the kind it belongs to"
            )
        if self.max_allocated_storage_gb and self.max_allocated_storage_gb < (
            self.allocated_storage_gb
        ):
            raise ValueError(
                "max_allocated_storage_gb must be 0 (no autoscaling) or at least "
                "allocated_storage_gb"
            )
        if self.aurora:
            self._check_aurora()
        return self

    def _check_aurora(self) -> None:
        for name in ("min_capacity", "max_capacity"):
            if getattr(self, name) * 2 != int(getattr(self, name) * 2):
                raise ValueError(f"{name} must be a multiple of 0.5 ACU")
        if self.max_capacity < self.min_capacity:
            raise ValueError("max_capacity must be at least min_capacity")
        major, _, minor = self.version.partition(".")
        if not minor:
            raise ValueError(
                "Aurora needs a major.minor engine_version, e.g. 16.6 (`aws rds "
                "describe-db-engine-versions --engine aurora-postgresql` lists them)"
            )
        lowest = AURORA_SCALE_TO_ZERO.get(int(major))
        if lowest is None:
            raise ValueError(f"Aurora Serverless v2 pausing needs PostgreSQL 13-17, not {major}")
        if self.min_capacity == 0 and int(minor) < lowest:
            raise ValueError(
                f"min_capacity 0 (pausing) needs Aurora PostgreSQL {major}.{lowest} or later "
                f"(got {self.version})"
            )


@dataclass(frozen=True)
class Retention:
    """How long the data bucket keeps each kind of product (days; None: kept). One value feeds
    both the bucket's lifecycle rules and the stages that record each product's expiry."""

    processed_days: int | None
    report_days: int | None
    # per-file reports move to S3 Standard-IA after this many days (None: they stay)
    report_infrequent_access_days: int | None
    noncurrent_version_days: int


class StackConfig(_Model):
    """Everything a stack may choose. Field names are the config keys (``droughtwatch:<field>``;
    the nested ``functions`` and ``database`` objects are set with ``--path``)."""

    region: str = Field(pattern=r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d$")
    schedule_expression: str = "rate(24 hours)"
    schedule_timezone: str = "UTC"
    schedule_enabled: bool = True
    schedule_retry_attempts: int = Field(3, ge=0, le=185)
    schedule_max_event_age_seconds: int = Field(3600, ge=60, le=86400)
    functions: FunctionsConfig = Field(default_factory=lambda: FunctionsConfig.model_validate({}))
    log_retention_days: int = 30
    database: DatabaseConfig = Field(default_factory=DatabaseConfig)
    # Protects the database from deletion; when off (dev), `pulumi destroy` also empties the
    # buckets and the image repository.
    deletion_protection: bool = True
    alert_email: str | None = None
    # Where Inference finds the model in the model bucket (the service's own default).
    model_prefix: str = InferenceSettings.model_fields["model_prefix"].default
    drift_threshold: float = Field(ObserveSettings.model_fields["drift_threshold"].default, gt=0)
    # Observe's accuracy alert margin and its minimum images per day (the service's defaults).
    accuracy_margin: float = Field(
        ObserveSettings.model_fields["accuracy_margin"].default, gt=0, lt=1
    )
    min_daily_images: int = Field(ObserveSettings.model_fields["min_daily_images"].default, ge=1)
    # on-demand: kept stopped, started by `droughtwatch tunnel`, stops itself when idle;
    # always: runs all month; off: no bastion (and no tunnel).
    bastion: Literal["on-demand", "always", "off"] = "on-demand"
    # An on-demand bastion stops itself after this many minutes without a Session Manager
    # session.
    bastion_idle_minutes: int = Field(30, ge=5, le=1440)
    bastion_instance_type: str = Field("t4g.nano", pattern=r"^[a-z][a-z0-9-]*\.[a-z0-9]+$")
    vpc_cidr: str = "10.42.0.0/16"
    image_keep_count: int = Field(10, ge=1, le=1000)
    # Overwritten or deleted objects stay recoverable this long, then expire.
    noncurrent_version_days: int = Field(30, ge=1, le=3650)
    # Lifecycle of the data bucket's products, in days (0: kept). Processed files can be made
    # again from raw/; per-file HTML reports (about 4 MB each) move to Standard-IA (S3 takes no
    # transition to it before 30 days) and later expire; predictions and the day's reports are
    # kept.
    processed_retention_days: int = Field(30, ge=0, le=3650)
    report_infrequent_access_days: int = Field(30, ge=0, le=3650)
    report_retention_days: int = Field(365, ge=0, le=3650)
    pipeline_log_level: Literal["ALL", "ERROR", "FATAL", "OFF"] = "ALL"
    # The Map's children at once: at most this many invocations of each stage function, and
    # this many of all of them together, each holding one database connection (the default
    # db.t4g.micro serves about 80: above ~60, choose a larger instance class).
    max_concurrency: int = Field(statemachine.DEFAULT_MAX_CONCURRENCY, ge=1, le=100)
    # The share of items (child workflows) that may fail before the Map, and the execution,
    # fail; 0: any failed item fails the execution (a file's own error fails only that file).
    tolerated_failure_percentage: float = Field(
        statemachine.DEFAULT_TOLERATED_FAILURE_PERCENTAGE, ge=0, le=100
    )

    @field_validator("schedule_expression")
    @classmethod
    def _schedule(cls, value: str) -> str:
        return check_schedule_expression(value.strip())

    @field_validator("schedule_timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        if value not in _timezones():
            raise ValueError(
                "not an IANA time zone name; use a name like UTC, Europe/Paris or America/New_York"
            )
        return value

    @field_validator("alert_email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", value):
            raise ValueError("must be an e-mail address like ops@example.org")
        return value

    @field_validator("log_retention_days")
    @classmethod
    def _retention(cls, value: int) -> int:
        if value not in LOG_RETENTION_DAYS:
            accepted = ", ".join(map(str, LOG_RETENTION_DAYS))
            raise ValueError(f"CloudWatch Logs accepts only {accepted}")
        return value

    @field_validator("model_prefix")
    @classmethod
    def _model_prefix(cls, value: str) -> str:
        if not value.endswith("/") or value.startswith("/") or "*" in value:
            raise ValueError("must be a key prefix ending with '/', e.g. models/baseline/")
        return value

    @field_validator("vpc_cidr")
    @classmethod
    def _cidr(cls, value: str) -> str:
        try:
            network = ipaddress.IPv4Network(value)
        except ValueError:
            raise ValueError("must be an IPv4 CIDR block like 10.42.0.0/16") from None
        if not 16 <= network.prefixlen <= 20:
            raise ValueError("must be a /16 to /20 block (subnets are carved out of it)")
        return value

    @field_validator("report_infrequent_access_days")
    @classmethod
    def _infrequent_access(cls, value: int) -> int:
        if 0 < value < 30:
            raise ValueError("S3 moves objects to Standard-IA after 30 days at the earliest (or 0)")
        return value

    @model_validator(mode="after")
    def _reports_expire_after_their_transition(self) -> StackConfig:
        days, moved = self.report_retention_days, self.report_infrequent_access_days
        if days and moved and days <= moved:
            raise ValueError(
                "report_retention_days must be more than report_infrequent_access_days (or 0 "
                "to keep reports), else the transition never happens"
            )
        return self

    @property
    def bastion_enabled(self) -> bool:
        return self.bastion != "off"

    @property
    def retention(self) -> Retention:
        return Retention(
            processed_days=self.processed_retention_days or None,
            report_days=self.report_retention_days or None,
            report_infrequent_access_days=self.report_infrequent_access_days or None,
            noncurrent_version_days=self.noncurrent_version_days,
        )

    @property
    def bastion_arm64(self) -> bool:
        """Graviton instance families carry a 'g' after the generation (t4g, m7g, c6gn)."""
        family = self.bastion_instance_type.split(".", 1)[0]
        return "g" in family[2:]

    @property
    def timeouts(self) -> dict[str, int]:
        return self.functions.timeouts


# --- loading -----------------------------------------------------------------------------------


# Keys of earlier versions, and what to set instead.
REPLACED = {
    "bastion_enabled": "was replaced by droughtwatch:bastion: on-demand (the default: stopped "
    "until `droughtwatch tunnel` starts it), always, or off",
}


class ConfigError(pulumi.RunError):
    """Shown by `pulumi preview`/`up` without a stack trace."""


_OBJECT_KEYS = {"functions", "database"}


def _set_keys(project: str) -> set[str]:
    """The project's config keys set for this stack (to reject misspelt ones, which `Config.get`
    alone would silently ignore)."""
    from pulumi.runtime import config as runtime_config

    keys = {*runtime_config.CONFIG.get(), *runtime_config.get_config_env()}
    prefix = f"{project}:"
    return {k[len(prefix) :] for k in keys if k.startswith(prefix)}


def _raw_values(project: str, config: pulumi.Config, aws_config: pulumi.Config) -> dict[str, Any]:
    # Unknown keys go to the model too, so that extra="forbid" names them.
    values: dict[str, Any] = {
        key: config.get(key) for key in _set_keys(project) if key not in StackConfig.model_fields
    }
    for key in StackConfig.model_fields:
        if key == "region":
            value = aws_config.get("region")
        elif key in _OBJECT_KEYS:
            value = config.get_object(key)
        else:
            # Plain strings: pydantic parses "true", "1024" and "0.3" into the field's type.
            value = config.get(key)
        if value is not None:
            values[key] = value
    return values


def _key(project: str, loc: tuple[int | str, ...]) -> str:
    if loc and loc[0] == "region":
        return "aws:region"
    return f"{project}:" + ".".join(str(p) for p in loc)


def from_values(project: str, stack: str, values: dict[str, Any]) -> StackConfig:
    """Validate raw values (as read from the stack's config); raise ConfigError naming each bad
    key and its accepted form."""
    try:
        config = StackConfig.model_validate(values)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            message = err["msg"].removeprefix("Value error, ")
            if err["type"] == "missing":
                message = "is required" + (
                    " (pulumi config set aws:region eu-west-1)" if err["loc"] == ("region",) else ""
                )
            elif err["type"] == "extra_forbidden":
                message = REPLACED.get(
                    str(err["loc"][-1]), "is not a known setting (see infra/README.md for the keys)"
                )
            quiet = err["type"] in {"missing", "extra_forbidden"}
            got = "" if quiet else f" (got {err['input']!r})"
            problems.append(f"{_key(project, err['loc'])}: {message}{got}")
        raise ConfigError("invalid stack configuration:\n  " + "\n  ".join(problems)) from None
    try:
        # The longest name the program derives must fit the tightest limit (S3, RDS: 63).
        Namer(project, stack).global_name("models", "0" * 12)
    except NamingError as exc:
        raise ConfigError(f"stack {stack!r}: {exc}") from None
    return config


def load() -> StackConfig:
    """The current stack's configuration (project config namespace plus ``aws:region``)."""
    project, stack = pulumi.get_project(), pulumi.get_stack()
    values = _raw_values(project, pulumi.Config(), pulumi.Config("aws"))
    return from_values(project, stack, values)
