"""Live streams from a real `agora up` over real connections, embedded and on servers (through
nginx, and the gateway's hub): a seat map's stream as Server-Sent Events and over WebSocket, a
snapshot then every committed change of the session's places once and in version order, and a
client dropped mid-stream that comes back with `Last-Event-ID` or `?since=` gets exactly what it
missed; an order's stream over WebSocket, to whoever may read the order and nobody else."""

from __future__ import annotations

import contextlib
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from test_ticketing_flow import demo_session, order_seat, order_status, seat_map
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

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


def socket(agora: AgoraProcess, path: str, **headers: str) -> ClientConnection:
    return connect(
        agora.base_url.replace("http", "ws", 1) + path,
        additional_headers=headers,
        open_timeout=30,
        max_size=None,
    )


def frames(ws: ClientConnection) -> Iterator[dict[str, Any]]:
    """The stream's messages, heartbeats skipped."""
    while True:
        message = orjson.loads(ws.recv(timeout=30))
        if message["type"] != "heartbeat":
            yield message


def closed_with(ws: ClientConnection) -> tuple[int, str]:
    """The close code and reason the server ends `ws` with (after whatever it still sends)."""

    def drain() -> None:
        while True:
            ws.recv(timeout=30)

    with pytest.raises(ConnectionClosed) as closed:
        drain()
    assert closed.value.rcvd is not None, "closed without a close frame"
    return closed.value.rcvd.code, closed.value.rcvd.reason


def test_a_dropped_socket_gets_exactly_the_changes_it_missed(agora: AgoraProcess) -> None:
    session_id = demo_session(agora, 0)
    eventually(lambda: seat_map(agora, session_id), what="the seat map on sale")
    buyer = f"buyer-{uuid.uuid4().hex[:8]}"
    seen: list[dict[str, Any]] = []

    with socket(agora, f"/ws/sessions/{session_id}") as first:
        received = frames(first)
        snapshot = next(received)
        assert snapshot["type"] == "snapshot"
        states = dict(snapshot["map"]["seats"])
        assert states["main-H-1"] == "available"
        paid = order_seat(agora, buyer, session_id, "main-H-1", token="tok_visa")
        held = False
        while not held:
            message = next(received)
            assert message["type"] == "deltas", message
            for delta in message["deltas"]:
                seen.append(delta)
                held = held or delta.get("seat_id") == "main-H-1"
    assert next(d for d in seen if d.get("seat_id") == "main-H-1")["state"] == "held"
    # Dropped mid-stream: the payment, its sale and another buyer's hold happen meanwhile.
    eventually(
        lambda: order_status(agora, buyer, paid)["status"] == "CONFIRMED",
        what=f"order {paid} to be confirmed",
    )
    order_seat(agora, f"buyer-{uuid.uuid4().hex[:8]}", session_id, "main-H-2", token=None)
    settled = eventually(
        lambda: (
            (found := seat_map(agora, session_id)) is not None
            and found["seats"]["main-H-1"] == "sold"
            and found["seats"]["main-H-2"] == "held"
            and found
        ),
        what="main-H-1 sold and main-H-2 held",
    )

    with socket(agora, f"/ws/sessions/{session_id}?since={seen[-1]['version']}") as again:
        for message in frames(again):
            assert message["type"] == "deltas", "a client this close behind gets no snapshot"
            seen.extend(message["deltas"])
            if seen[-1]["version"] >= settled["version"]:
                break

    versions = [delta["version"] for delta in seen]
    first_version = snapshot["map"]["version"] + 1
    assert versions == list(range(first_version, versions[-1] + 1)), versions
    for delta in seen:
        if "seat_id" in delta:
            states[delta["seat_id"]] = delta["state"]
        assert {"version", "committed_at"} <= delta.keys()
    assert states == settled["seats"]


