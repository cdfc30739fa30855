"""Physical names: derived from project and stack, valid for every service that gets one."""

from __future__ import annotations

import pytest
from droughtwatch_infra.naming import Namer, NamingError


def test_names_join_project_stack_and_purpose() -> None:
    assert Namer("droughtwatch", "dev").name("pipeline") == "droughtwatch-dev-pipeline"
    assert Namer("droughtwatch", "dev").global_name("data", "123456789012") == (
        "droughtwatch-dev-data-123456789012"
    )


def test_two_stacks_never_share_a_name() -> None:
    dev, prod = Namer("droughtwatch", "dev"), Namer("droughtwatch", "prod")
    purposes = ["data", "pipeline", "db", "schedule", "processing-function"]
    assert {dev.name(p) for p in purposes}.isdisjoint({prod.name(p) for p in purposes})


def test_stack_names_are_reduced_to_the_common_alphabet() -> None:
    assert Namer("droughtwatch", "Team_A.Prod").name("db") == "droughtwatch-team-a-prod-db"


@pytest.mark.parametrize("stack", ["9lives", "-", "__"])
def test_stack_names_that_cannot_start_a_name_are_refused(stack: str) -> None:
    with pytest.raises(NamingError):
        _ = Namer("droughtwatch", stack).name("db")


def test_names_over_the_limit_are_refused() -> None:
    with pytest.raises(NamingError, match="over the limit of 63"):
        Namer("droughtwatch", "a" * 40).name("models-123456789012")


def test_purposes_are_lowercase_words() -> None:
    with pytest.raises(NamingError):
        Namer("droughtwatch", "dev").name("Data_Bucket")
