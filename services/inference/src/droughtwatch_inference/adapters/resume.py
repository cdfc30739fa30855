"""Waiting for a database that is resuming: an Aurora Serverless cluster paused at 0 capacity
takes about 15 s to resume (up to about 30 s after a day) and refuses or drops connections
meanwhile; the RDS Data API answers DatabaseResumingException. That is normal, not an error:
the caller retries with growing pauses up to a bound, and the log says how long it waited
("database resuming, waited 14 s"). Only failures that resuming explains are retried; a refused
login or a bad certificate fails at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from droughtwatch_inference import logs

T = TypeVar("T")

# What a server that is not taking connections yet makes libpq say (a paused cluster resuming,
# a server starting up, a tunnel whose far end is not up): lower-case fragments.
NOT_READY_MESSAGES = (
    "connection refused",
    "timeout expired",
    "timed out",
    "closed the connection unexpectedly",
    "server closed the connection",
    "the database system is starting up",
    "the database system is shutting down",
    "the database system is in recovery mode",
    "connection reset",
    "eof detected",
    "ssl connection has been closed unexpectedly",
    "could not receive data from server",
)
FIRST_PAUSE_SECONDS = 0.5
LONGEST_PAUSE_SECONDS = 5.0


def not_ready(exc: BaseException) -> bool:
    """Whether a connection error is one a resuming server gives (worth waiting for)."""
    text = str(exc).lower()
    return any(message in text for message in NOT_READY_MESSAGES)


def resumed_message(waited: float) -> str:
    return f"database resuming, waited {waited:.0f} s"


def log_wait(message: str, **fields: object) -> None:
    """The default report of a wait: a JSON log line (CloudWatch Logs on AWS)."""
    logs.event("database.resuming", logging.INFO, message=message, **fields)


def wait_for_database(
    attempt: Callable[[], T],
    bound_seconds: float,
    where: str,
    *,
    retry_on: Callable[[BaseException], bool] = not_ready,
    report: Callable[..., None] = log_wait,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """``attempt()``, tried again while it fails with an error ``retry_on`` accepts, until
    ``bound_seconds`` have passed (then its last error is raised). Reports the first refusal
    and, once through, how long it waited."""
    started = clock()
    pause = FIRST_PAUSE_SECONDS
    refusals = 0
    while True:
        try:
            result = attempt()
        except Exception as exc:
            if not retry_on(exc) or clock() + pause - started > bound_seconds:
                raise
            refusals += 1
            if refusals == 1:
                report(
                    f"database at {where} is not taking connections yet (resuming?); "
                    f"waiting up to {bound_seconds:.0f} s",
                    where=where,
                    error=type(exc).__name__,
                )
            sleep(pause)
            pause = min(pause * 2, LONGEST_PAUSE_SECONDS)
            continue
        if refusals:
            waited = clock() - started
            report(resumed_message(waited), where=where, waited_seconds=round(waited, 1),
                   attempts=refusals + 1)  # fmt: skip
        return result