def test_a_socket_of_an_unknown_session_is_closed_4404_and_a_foreign_page_refused(
    agora: AgoraProcess,
) -> None:
    with socket(agora, "/ws/sessions/no-such-session") as missing:
        assert closed_with(missing)[0] == 4404
    session_id = demo_session(agora, 1)
    host = agora.base_url.removeprefix("http://")
    with pytest.raises(InvalidStatus) as refused:
        socket(agora, f"/ws/sessions/{session_id}", Origin="https://elsewhere.example")
    assert refused.value.response.status_code == 403
    with socket(agora, f"/ws/sessions/{session_id}", Origin=f"http://{host}") as same_page:
        assert next(frames(same_page))["type"] == "snapshot"


def test_an_order_socket_follows_the_order_for_its_buyer_only(agora: AgoraProcess) -> None:
    session_id = demo_session(agora, 1)
    eventually(lambda: seat_map(agora, session_id), what="the seat map on sale")
    buyer = f"buyer-{uuid.uuid4().hex[:8]}"
    order_id = order_seat(agora, buyer, session_id, "main-J-1", token=None)
    token = agora.headers(buyer)["Authorization"].removeprefix("Bearer ")

    with socket(agora, f"/ws/orders/{order_id}") as anonymous:
        anonymous.send(orjson.dumps({"type": "auth", "token": "not-a-token"}).decode())
        assert closed_with(anonymous)[0] == 4401
    stranger = agora.headers(f"buyer-{uuid.uuid4().hex[:8]}")["Authorization"][7:]
    with socket(agora, f"/ws/orders/{order_id}?token={stranger}") as other:
        assert closed_with(other)[0] == 4404, "another buyer learns nothing of the order"

    statuses: list[str] = []
    with socket(agora, f"/ws/orders/{order_id}") as mine:
        mine.send(orjson.dumps({"type": "auth", "token": token}).decode())
        received = frames(mine)
        first = next(received)
        assert first["type"] == "order"
        assert first["order"]["id"] == order_id
        statuses.append(first["order"]["status"])
        eventually(
            lambda: order_status(agora, buyer, order_id)["status"] == "RESERVED",
            what=f"order {order_id} reserved",
        )
        paid = agora.client.post(
            f"/api/orders/{order_id}/pay",
            json={"payment_token": "tok_visa"},
            headers=agora.headers(buyer),
        )
        assert paid.status_code == 202, paid.text
        while statuses[-1] != "CONFIRMED":
            message = next(received)
            assert message["type"] == "order"
            statuses.append(message["order"]["status"])
    # each message is a change: states in saga order, none repeated
    order = ["PENDING", "RESERVED", "CONFIRMED"]
    assert statuses == sorted(set(statuses), key=order.index), statuses
    assert statuses[-2:] == ["RESERVED", "CONFIRMED"] or statuses == ["CONFIRMED"]


def live_clients(agora: AgoraProcess, stream: str) -> float:
    samples = agora.metrics().get("agora_live_clients", [])
    return sum(v for labels, v in samples if labels == {"stream": stream, "transport": "ws"})


def test_the_entry_counts_its_live_clients_and_the_changes_it_sends(agora: AgoraProcess) -> None:
    session_id = demo_session(agora, 1)
    eventually(lambda: seat_map(agora, session_id), what="the seat map on sale")
    before = live_clients(agora, "seats")
    with socket(agora, f"/ws/sessions/{session_id}") as watching:
        received = frames(watching)
        assert next(received)["type"] == "snapshot"
        eventually(lambda: live_clients(agora, "seats") == before + 1, what="the client counted")
        order_seat(agora, f"buyer-{uuid.uuid4().hex[:8]}", session_id, "main-J-5", token=None)
        assert next(received)["type"] == "deltas"
    eventually(lambda: live_clients(agora, "seats") == before, what="the client gone")
    if agora.env:  # on servers the entry relays: what is sent is counted where it is sent
        return
    metrics = agora.metrics()
    sent = sum(v for labels, v in metrics["agora_live_deltas_sent"] if labels["transport"] == "ws")
    assert sent >= 1
    latency = metrics["agora_live_delta_latency_seconds"]
    counts = [v for labels, v in latency if labels.get("transport") == "ws" and "le" not in labels]
    assert counts, latency
    assert max(counts) >= 1


