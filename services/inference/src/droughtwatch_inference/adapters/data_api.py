"""adapters.schema's executor over the RDS Data API (Aurora with its HTTP endpoint on): SQL over
HTTPS to a public AWS endpoint, which logs in with the secret it is given, read on the service
side with the caller's permission. The migrate function uses it so that it needs no VPC, no
route to the database and no Secrets Manager endpoint running all month.

One statement per call (the migrations are split first); a transaction is BeginTransaction,
the statements with its id, then CommitTransaction (RollbackTransaction when one fails). A
paused cluster answers DatabaseResumingException: waited for (adapters.resume), not an error.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from botocore.exceptions import ClientError

from droughtwatch_inference.adapters.resume import wait_for_database

_NAMED = re.compile(r"%\((\w+)\)s")
RESUMING = "DatabaseResumingException"


def resuming(exc: BaseException) -> bool:
    """Whether the Data API said the cluster is resuming from a pause."""
    return isinstance(exc, ClientError) and exc.response.get("Error", {}).get("Code") == RESUMING


def to_data_api(sql: str) -> str:
    """psycopg's named parameters (``%(name)s``) as the Data API's (``:name``)."""
    return _NAMED.sub(lambda m: f":{m[1]}", sql)


def field(value: Any) -> dict[str, Any]:
    """A parameter value as the Data API's typed Field."""
    if value is None:
        return {"isNull": True}
    if isinstance(value, bool):
        return {"booleanValue": value}
    if isinstance(value, int):
        return {"longValue": value}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, str):
        return {"stringValue": value}
    if isinstance(value, bytes):
        return {"blobValue": value}
    raise TypeError(f"no Data API type for {type(value).__name__}")


def value(field_: Mapping[str, Any]) -> Any:
    """A result Field as a Python value."""
    if field_.get("isNull"):
        return None
    for kind in ("longValue", "stringValue", "booleanValue", "doubleValue", "blobValue"):
        if kind in field_:
            return field_[kind]
    if "arrayValue" in field_:
        array = field_["arrayValue"]
        return next(iter(array.values()), [])
    raise ValueError(f"unknown Data API field {sorted(field_)}")


class DataApiExecutor:
    """Transactions on one Aurora database through an ``rds-data`` client."""

    def __init__(
        self,
        client: Any,
        cluster_arn: str,
        secret_arn: str,
        database: str,
        *,
        resume_seconds: float = 120,
    ) -> None:
        self.client = client
        self.target = {"resourceArn": cluster_arn, "secretArn": secret_arn, "database": database}
        self.resume_seconds = resume_seconds

    @contextmanager
    def transaction(self) -> Iterator[DataApiTransaction]:
        begun = wait_for_database(
            lambda: self.client.begin_transaction(**self.target),
            self.resume_seconds,
            self.target["resourceArn"],
            retry_on=resuming,
        )
        transaction_id = begun["transactionId"]
        try:
            yield DataApiTransaction(self.client, self.target, transaction_id)
        except BaseException:
            self.client.rollback_transaction(
                resourceArn=self.target["resourceArn"],
                secretArn=self.target["secretArn"],
                transactionId=transaction_id,
            )
            raise
        self.client.commit_transaction(
            resourceArn=self.target["resourceArn"],
            secretArn=self.target["secretArn"],
            transactionId=transaction_id,
        )


class DataApiTransaction:
    def __init__(self, client: Any, target: Mapping[str, str], transaction_id: str) -> None:
        self.client = client
        self.target = target
        self.transaction_id = transaction_id

    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        request: dict[str, Any] = {**self.target, "sql": sql, "transactionId": self.transaction_id}
        if params:
            # as psycopg, the SQL is read for parameters only when some are given
            request["sql"] = to_data_api(sql)
            request["parameters"] = [
                {"name": name, "value": field(item)} for name, item in params.items()
            ]
        response = self.client.execute_statement(**request)
        return [tuple(value(f) for f in record) for record in response.get("records", [])]
