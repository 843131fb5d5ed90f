"""The envelope on the wire, saga propagation, decoding failures and the event registry."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, ClassVar

import orjson
import pytest

from agora import contracts
from agora.contracts import orders
from agora.messaging import DecodeError, Envelope, Event, EventRegistry, new_id

PLACED = orders.OrderPlaced(
    order_id="order-1",
    customer_id="cust-1",
    lines=(orders.OrderLine(product_id="beans", quantity=2, unit_price=Decimal("12.45")),),
    total=Decimal("24.90"),
    currency="EUR",
)
CONFIRMED = orders.OrderConfirmed(
    order_id="order-1", customer_id="cust-1", total=Decimal("24.90"), currency="EUR"
)


def wire(envelope: Envelope) -> dict[str, Any]:
    return dict(orjson.loads(envelope.to_bytes()))


# -- the round trip ------------------------------------------------------------------------


def test_round_trip_to_bytes_and_back() -> None:
    envelope = Envelope.wrap(PLACED, source="orders", traceparent="00-abc-def-01")

    decoded = Envelope.from_bytes(envelope.to_bytes())

    assert decoded == envelope
    assert decoded.occurred_at.tzinfo is not None
    assert contracts.registry().parse(decoded) == PLACED


def test_wrap_fills_the_header_from_the_event() -> None:
    envelope = Envelope.wrap(PLACED, source="orders")

    assert envelope.type == "OrderPlaced"
    assert envelope.version == orders.OrderPlaced.version
    assert envelope.source == "orders"
    assert envelope.key == "order-1"
    assert uuid.UUID(envelope.id).version == 7
    assert (datetime.now(UTC) - envelope.occurred_at).total_seconds() < 60


def test_money_travels_as_exact_text() -> None:
    raw = wire(Envelope.wrap(PLACED, source="orders"))
    assert raw["payload"]["total"] == "24.90"
    assert raw["payload"]["lines"][0]["unit_price"] == "12.45"


# -- correlation and causation -------------------------------------------------------------


def test_an_event_without_a_cause_starts_its_saga_at_its_key() -> None:
    envelope = Envelope.wrap(PLACED, source="orders")
    assert envelope.correlation_id == "order-1"
    assert envelope.causation_id is None
    assert envelope.traceparent is None


def test_explicit_correlation_and_causation_without_a_cause() -> None:
    envelope = Envelope.wrap(PLACED, source="orders", correlation_id="saga-9", causation_id="evt-0")
    assert (envelope.correlation_id, envelope.causation_id) == ("saga-9", "evt-0")


def test_a_caused_event_continues_the_saga_and_names_its_cause() -> None:
    first = Envelope.wrap(PLACED, source="orders", correlation_id="saga-1", traceparent="00-t-1")
    second = Envelope.wrap(CONFIRMED, source="payments", cause=first)
    third = Envelope.wrap(CONFIRMED, source="notifications", cause=second)

    assert second.correlation_id == third.correlation_id == "saga-1"
    assert second.causation_id == first.id
    assert third.causation_id == second.id
    assert second.traceparent == third.traceparent == "00-t-1"
    assert len({first.id, second.id, third.id}) == 3


def test_a_cause_wins_over_an_explicit_causation_id() -> None:
    cause = Envelope.wrap(PLACED, source="orders")
    envelope = Envelope.wrap(CONFIRMED, source="orders", cause=cause, causation_id="other")
    assert envelope.causation_id == cause.id


def test_propagation_survives_the_wire() -> None:
    cause = Envelope.wrap(PLACED, source="orders", correlation_id="saga-7")
    effect = Envelope.from_bytes(Envelope.wrap(CONFIRMED, source="x", cause=cause).to_bytes())
    assert (effect.correlation_id, effect.causation_id) == ("saga-7", cause.id)


# -- what can never be read ----------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [b"", b"not json", b"{", b"\xff\xfe", b'{"id": "x",}'],
    ids=["empty", "text", "truncated", "not-utf8", "trailing-comma"],
)
def test_non_json_is_a_decode_error(data: bytes) -> None:
    with pytest.raises(DecodeError, match="not JSON"):
        Envelope.from_bytes(data)


@pytest.mark.parametrize("data", [b"[]", b"[1, 2]", b'"text"', b"42", b"null", b"true"])
def test_non_objects_are_a_decode_error(data: bytes) -> None:
    with pytest.raises(DecodeError, match="JSON object"):
        Envelope.from_bytes(data)


REQUIRED = ["id", "type", "version", "source", "key", "occurred_at", "correlation_id", "payload"]


@pytest.mark.parametrize("field", REQUIRED)
def test_a_missing_field_is_a_decode_error(field: str) -> None:
    raw = wire(Envelope.wrap(PLACED, source="orders"))
    del raw[field]
    with pytest.raises(DecodeError, match="malformed envelope"):
        Envelope.from_bytes(orjson.dumps(raw))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("id", ""),
        ("id", 7),
        ("type", None),
        ("version", "one"),
        ("version", None),
        ("occurred_at", "yesterday"),
        ("correlation_id", ""),
        ("payload", "{}"),
        ("payload", [1]),
    ],
)
def test_a_malformed_field_is_a_decode_error(field: str, value: object) -> None:
    raw = wire(Envelope.wrap(PLACED, source="orders"))
    raw[field] = value
    with pytest.raises(DecodeError):
        Envelope.from_bytes(orjson.dumps(raw))


def test_optional_fields_may_be_absent() -> None:
    raw = wire(Envelope.wrap(PLACED, source="orders"))
    del raw["causation_id"], raw["traceparent"]
    envelope = Envelope.from_bytes(orjson.dumps(raw))
    assert (envelope.causation_id, envelope.traceparent) == (None, None)


# -- the registry --------------------------------------------------------------------------


def test_registry_parses_every_contract_event_type() -> None:
    registry = contracts.registry()
    assert set(registry.events) == set(contracts.ALL_EVENTS)
    for event in (PLACED, CONFIRMED):
        assert event.type_name() in registry
        assert registry.parse(Envelope.wrap(event, source="t")) == event


def test_unknown_type_is_a_decode_error() -> None:
    envelope = dataclasses.replace(Envelope.wrap(PLACED, source="t"), type="OrderTeleported")
    with pytest.raises(DecodeError, match="unknown event type"):
        contracts.registry().parse(envelope)


def test_a_newer_version_is_a_decode_error_and_an_older_one_is_read() -> None:
    registry = contracts.registry()
    envelope = Envelope.wrap(PLACED, source="t")
    newer = dataclasses.replace(envelope, version=orders.OrderPlaced.version + 1)
    older = dataclasses.replace(envelope, version=orders.OrderPlaced.version - 1)

    with pytest.raises(DecodeError, match="newer"):
        registry.parse(newer)
    assert registry.parse(older) == PLACED


@pytest.mark.parametrize(
    "change",
    [
        {"total": "-1"},
        {"total": "not money"},
        {"currency": "euro"},
        {"lines": [{"product_id": "beans", "quantity": 0, "unit_price": "1"}]},
        {"unexpected": "field"},
        {"order_id": None},
    ],
    ids=["negative", "text-total", "currency", "zero-quantity", "extra-field", "null-id"],
)
def test_an_invalid_payload_is_a_decode_error(change: dict[str, Any]) -> None:
    envelope = Envelope.wrap(PLACED, source="t")
    bad = dataclasses.replace(envelope, payload={**envelope.payload, **change})
    with pytest.raises(DecodeError, match="payload invalid"):
        contracts.registry().parse(bad)


def test_a_missing_payload_field_is_a_decode_error() -> None:
    envelope = Envelope.wrap(PLACED, source="t")
    payload = dict(envelope.payload)
    del payload["customer_id"]
    with pytest.raises(DecodeError, match="payload invalid"):
        contracts.registry().parse(dataclasses.replace(envelope, payload=payload))


class _Probe(Event):
    topic: ClassVar[str] = "probe"
    key_field: ClassVar[str] = "probe_id"
    probe_id: str


def test_registry_refuses_two_events_of_one_name() -> None:
    with pytest.raises(ValueError, match="two events are named"):
        EventRegistry([_Probe, _Probe])


# -- ids -----------------------------------------------------------------------------------


def test_uuid7_ids_sort_by_creation() -> None:
    ids = [new_id() for _ in range(5_000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert {uuid.UUID(i).version for i in ids} == {7}


def test_envelope_ids_sort_by_creation() -> None:
    envelopes = [Envelope.wrap(PLACED, source="t") for _ in range(500)]
    ids = [e.id for e in envelopes]
    assert ids == sorted(ids)
    assert [e.occurred_at for e in envelopes] == sorted(e.occurred_at for e in envelopes)


def test_every_event_of_the_contracts_is_registered() -> None:
    """An event a service emits but the registry does not know is dead-lettered by every
    consumer (`unknown event type`): each concrete event class of a contract module is in
    `ALL_EVENTS`."""
    defined = {
        value
        for module in (
            contracts.catalog,
            contracts.identity,
            contracts.inventory,
            contracts.orders,
            contracts.payments,
            contracts.ticketing,
        )
        for value in vars(module).values()
        if isinstance(value, type)
        and issubclass(value, Event)
        and value.__module__ == module.__name__
        and not value.__name__.startswith("_")
    }
    assert defined - set(contracts.ALL_EVENTS) == set()
