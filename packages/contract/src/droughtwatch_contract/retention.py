"""When a product expires: S3's lifecycle rule for a prefix deletes an object ``days`` after it
was written, counted as S3 counts. The stack (infra/) sets the rules; the stages record each
product's expiry in the ledger from the same number, so that the dashboard and `local run`
show an expired product as expired, not as missing.

S3 adds the days to the object's creation time and rounds up to the next midnight UTC; the
object is removed at or after that time (S3 queues the deletion), never before.
"""

from __future__ import annotations

import datetime as dt


def expires_at(created: dt.datetime, days: int | None) -> dt.datetime | None:
    """The time from which S3's expiration rule of ``days`` removes an object written at
    ``created`` (timezone-aware); None when nothing expires it."""
    if days is None:
        return None
    if days < 1:
        raise ValueError(f"a lifecycle expiration takes at least 1 day, got {days}")
    if created.tzinfo is None:
        raise ValueError("created must be timezone-aware")
    due = created.astimezone(dt.UTC) + dt.timedelta(days=days)
    midnight = dt.datetime.combine(due.date(), dt.time(), tzinfo=dt.UTC)
    return midnight if due == midnight else midnight + dt.timedelta(days=1)


def is_expired(expiry: dt.datetime | None, now: dt.datetime) -> bool:
    """Whether a product with this recorded expiry may be gone at ``now``."""
    return expiry is not None and now >= expiry
