"""The contract's settings models read from the environment, once per container: a missing or
invalid DROUGHTWATCH_* variable fails at cold start with a ConfigurationError naming it."""

from __future__ import annotations

from functools import cache
from typing import TypeVar

from droughtwatch_contract.settings import ENV_PREFIX, DatabaseSettings
from pydantic import ValidationError

from droughtwatch_inference.errors import ConfigurationError

S = TypeVar("S", bound=DatabaseSettings)


def load(model: type[S]) -> S:
    """Build settings from the environment, turning validation errors into a ConfigurationError
    whose message names each bad variable."""
    try:
        return model()  # type: ignore[call-arg]
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = "_".join(str(p) for p in err["loc"]).upper()
            name = f"{ENV_PREFIX}{loc}" if loc else "settings"
            problems.append(f"{name}: {err['msg']}")
        raise ConfigurationError("invalid configuration: " + "; ".join(problems)) from None


@cache
def cached(model: type[S]) -> S:
    """Settings built once per container (per model class)."""
    return load(model)
