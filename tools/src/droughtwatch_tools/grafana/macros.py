"""Grafana's PostgreSQL macros, expanded as Grafana expands them, so that the panels' SQL runs
outside Grafana too: in the SQL tests (tests/test_grafana_sql.py) and on the offline dashboard
page (droughtwatch_tools.dashboard_page), over a time range given here."""

from __future__ import annotations

import datetime as dt
import re

# $__name(arguments): the macros are written without spaces before the parenthesis.
_MACRO = re.compile(r"\$__(?P<name>\w+)\((?P<args>[^)]*)\)")


class UnknownMacro(ValueError):
    """A macro that :func:`expand_macros` does not expand: a new one needs its line (and test)
    there before a panel may use it."""


def grafana_time(value: dt.datetime) -> str:
    """A time as Grafana's PostgreSQL macros write it: RFC 3339 in UTC, the fraction of a second
    trimmed of trailing zeros."""
    if value.tzinfo is None:
        raise ValueError(f"{value} has no time zone: Grafana's times are UTC")
    text = value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f").rstrip("0").rstrip(".")
    return text + "Z"


def expand_macros(sql: str, start: dt.datetime, end: dt.datetime) -> str:
    """The SQL with its macros replaced for the range ``start``..``end`` (both included):
    ``$__timeFilter(column)`` becomes ``column BETWEEN 'start' AND 'end'``, ``$__timeFrom()``
    and ``$__timeTo()`` the quoted times. Any other macro raises :class:`UnknownMacro`.

    The times are written by :func:`grafana_time` from datetimes, never from user text, so the
    literals cannot carry SQL."""
    first, last = f"'{grafana_time(start)}'", f"'{grafana_time(end)}'"

    def replace(match: re.Match[str]) -> str:
        name, args = match["name"], match["args"].strip()
        if name == "timeFilter" and args:
            return f"{args} BETWEEN {first} AND {last}"
        if name == "timeFrom" and not args:
            return first
        if name == "timeTo" and not args:
            return last
        raise UnknownMacro(f"Grafana macro {match.group()} is not expanded outside Grafana")

    expanded = _MACRO.sub(replace, sql)
    if "$__" in expanded:
        raise UnknownMacro(f"Grafana macro without arguments in: {expanded}")
    return expanded
