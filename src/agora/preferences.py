"""RFC 7240 `Prefer: wait=N`: how long a client is willing to wait for an answer. Read by the
service that waits (orders, for a change of an order); the entry's proxy allows for the
longest (`MAX_WAIT`) in its upstream timeout."""

from __future__ import annotations

import re

__all__ = ["MAX_WAIT", "wait_preference"]

MAX_WAIT = 20
"""The longest wait honoured, in seconds."""

_WAIT = re.compile(r"^\s*wait\s*=\s*(\d{1,6})\s*$", re.IGNORECASE)


def wait_preference(prefer: str | None) -> int:
    """Seconds from `Prefer: wait=N` (capped at MAX_WAIT); 0 when absent or malformed (a
    preference not understood is ignored)."""
    for preference in (prefer or "").split(","):
        matched = _WAIT.match(preference.split(";")[0])
        if matched:
            return min(int(matched.group(1)), MAX_WAIT)
    return 0
