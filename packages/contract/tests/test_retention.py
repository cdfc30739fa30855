"""Product expiry as S3's lifecycle expiration counts it: the days added to the creation time,
rounded up to the next midnight UTC."""

from __future__ import annotations

import datetime as dt

import pytest
from droughtwatch_contract.retention import expires_at, is_expired

UTC = dt.UTC


def test_expiry_is_the_next_midnight_utc_after_the_days() -> None:
    written = dt.datetime(2026, 12, 4, 15, 30, tzinfo=UTC)
    assert expires_at(written, 30) == dt.datetime(2027, 1, 4, tzinfo=UTC)
    # exactly midnight stays
    assert expires_at(dt.datetime(2026, 12, 4, tzinfo=UTC), 1) == dt.datetime(
        2026, 12, 5, tzinfo=UTC
    )


def test_expiry_counts_in_utc_whatever_the_writer_s_zone() -> None:
    nairobi = dt.timezone(dt.timedelta(hours=3))
    # 01:00 in Nairobi is 22:00 UTC the day before
    written = dt.datetime(2026, 12, 5, 1, 0, tzinfo=nairobi)
    assert expires_at(written, 1) == dt.datetime(2026, 12, 6, tzinfo=UTC)


def test_kept_products_never_expire() -> None:
    now = dt.datetime(2026, 12, 4, tzinfo=UTC)
    assert expires_at(now, None) is None
    assert not is_expired(None, now)
    assert is_expired(now, now)
    assert not is_expired(now + dt.timedelta(seconds=1), now)


def test_a_rule_takes_whole_days_from_an_aware_time() -> None:
    with pytest.raises(ValueError, match="at least 1 day"):
        expires_at(dt.datetime(2026, 12, 4, tzinfo=UTC), 0)
    with pytest.raises(ValueError, match="timezone-aware"):
        expires_at(dt.datetime(2026, 12, 4), 3)