@pytest.mark.parametrize(
    "topology",
    [
        pytest.param("embedded"),
        pytest.param("servers", marks=[pytest.mark.postgres, pytest.mark.kafka]),
    ],
)
def test_a_stopping_entry_closes_its_streams_with_going_away(
    request: pytest.FixtureRequest, tmp_path: Path, topology: str
) -> None:
    env = servers_env(request) if topology == "servers" else {}
    process = AgoraProcess(tmp_path / "data", seed=[product("widget", 10)], env=env).start()
    try:
        session_id = demo_session(process, 0)
        eventually(lambda: seat_map(process, session_id), what="the seat map on sale")
        buyer = f"buyer-{uuid.uuid4().hex[:8]}"
        order_id = order_seat(process, buyer, session_id, "main-A-1", token=None)
        token = process.headers(buyer)["Authorization"].removeprefix("Bearer ")
        with (
            socket(process, f"/ws/sessions/{session_id}") as seats,
            socket(process, f"/ws/orders/{order_id}?token={token}") as order,
        ):
            assert next(frames(seats))["type"] == "snapshot"
            assert next(frames(order))["type"] == "order"
            assert process.process is not None
            process.process.send_signal(signal.SIGTERM)
            assert closed_with(seats)[0] == 1001
            assert closed_with(order)[0] == 1001
        # a graceful stop (uvicorn ends by re-raising the signal it handled)
        assert process.process.wait(timeout=60) in (0, -signal.SIGTERM)
    finally:
        process.stop()


def follow(ws: ClientConnection, until: int) -> tuple[dict[str, str], list[int], int]:
    """Read `ws` (a snapshot first) until its map reaches version `until`: the seats, the
    versions of the deltas after the snapshot, and the snapshot's version."""
    received = frames(ws)
    snapshot = next(received)
    assert snapshot["type"] == "snapshot"
    seats = dict(snapshot["map"]["seats"])
    start = version = snapshot["map"]["version"]
    versions: list[int] = []
    while version < until:
        message = next(received)
        assert message["type"] == "deltas", message
        for delta in message["deltas"]:
            versions.append(delta["version"])
            version = delta["version"]
            if "seat_id" in delta:
                seats[delta["seat_id"]] = delta["state"]
    return seats, versions, start


def held(agora: AgoraProcess, session_id: str, *seats: str) -> dict[str, Any]:
    """The session's map once `seats` are all held."""
    return eventually(  # type: ignore[no-any-return]
        lambda: (
            (found := seat_map(agora, session_id)) is not None
            and all(found["seats"][seat] == "held" for seat in seats)
            and found
        ),
        what=f"{', '.join(seats)} held",
    )


def test_clients_joining_while_seats_change_each_get_every_change_once(
    agora: AgoraProcess,
) -> None:
    session_id = demo_session(agora, 1)
    eventually(lambda: seat_map(agora, session_id), what="the seat map on sale")
    path = f"/ws/sessions/{session_id}"
    with contextlib.ExitStack() as stack:
        watchers = []
        for n in range(1, 6):  # each joins while the others watch and the seats change
            watchers.append(stack.enter_context(socket(agora, path)))
            order_seat(agora, f"buyer-{uuid.uuid4().hex[:8]}", session_id, f"main-I-{n}", None)
        final = held(agora, session_id, *(f"main-I-{n}" for n in range(1, 6)))
        for ws in watchers:
            seats, versions, start = follow(ws, final["version"])
            assert versions == list(range(start + 1, final["version"] + 1)), versions
            assert seats == final["seats"]
        # one leaves and comes back while the others keep watching: exactly what it missed
        watchers[0].close()
        order_seat(agora, f"buyer-{uuid.uuid4().hex[:8]}", session_id, "main-I-6", None)
        later = held(agora, session_id, "main-I-6")
        resumed: list[int] = []
        with socket(agora, f"{path}?since={final['version']}") as back:
            for message in frames(back):
                assert message["type"] == "deltas", "this close behind, no snapshot"
                resumed.extend(delta["version"] for delta in message["deltas"])
                if resumed[-1] >= later["version"]:
                    break
        assert resumed == list(range(final["version"] + 1, later["version"] + 1))
