"""A seat map's stream (Server-Sent Events) from a real `agora up` over a real connection: a
snapshot, then every committed change of the session's places once and in version order; a
client dropped mid-stream that comes back with `Last-Event-ID` gets exactly what it missed."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from test_ticketing_flow import demo_session, order_seat, order_status, seat_map

from harness import AgoraProcess, eventually, product, servers_env

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(
    scope="module",
    params=[
        pytest.param("embedded"),
        pytest.param("servers", marks=[pytest.mark.postgres, pytest.mark.kafka]),
    ],
)
def agora(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AgoraProcess]:
    data_dir: Path = tmp_path_factory.mktemp("agora") / "data"
    env = servers_env(request) if request.param == "servers" else {}
    process = AgoraProcess(data_dir, seed=[product("widget", 10)], env=env).start()
    yield process
    process.stop()


def events(response: httpx.Response) -> Iterator[tuple[str, int, dict[str, Any]]]:
    """(event, id, data) of each event of a text/event-stream, comments (pings) skipped."""
    fields: dict[str, str] = {}
    for line in response.iter_lines():
        if line == "":
            if "data" in fields:
                data = orjson.loads(fields["data"])
                yield fields.get("event", "message"), int(fields["id"]), data
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")


def stream(agora: AgoraProcess, session_id: str, **headers: str) -> Any:
    return agora.client.stream(
        "GET",
        f"/api/sessions/{session_id}/seats/stream",
        headers=headers,
        timeout=httpx.Timeout(30, read=30),
    )


def test_a_dropped_client_gets_exactly_the_changes_it_missed(agora: AgoraProcess) -> None:
    session_id = demo_session(agora, 0)
    eventually(lambda: seat_map(agora, session_id), what="the seat map on sale")
    buyer = f"buyer-{uuid.uuid4().hex[:8]}"
    seen: list[tuple[int, dict[str, Any]]] = []

    with stream(agora, session_id) as first:
        assert first.status_code == 200
        assert first.headers["content-type"].startswith("text/event-stream")
        received = events(first)
        kind, version, snapshot = next(received)
        assert (kind, version) == ("snapshot", snapshot["version"])
        states = dict(snapshot["seats"])
        assert states["main-G-1"] == "available"

        paid = order_seat(agora, buyer, session_id, "main-G-1", token="tok_visa")
        for kind, version, delta in received:
            assert kind == "delta"
            seen.append((version, delta))
            if delta.get("seat_id") == "main-G-1":
                assert delta["state"] == "held"  # held first: nothing later comes before it
                break
    # Dropped mid-stream: the payment, its sale and another buyer's hold happen meanwhile.
    eventually(
        lambda: order_status(agora, buyer, paid)["status"] == "CONFIRMED",
        what=f"order {paid} to be confirmed",
    )
    other = f"buyer-{uuid.uuid4().hex[:8]}"
    order_seat(agora, other, session_id, "main-G-2", token=None)
    settled = eventually(
        lambda: (
            (found := seat_map(agora, session_id)) is not None
            and found["seats"]["main-G-1"] == "sold"
            and found["seats"]["main-G-2"] == "held"
            and found
        ),
        what="main-G-1 sold and main-G-2 held",
    )
    last_seen = seen[-1][0]

    with stream(agora, session_id, **{"Last-Event-ID": str(last_seen)}) as again:
        assert again.status_code == 200
        for kind, version, delta in events(again):
            assert kind == "delta", "a client this close behind gets no snapshot"
            seen.append((version, delta))
            if version >= settled["version"]:
                break

    versions = [version for version, _ in seen]
    assert versions == list(range(snapshot["version"] + 1, versions[-1] + 1)), versions
    for _, delta in seen:
        if "seat_id" in delta:
            states[delta["seat_id"]] = delta["state"]
        assert {"version", "committed_at"} <= delta.keys()
    assert states == settled["seats"]


def test_a_stream_of_an_unknown_session_is_a_404_and_a_future_version_a_snapshot(
    agora: AgoraProcess,
) -> None:
    missing = agora.client.get("/api/sessions/no-such-session/seats/stream")
    assert missing.status_code == 404
    assert missing.json()["type"] == "/problems/session-not-found"

    session_id = demo_session(agora, 1)
    eventually(lambda: seat_map(agora, session_id), what="the seat map on sale")
    with agora.client.stream(
        "GET", f"/api/sessions/{session_id}/seats/stream", params={"since": 10**9}
    ) as ahead:
        kind, version, body = next(events(ahead))
    assert kind == "snapshot"
    assert version == body["version"] < 10**9
    bad = agora.client.get(
        f"/api/sessions/{session_id}/seats/stream", headers={"Last-Event-ID": "yesterday"}
    )
    assert bad.status_code == 422
