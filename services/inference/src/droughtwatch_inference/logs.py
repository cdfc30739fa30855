"""Structured logging: one JSON line per event (CloudWatch Logs Insights reads the fields).
Never log a secret or a DSN: callers pass counts, keys and error messages only."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

_logger = logging.getLogger("droughtwatch")


def _configure() -> None:
    if _logger.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    _logger.addHandler(handler)
    _logger.setLevel(logging.INFO)
    _logger.propagate = False


def event(name: str, level: int = logging.INFO, **fields: Any) -> None:
    _configure()
    record = {"ts": round(time.time(), 3), "event": name, **fields}
    _logger.log(level, json.dumps(record, default=str, sort_keys=False))


def to_file(path: str) -> None:
    """Send the JSON lines to a file instead of stderr (the CLI shows tables on the terminal)."""
    _configure()
    for handler in list(_logger.handlers):
        _logger.removeHandler(handler)
        handler.close()
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(message)s"))
    _logger.addHandler(handler)


def log_file() -> str | None:
    """The file the JSON lines go to (`to_file`), or None when they go to stderr."""
    for handler in _logger.handlers:
        if isinstance(handler, logging.FileHandler):
            return handler.baseFilename
    return None
