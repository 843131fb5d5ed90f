"""Clients that stall us on a real `agora up` (uvicorn, over TCP): a request whose headers or body
come a byte at a time is answered 408 and closed within its bound, and `X-Forwarded-For` is
believed only from a configured proxy."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from harness import AgoraProcess, product

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

BOUND = 2.0  # seconds, both the header and the body timeout of the process under test
SLACK = 3.0  # what the bound may be overrun by on two busy cores


@pytest.fixture(scope="module")
def agora(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgoraProcess]:
    process = AgoraProcess(
        tmp_path_factory.mktemp("slow") / "data",
        seed=[product("widget", 10)],
        env={
            "AGORA_REQUEST_HEADER_TIMEOUT_SECONDS": str(BOUND),
            "AGORA_REQUEST_BODY_TIMEOUT_SECONDS": str(BOUND),
            "AGORA_LOGIN_FAILURES_PER_IP": "3",
        },
    ).start()
    yield process
    process.stop()


def trickle(
    agora: AgoraProcess, head: bytes, then: Callable[[int], bytes], limit: float = 30.0
) -> tuple[float, bytes]:
    """Send `head`, then `then(n)` once a second until the server answers or closes; return
    how long that took and what it answered."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", agora.port), timeout=limit) as sock:
        sock.sendall(head)
        sock.settimeout(1.0)
        answer = b""
        n = 0
        while time.monotonic() - started < limit:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                try:
                    sock.sendall(then(n))
                except (BrokenPipeError, ConnectionResetError):
                    break
                n += 1
                continue
            except ConnectionResetError:
                break
            if not chunk:
                break  # closed
            answer += chunk
        return time.monotonic() - started, answer


def problem_of(answer: bytes) -> tuple[bytes, dict[str, Any]]:
    head, _, body = answer.partition(b"\r\n\r\n")
    return head, json.loads(body)


def test_headers_sent_a_byte_a_second_are_answered_408_and_closed(agora: AgoraProcess) -> None:
    took, answer = trickle(
        agora, b"GET /api/products HTTP/1.1\r\nHost: agora\r\n", lambda n: b"X-Slow: 1\r\n"
    )

    assert took < BOUND + SLACK, took
    head, body = problem_of(answer)
    assert head.startswith(b"HTTP/1.1 408"), answer
    assert body["type"] == "/problems/request-timeout"


def test_a_body_sent_a_byte_a_second_is_answered_408_and_closed(agora: AgoraProcess) -> None:
    head = (
        b"POST /api/auth/login HTTP/1.1\r\nHost: agora\r\n"
        b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"
    )
    took, answer = trickle(agora, head, lambda n: b" ")

    assert took < BOUND + SLACK, took
    response_head, body = problem_of(answer)
    assert response_head.startswith(b"HTTP/1.1 408"), answer
    assert b"connection: close" in response_head.lower()
    assert body["type"] == "/problems/request-timeout"


def test_a_kept_alive_connection_is_not_cut_while_it_works(agora: AgoraProcess) -> None:
    """The header deadline runs from the end of each response: a client making request after
    request on one connection for longer than the bound is served throughout."""
    with httpx.Client(base_url=agora.base_url, timeout=10) as client:
        started = time.monotonic()
        while time.monotonic() - started < BOUND * 2:
            assert client.get("/healthz").status_code == 200


def test_x_forwarded_for_from_an_unconfigured_client_is_ignored(agora: AgoraProcess) -> None:
    """A local client naming a new address in every failed login is still throttled as the
    address it connects from (3 failures per client address here)."""
    statuses = []
    for n in range(4):
        response = agora.client.post(
            "/api/auth/login",
            json={"email": f"nobody-{n}@example.test", "password": "wrong password"},
            headers={"X-Forwarded-For": f"198.51.100.{n + 1}"},
        )
        statuses.append(response.status_code)
    assert statuses == [401, 401, 401, 429], statuses
