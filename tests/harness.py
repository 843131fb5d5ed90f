"""A real `agora up` in a child process, and ways to wait on it: shared by e2e-style tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from agora.runtime.supervisor import LOOPBACK, free_port

T = TypeVar("T")

PASSWORD = "correct horse battery staple"

FINAL = {"CONFIRMED", "CANCELLED", "EXPIRED"}


def eventually(
    probe: Callable[[], T | None], *, timeout: float = 20.0, interval: float = 0.02, what: str = ""
) -> T:
    """Poll `probe` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or probe}: last {last!r}")


Metrics = dict[str, list[tuple[dict[str, str], float]]]
"""Prometheus samples by family: (labels, value) each."""


def parse_metrics(text: str) -> Metrics:
    return {
        family.name: [(sample.labels, sample.value) for sample in family.samples]
        for family in text_string_to_metric_families(text)
    }


class AgoraProcess:
    """`agora up` in a child process, on its own port and data folder."""

    def __init__(
        self, data_dir: Path, *, seed: list[dict[str, Any]], env: dict[str, str] | None = None
    ) -> None:
        self.data_dir = data_dir
        self.port = free_port(LOOPBACK)
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.seed = seed
        self.env = env or {}
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir.parent / f"{data_dir.name}-agora.log"
        self.client = httpx.Client(base_url=self.base_url, timeout=30)
        self._sessions: dict[str, dict[str, str]] = {}
        self._user_ids: dict[str, str] = {}
        self._buyers: dict[str, str] = {}  # order id -> the test's name of its buyer

    def start(self) -> AgoraProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        seed_path = self.data_dir.parent / f"{self.data_dir.name}-seed.json"
        seed_path.write_bytes(orjson.dumps(self.seed))
        # Tests place orders as fast as they can from one address: limits are tested apart.
        env = {**os.environ, "AGORA_LOG_LEVEL": "WARNING", "AGORA_RATE_LIMITS": "false", **self.env}
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "agora",
                    "up",
                    "--data-dir",
                    str(self.data_dir),
                    "--port",
                    str(self.port),
                    "--seed",
                    str(seed_path),
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        # One process per service on the servers topology (fifteen with two replicas): Python
        # interpreters start and Kafka groups settle their members, all on two cores.
        eventually(self._ready, timeout=300, interval=0.2, what=f"agora up on {self.base_url}")
        return self

    def _ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"agora up exited with {self.process.returncode}:\n{self.log()}")
        try:
            response = self.client.get("/api/products", params={"page_size": 100})
            if response.status_code != 200:  # the gateway is up before a service: 503
                return False
            listed = {item["id"] for item in response.json()["items"]}
            return {p["id"] for p in self.seed} <= listed and self.settled()
        except httpx.TransportError:
            return False

    def metrics(self) -> Metrics:
        return parse_metrics(self.client.get("/metrics").text)

    def settled(self) -> bool:
        """Nothing in flight: every outbox published, every consumer group caught up."""
        health = self.client.get("/healthz").json()
        return bool(health["status"] == "ok" and health["settled"])

    def run_check(self, *options: str) -> tuple[int, dict[str, Any]]:
        """`agora check --json OPTIONS` on this deployment: its exit status and its verdicts
        (`{"ok": ..., "invariants": [{"name", "scope", "ok", "detail", "offenders"}]}`)."""
        done = subprocess.run(
            [
                *(sys.executable, "-m", "agora", "check", "--json"),
                *("--data-dir", str(self.data_dir), *options),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env={**os.environ, **self.env},
        )
        assert done.stdout.strip(), f"agora check printed nothing: {done.stderr}"
        return done.returncode, orjson.loads(done.stdout)

    def check(self, *, timeout: float = 60) -> dict[str, Any]:
        """Every invariant of `agora check` holds once this deployment has settled (outboxes
        published, consumers caught up, refunds owed made), every final order included in the
        checks across services; returns the verdicts."""
        last: dict[str, Any] = {}

        def passed() -> dict[str, Any] | None:
            status, last["result"] = self.run_check("--settle-seconds", "0")
            return last["result"] if status == 0 and last["result"]["ok"] else None

        try:
            return eventually(passed, timeout=timeout, interval=0.5, what="agora check")
        except AssertionError:
            violated = [i for i in last["result"]["invariants"] if not i["ok"]]
            raise AssertionError(f"agora check, after {timeout} s: {violated}") from None

    def ledger_check(self) -> dict[str, Any]:
        """`agora ledger check --json` on this deployment holds, at once: each posting commits
        with the payment state it records, so there is nothing to wait for."""
        done = subprocess.run(
            [
                *(sys.executable, "-m", "agora", "ledger", "check", "--json"),
                *("--data-dir", str(self.data_dir)),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env={**os.environ, **self.env},
        )
        assert done.stdout.strip(), f"agora ledger check printed nothing: {done.stderr}"
        result: dict[str, Any] = orjson.loads(done.stdout)
        violated = [i for i in result["invariants"] if not i["ok"]]
        assert result["ok"], f"agora ledger check: {violated}"
        assert done.returncode == 0, done.stderr
        return result

    def kill(self) -> None:
        """kill -9: no shutdown, no flush."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        self.client.close()
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:]

    # -- accounts ------------------------------------------------------------------------

    def headers(self, customer: str) -> dict[str, str]:
        """The Authorization of the buyer named `customer` in this test (registered and logged
        in on first use, over HTTP)."""
        if customer not in self._sessions:
            email = (
                customer if "@" in customer else f"{customer}-{uuid.uuid4().hex[:8]}@example.test"
            )
            registered = self.client.post(
                "/api/auth/register",
                json={"email": email, "password": PASSWORD, "role": "buyer"},
            )
            assert registered.status_code == 202, registered.text
            self._sessions[customer] = self._log_in(email)
            me = self.client.get("/api/auth/me", headers=self._sessions[customer])
            assert me.status_code == 200, me.text
            self._user_ids[customer] = me.json()["id"]
        return self._sessions[customer]

    def user_id(self, customer: str) -> str:
        self.headers(customer)
        return self._user_ids[customer]

    def _log_in(self, email: str) -> dict[str, str]:
        response = self.client.post("/api/auth/login", json={"email": email, "password": PASSWORD})
        assert response.status_code == 200, response.text
        return {"Authorization": f"Bearer {response.json()['access_token']}"}

    @property
    def admin(self) -> dict[str, str]:
        """An admin's Authorization: the admin made with `agora users create-admin`."""
        if "admin" not in self._sessions:
            email = f"admin-{uuid.uuid4().hex[:8]}@example.test"
            created = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "agora",
                    "users",
                    "create-admin",
                    "--email",
                    email,
                    "--password-stdin",
                    "--data-dir",
                    str(self.data_dir),
                ],
                input=PASSWORD.encode(),
                env={**os.environ, **self.env},
                capture_output=True,
                timeout=60,
            )
            assert created.returncode == 0, created.stderr.decode()
            self._sessions["admin"] = self._log_in(email)
        return self._sessions["admin"]

    # -- the API, as a buyer uses it --------------------------------------------------------

    def place(
        self,
        items: list[tuple[str, int]],
        *,
        token: str | None = "tok_visa",
        customer: str = "buyer",
        key: str | None = None,
    ) -> httpx.Response:
        body: dict[str, Any] = {
            "items": [{"product_id": p, "quantity": q} for p, q in items],
            "payment_token": token,
        }
        response = self.client.post(
            "/api/orders",
            json=body,
            headers={"Idempotency-Key": key or str(uuid.uuid4()), **self.headers(customer)},
        )
        if response.status_code == 202:
            self._buyers[response.json()["id"]] = customer
        return response

    def order(self, order_id: str) -> dict[str, Any]:
        """The order, read by its buyer (or an admin, for orders placed otherwise)."""
        buyer = self._buyers.get(order_id)
        headers = self.headers(buyer) if buyer else self.admin
        response = self.client.get(f"/api/orders/{order_id}", headers=headers)
        assert response.status_code == 200, response.text
        return dict(response.json())

    def wait_status(self, order_id: str, *statuses: str, timeout: float = 20) -> dict[str, Any]:
        wanted = set(statuses) or FINAL

        def settled() -> dict[str, Any] | None:
            order = self.order(order_id)
            return order if order["status"] in wanted else None

        return eventually(settled, timeout=timeout, what=f"order {order_id} in {wanted}")

    def stock(self, product_id: str) -> dict[str, int]:
        response = self.client.get(f"/api/stock/{product_id}", headers=self.admin)
        assert response.status_code == 200, response.text
        return dict(response.json())

    def messages(self, customer: str) -> list[dict[str, Any]]:
        response = self.client.get(
            "/api/notifications", params={"page_size": 100}, headers=self.headers(customer)
        )
        assert response.status_code == 200, response.text
        return list(response.json()["items"])


def product(product_id: str, stock: int, price: str = "10.00") -> dict[str, Any]:
    return {
        "id": product_id,
        "name": product_id.replace("-", " ").title(),
        "price": price,
        "currency": "EUR",
        "stock": stock,
    }


def servers_env(request: pytest.FixtureRequest, replicas: int = 1) -> dict[str, str]:
    """Settings for `agora up` on PostgreSQL + Kafka + Redis (one process per service), with
    databases and topics of this run's own."""
    servers = request.getfixturevalue("servers")
    return {**servers.isolated_env("e2e"), "AGORA_REPLICAS": str(replicas)}
