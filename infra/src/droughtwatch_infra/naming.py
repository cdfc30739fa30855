"""Physical names of every AWS resource, derived from the Pulumi project and stack, so that two
stacks in one account never collide and nothing carries a fixed name."""

from __future__ import annotations

import re
from dataclasses import dataclass

# The tightest common rule across the services named here (S3, RDS, ECR, Lambda, IAM, SQS, SNS,
# Step Functions, Scheduler): lowercase letters, digits and single hyphens, starting with a
# letter. RDS identifiers forbid "--" and a trailing hyphen; S3 and ECR forbid uppercase.
_PART = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
# S3 bucket names and RDS identifiers are the shortest limits (63); IAM role names 64.
MAX_LENGTH = 63


class NamingError(ValueError):
    pass


def slug(value: str) -> str:
    """A project or stack name reduced to the common alphabet: lowercase, runs of anything else
    turned into one hyphen (Pulumi allows dots, underscores and uppercase in stack names)."""
    text = re.sub(r"[^a-z0-9]+", "-", value.lower()).strip("-")
    if not text or not text[0].isalpha():
        raise NamingError(
            f"{value!r} cannot start a resource name: project and stack names must start with "
            "a letter"
        )
    return text


@dataclass(frozen=True)
class Namer:
    """``Namer("droughtwatch", "dev").name("data")`` -> ``"droughtwatch-dev-data"``."""

    project: str
    stack: str

    @property
    def prefix(self) -> str:
        return f"{slug(self.project)}-{slug(self.stack)}"

    def name(self, purpose: str, *, max_length: int = MAX_LENGTH) -> str:
        if not _PART.match(purpose):
            raise NamingError(f"resource purpose {purpose!r} must be lowercase words joined by '-'")
        name = f"{self.prefix}-{purpose}"
        if len(name) > max_length:
            raise NamingError(
                f"{name!r} is {len(name)} characters, over the limit of {max_length}: use a "
                "shorter stack name"
            )
        return name

    def global_name(self, purpose: str, account_id: str) -> str:
        """A name unique across accounts too (S3 bucket names are global): the account id is
        appended, so the same stack deployed in two accounts still gets two names."""
        return self.name(f"{purpose}-{account_id}")
