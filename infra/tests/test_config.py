"""The stack configuration: defaults (every 24 hours), typed values read from the stack's config,
and invalid values failing with a message that names the key and the accepted form."""

from __future__ import annotations

from typing import Any

import pytest
from droughtwatch_contract.settings import InferenceSettings, ObserveSettings
from droughtwatch_contract.stages import WORKFLOW
from droughtwatch_infra import config
from droughtwatch_infra.config import (
    CRON_FORM,
    RATE_FORM,
    ConfigError,
    FunctionsConfig,
    Retention,
    StackConfig,
    check_schedule_expression,
    from_values,
)


def load(infra: Any, values: dict[str, Any], stack: str = "dev") -> StackConfig:
    return infra.run(config.load, stack=stack, config=values).value


def test_defaults_run_every_24_hours_and_protect_data() -> None:
    cfg = StackConfig(region="eu-west-1")
    assert cfg.schedule_expression == "rate(24 hours)"
    assert cfg.schedule_timezone == "UTC"
    assert cfg.schedule_enabled is True
    assert cfg.deletion_protection is True
    assert cfg.database.final_snapshot is True
    assert (cfg.bastion, cfg.bastion_enabled, cfg.bastion_idle_minutes) == ("on-demand", True, 30)
    # an existing stack keeps its RDS instance unless it chooses Aurora
    assert cfg.database.kind == "instance"
    assert cfg.retention == Retention(
        processed_days=30, report_days=365, report_infrequent_access_days=30,
        noncurrent_version_days=30,
    )  # fmt: skip
    assert cfg.alert_email is None
    assert cfg.timeouts == {step: 900 for step in WORKFLOW.names}
    assert (cfg.max_concurrency, cfg.tolerated_failure_percentage) == (10, 0.0)
    assert cfg.functions.inference.memory_mb == 4096
    # The service's own defaults, not copies.
    assert cfg.model_prefix == InferenceSettings.model_fields["model_prefix"].default
    assert cfg.drift_threshold == ObserveSettings.model_fields["drift_threshold"].default
    assert cfg.accuracy_margin == ObserveSettings.model_fields["accuracy_margin"].default == 0.1
    assert cfg.min_daily_images == ObserveSettings.model_fields["min_daily_images"].default == 200


def test_functions_config_has_one_entry_per_stage() -> None:
    assert tuple(FunctionsConfig.model_fields) == WORKFLOW.names


def test_values_come_typed_from_the_stack_config(infra: Any) -> None:
    cfg = load(
        infra,
        {
            "droughtwatch:schedule_expression": "rate(6 hours)",
            "droughtwatch:schedule_timezone": "Asia/Kolkata",
            "droughtwatch:schedule_enabled": "false",
            "droughtwatch:deletion_protection": "false",
            "droughtwatch:drift_threshold": "0.1",
            "droughtwatch:accuracy_margin": "0.05",
            "droughtwatch:min_daily_images": "1000",
            "droughtwatch:alert_email": "ops@example.org",
            "droughtwatch:functions": {"observe": {"timeout_seconds": 300}},
            "droughtwatch:database": {"instance_class": "db.t4g.small"},
        },
    )
    assert cfg.region == "eu-west-1"
    assert cfg.schedule_expression == "rate(6 hours)"
    assert cfg.schedule_timezone == "Asia/Kolkata"
    assert cfg.schedule_enabled is False
    assert cfg.deletion_protection is False
    assert cfg.drift_threshold == 0.1
    assert (cfg.accuracy_margin, cfg.min_daily_images) == (0.05, 1000)
    assert cfg.alert_email == "ops@example.org"
    # One field of one function set: the rest keep that function's own defaults.
    assert cfg.functions.observe.timeout_seconds == 300
    assert cfg.functions.observe.memory_mb == 2048
    assert cfg.functions.inference.memory_mb == 4096
    assert cfg.database.instance_class == "db.t4g.small"
    assert cfg.database.allocated_storage_gb == 20


@pytest.mark.parametrize(
    "expression",
    [
        "rate(24 hours)",
        "rate(1 day)",
        "rate(1 minute)",
        "rate(15 minutes)",
        "cron(0 6 * * ? *)",
        "cron(0/15 8-17 ? * MON-FRI *)",
        "cron(30 23 L * ? *)",
        "cron(0 8 ? * 2#1 2030-2035)",
        "cron(0 12 1,15 JAN,JUL ? *)",
    ],
)
def test_valid_schedule_expressions(expression: str) -> None:
    assert check_schedule_expression(expression) == expression


