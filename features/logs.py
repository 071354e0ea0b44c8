"""One JSON object a line on standard error: the service's request log and the relay's delivery log write their
lines through a logger made here, on first use (never at import time)."""

from __future__ import annotations

import logging
import sys
from functools import cache


@cache
def line_logger(name: str) -> logging.Logger:
    """The logger `name`, writing each message as it is (a JSON line) to standard error at INFO, not passed up to
    the root logger (whose format would wrap it)."""
    log = logging.getLogger(name)
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False
    return log
