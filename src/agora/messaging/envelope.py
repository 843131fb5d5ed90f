"""The envelope every integration event travels in, and the typed payloads inside it.

On the wire an envelope is one JSON object (UTF-8, orjson). Its `payload` is the event's own
fields; the `type` and `version` name the payload model that reads it back.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar, TypeVar

import orjson
import uuid_utils
from pydantic import BaseModel, ConfigDict, ValidationError

__all__ = [
    "DecodeError",
    "Envelope",
    "Event",
    "EventRegistry",
    "new_id",
    "utcnow",
]


def new_id() -> str:
    """A UUIDv7 as text: unique, and sortable by creation time."""
    return str(uuid_utils.uuid7())


def utcnow() -> datetime:
    return datetime.now(UTC)


class DecodeError(Exception):
    """A message that can never be read: bad JSON, a missing field, an unknown type or version.

    Retrying cannot help, so a consumer sends such a message to the dead letters at once.
    """


class Event(BaseModel):
    """Base of every integration event payload.

    A subclass names its `topic` (one per bounded context) and `key_field`, the payload field
    holding the aggregate id: events with the same key keep their order. One that only states
    the latest value of its key (`supersedes`) replaces an earlier one of its type and key
    emitted in the same transaction: a batch of changes announces each key's value once.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    topic: ClassVar[str]
    key_field: ClassVar[str]
    version: ClassVar[int] = 1
    supersedes: ClassVar[bool] = False

    @classmethod
    def type_name(cls) -> str:
        return cls.__name__

    @property
    def key(self) -> str:
        return str(getattr(self, self.key_field))


E = TypeVar("E", bound=Event)


@dataclasses.dataclass(frozen=True, slots=True)
class Envelope:
    id: str
    type: str
    version: int
    source: str
    key: str
    occurred_at: datetime
    correlation_id: str
    causation_id: str | None
    traceparent: str | None
    payload: Mapping[str, Any]
    request_id: str | None = None  # the HTTP request that started the saga
    actor: str | None = None  # the user who made that request

    @classmethod
    def wrap(
        cls,
        event: Event,
        *,
        source: str,
        cause: Envelope | None = None,
        correlation_id: str | None = None,
        causation_id: str | None = None,
        traceparent: str | None = None,
        request_id: str | None = None,
        actor: str | None = None,
    ) -> Envelope:
        """Envelope `event`; an event caused by another continues its saga (correlation).

        Without a cause, the saga is `correlation_id` or else the event's own key."""
        event_id = new_id()
        return cls(
            id=event_id,
            type=event.type_name(),
            version=event.version,
            source=source,
            key=event.key,
            occurred_at=utcnow(),
            correlation_id=correlation_id or (cause.correlation_id if cause else event.key),
            causation_id=cause.id if cause else causation_id,
            traceparent=traceparent or (cause.traceparent if cause else None),
            payload=event.model_dump(mode="json"),
            request_id=cause.request_id if cause else request_id,
            actor=cause.actor if cause else actor,
        )

    def to_bytes(self) -> bytes:
        return orjson.dumps(self)  # orjson writes the fields itself: no deep copy (asdict)

    @classmethod
    def from_bytes(cls, data: bytes) -> Envelope:
        try:
            raw = orjson.loads(data)
        except orjson.JSONDecodeError as error:
            raise DecodeError(f"not JSON: {error}") from error
        if not isinstance(raw, dict):
            raise DecodeError("an envelope must be a JSON object")
        try:
            return cls(
                id=_text(raw, "id"),
                type=_text(raw, "type"),
                version=int(raw["version"]),
                source=_text(raw, "source"),
                key=_text(raw, "key"),
                occurred_at=datetime.fromisoformat(_text(raw, "occurred_at")),
                correlation_id=_text(raw, "correlation_id"),
                causation_id=raw.get("causation_id"),
                traceparent=raw.get("traceparent"),
                payload=_mapping(raw, "payload"),
                request_id=raw.get("request_id"),
                actor=raw.get("actor"),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise DecodeError(f"malformed envelope: {error!r}") from error


def _text(raw: Mapping[str, Any], name: str) -> str:
    value = raw[name]
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty string")
    return value


def _mapping(raw: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = raw[name]
    if not isinstance(value, dict):
        raise ValueError(f"{name} must be an object")
    return value


class EventRegistry:
    """Reads envelopes back into typed events; knows every (type, version) it may meet."""

    def __init__(self, events: Iterable[type[Event]]) -> None:
        self._by_name: dict[str, type[Event]] = {}
        for event in events:
            name = event.type_name()
            if name in self._by_name:
                raise ValueError(f"two events are named {name}")
            self._by_name[name] = event

    def __contains__(self, event_type: str) -> bool:
        return event_type in self._by_name

    @property
    def events(self) -> tuple[type[Event], ...]:
        return tuple(self._by_name.values())

    def parse(self, envelope: Envelope) -> Event:
        model = self._by_name.get(envelope.type)
        if model is None:
            raise DecodeError(f"unknown event type {envelope.type!r}")
        if envelope.version > model.version:
            raise DecodeError(
                f"{envelope.type} version {envelope.version} is newer than known {model.version}"
            )
        try:
            return model.model_validate(envelope.payload)
        except ValidationError as error:
            raise DecodeError(f"{envelope.type} payload invalid: {error}") from error

    def json_schemas(self) -> dict[str, dict[str, Any]]:
        """JSON Schema of every payload, by event type (exported for consumers in any language)."""
        return {name: model.model_json_schema() for name, model in self._by_name.items()}