@pytest.mark.parametrize(
    ("expression", "form"),
    [
        ("rate(24 hour)", RATE_FORM),
        ("rate(1 hours)", RATE_FORM),
        ("rate(0 minutes)", RATE_FORM),
        ("rate(24 hrs)", RATE_FORM),
        ("every 24 hours", RATE_FORM),
        ("at(2030-01-01T06:00:00)", CRON_FORM),
        ("cron(0 6 * * * *)", CRON_FORM),  # '?' in neither day field
        ("cron(0 6 * *)", CRON_FORM),
        ("cron(60 6 * * ? *)", CRON_FORM),
        ("cron(0 24 * * ? *)", CRON_FORM),
        ("cron(0 6 ? * FUNDAY *)", CRON_FORM),
    ],
)
def test_invalid_schedule_fails_naming_the_key_and_the_form(expression: str, form: str) -> None:
    with pytest.raises(ConfigError) as raised:
        from_values(
            "droughtwatch", "dev", {"region": "eu-west-1", "schedule_expression": expression}
        )
    message = str(raised.value)
    assert "droughtwatch:schedule_expression: " in message
    assert form in message
    assert repr(expression) in message


def test_invalid_timezone_fails_naming_the_key(infra: Any) -> None:
    with pytest.raises(ConfigError, match=r"droughtwatch:schedule_timezone: not an IANA time zone"):
        load(infra, {"droughtwatch:schedule_timezone": "CEST"})


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"droughtwatch:functions": {"inference": {"memory_mb": 20000}}},
         "droughtwatch:functions.inference.memory_mb: Input should be less than or equal to 10240"),
        ({"droughtwatch:functions": {"infer": {"memory_mb": 1024}}},
         "droughtwatch:functions.infer: is not a known setting"),
        ({"droughtwatch:log_retention_days": "10"},
         "droughtwatch:log_retention_days: CloudWatch Logs accepts only 1, 3, 5, 7, 14, 30"),
        ({"droughtwatch:schedule_expresion": "rate(1 day)"},
         "droughtwatch:schedule_expresion: is not a known setting"),
        ({"droughtwatch:alert_email": "ops"}, "droughtwatch:alert_email: must be an e-mail"),
        ({"droughtwatch:vpc_cidr": "10.0.0.0/8"}, "droughtwatch:vpc_cidr: must be a /16 to /20"),
        ({"droughtwatch:model_prefix": "models"}, "droughtwatch:model_prefix: must be a key"),
        ({"aws:region": None}, "aws:region: is required (pulumi config set aws:region eu-west-1)"),
        ({"droughtwatch:bastion_enabled": "true"},
         "droughtwatch:bastion_enabled: was replaced by droughtwatch:bastion: on-demand"),
        ({"droughtwatch:bastion": "sometimes"}, "droughtwatch:bastion: Input should be"),
        ({"droughtwatch:report_infrequent_access_days": "7"},
         "S3 moves objects to Standard-IA after 30 days at the earliest"),
        ({"droughtwatch:report_retention_days": "30"},
         "report_retention_days must be more than report_infrequent_access_days"),
        ({"droughtwatch:database": {"kind": "aurora-serverless", "multi_az": True}},
         "droughtwatch:database: multi_az applies only to kind instance, not aurora-serverless"),
    ],
)  # fmt: skip
def test_invalid_values_name_their_key(infra: Any, values: dict[str, Any], expected: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load(infra, values)
    assert expected in str(raised.value)


def test_zero_days_keep_a_product(infra: Any) -> None:
    cfg = load(
        infra,
        {
            "droughtwatch:processed_retention_days": "0",
            "droughtwatch:report_retention_days": "0",
            "droughtwatch:report_infrequent_access_days": "0",
            "droughtwatch:bastion": "off",
        },
    )
    assert cfg.retention == Retention(None, None, None, 30)
    assert cfg.bastion_enabled is False


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(ConfigError) as raised:
        from_values(
            "droughtwatch",
            "dev",
            {"region": "eu-west-1", "schedule_expression": "daily", "schedule_timezone": "Mars"},
        )
    assert "droughtwatch:schedule_expression" in str(raised.value)
    assert "droughtwatch:schedule_timezone" in str(raised.value)


def test_stack_name_too_long_for_bucket_names_fails_early() -> None:
    with pytest.raises(ConfigError, match="use a shorter stack name"):
        from_values("droughtwatch", "x" * 31, {"region": "eu-west-1"})


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [
        ("max_concurrency", 0, "greater than or equal to 1"),
        ("max_concurrency", 101, "less than or equal to 100"),
        ("tolerated_failure_percentage", -1, "greater than or equal to 0"),
        ("tolerated_failure_percentage", 100.5, "less than or equal to 100"),
    ],
)
def test_the_maps_bounds_are_checked_naming_the_key(key: str, value: float, words: str) -> None:
    with pytest.raises(ConfigError, match=rf"droughtwatch:{key}: .*{words}"):
        from_values("droughtwatch", "dev", {"region": "eu-west-1", key: value})
    accepted = from_values("droughtwatch", "dev", {"region": "eu-west-1", key: "50"})
    assert getattr(accepted, key) == 50
