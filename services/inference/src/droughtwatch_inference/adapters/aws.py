"""boto3 clients built from settings (endpoint override for moto and local runs)."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config

_RETRIES = Config(retries={"max_attempts": 5, "mode": "standard"}, connect_timeout=10)


def client(service: str, settings: Any) -> Any:
    return boto3.client(
        service,
        endpoint_url=getattr(settings, "aws_endpoint_url", None),
        region_name=getattr(settings, "aws_region", None),
        config=_RETRIES,
    )
