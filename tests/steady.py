"""A steady load of orders for the fault scenarios (tests/faults), and what they look at after a
fault: readiness and the dead letters."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import uuid
from typing import Any

import httpx
import orjson

from harness import FINAL, AgoraProcess, eventually

SETTLE = 120.0
"""Seconds within which every order must be final once the fault is over."""

PACE = 0.15
"""Seconds between two orders of the trickle."""


class Trickle:
    """A client placing one order every PACE seconds in a thread of its own. An order whose
    POST fails (no answer, or 5xx while the database is away) is sent again with the same
    Idempotency-Key until it is accepted, as a client should."""

    def __init__(self, agora: AgoraProcess, auth: dict[str, str]) -> None:
        self._agora = agora
        self._auth = auth
        self._stop = threading.Event()
        self.accepted: list[str] = []
        self.refused: dict[int, int] = {}
        self.last_refusal: dict[int, httpx.Response] = {}  # by status, 5xx and 4xx alike
        self.unavailable: dict[str, int] = {}
        """503 answers by problem type."""
        self.unexplained: list[str] = []
        """503 answers without a problem+json body or without Retry-After."""
        self._thread = threading.Thread(target=self._run, name="order trickle", daemon=True)

    def __enter__(self) -> Trickle:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    def _unavailable(self, response: httpx.Response) -> None:
        """Count a 503 by its problem type, or keep what makes it one a client cannot act on
        (not problem+json, no Retry-After)."""
        kind = response.headers.get("content-type", "")
        if not kind.startswith("application/problem+json") or "retry-after" not in response.headers:
            self.unexplained.append(f"{kind} {dict(response.headers)} {response.text[:200]}")
            return
        problem = str(response.json().get("type"))
        self.unavailable[problem] = self.unavailable.get(problem, 0) + 1

    def _run(self) -> None:
        with httpx.Client(base_url=self._agora.base_url, timeout=10) as client:
            while not self._stop.is_set():
                key = str(uuid.uuid4())
                body = {
                    "items": [{"product_id": "widget", "quantity": 1}],
                    "payment_token": "tok_visa",
                }
                while not self._stop.is_set():
                    try:
                        response = client.post(
                            "/api/orders", json=body, headers={"Idempotency-Key": key, **self._auth}
                        )
                    except httpx.TransportError:
                        self.refused[0] = self.refused.get(0, 0) + 1
                    else:
                        if response.status_code == 202:
                            self.accepted.append(response.json()["id"])
                            break
                        self.refused[response.status_code] = (
                            self.refused.get(response.status_code, 0) + 1
                        )
                        self.last_refusal[response.status_code] = response
                        if response.status_code == 503:
                            self._unavailable(response)
                    self._stop.wait(PACE)  # a client's pause before it tries again
                self._stop.wait(PACE)  # the trickle's pace


def assert_told_to_retry(trickle: Trickle) -> None:
    """Every refusal the trickle met was 503 problem+json with Retry-After, or 409 (its own
    key's first request still in flight): never a 500, nor a 4xx that blames the request."""
    assert set(trickle.refused) <= {409, 503}, trickle.refused
    assert trickle.unexplained == [], trickle.unexplained


def readiness(agora: AgoraProcess) -> httpx.Response:
    return agora.client.get("/readyz", timeout=15)


def dead_letters(agora: AgoraProcess) -> list[dict[str, Any]]:
    listed = subprocess.run(
        [sys.executable, "-m", "agora", "dlt", "list", "--json", "--data-dir", str(agora.data_dir)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        env={**os.environ, **agora.env},
    )
    return [orjson.loads(line) for line in listed.stdout.splitlines() if line.strip()]


def assert_every_order_confirmed(
    agora: AgoraProcess, orders: list[str], *, settle: float = SETTLE
) -> None:
    """Every order of the trickle final within `settle` seconds and confirmed (valid card, stock
    to spare, a hold of minutes), nothing dead-lettered, and every invariant of `agora check`
    holding: each confirmed order paid once, no order charged without being confirmed, stock
    conserved, every outbox published."""

    def all_final() -> dict[str, str] | None:
        statuses = {order_id: agora.order(order_id)["status"] for order_id in orders}
        return statuses if set(statuses.values()) <= FINAL else None

    statuses = eventually(all_final, timeout=settle, interval=1.0, what="every order final")
    assert set(statuses.values()) == {"CONFIRMED"}, statuses
    letters = dead_letters(agora)
    assert letters == [], letters
    agora.check()
