"""The request an event was caused by: its id and who made it, carried from the HTTP request
into the envelopes its unit of work emits (and on to every event they cause), so that a saga
can be traced back to the call and the user that started it."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from contextvars import ContextVar

__all__ = ["RequestContext", "current_request", "request_scope"]


@dataclasses.dataclass(slots=True)
class RequestContext:
    request_id: str
    actor: str | None = None  # the authenticated user, once known


_current: ContextVar[RequestContext | None] = ContextVar("agora_request", default=None)


def current_request() -> RequestContext | None:
    return _current.get()


@contextlib.contextmanager
def request_scope(request_id: str) -> Iterator[RequestContext]:
    context = RequestContext(request_id)
    token = _current.set(context)
    try:
        yield context
    finally:
        _current.reset(token)
