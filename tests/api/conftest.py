"""In-process HTTP API tests: the embedded runtime on a temporary folder, driven by httpx.

`httpx.ASGITransport` sends no lifespan events, so the app's own lifespan (which would start the
runtime a second time and fail on the data folder's lock) never runs: the fixture starts and
stops the runtime itself, around the client.

One runtime serves a whole test module (its event loop is module scoped: test modules mark
themselves `pytest.mark.asyncio(loop_scope="module")`); tests keep apart by using their own
customer ids and idempotency keys.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import pytest_asyncio
from accounts import Session, admin_session, register_and_login
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select
from sqlalchemy.sql import ColumnElement

from agora.runtime.runtime import Runtime, Service
from agora.services.catalog.seed import DEMO_CATALOG
from agora.services.orders import store
from agora.services.orders.domain import Order
from agora.settings import Settings

T = TypeVar("T")

PROBLEM_JSON = "application/problem+json"
PRODUCT = DEMO_CATALOG[0].id  # espresso-beans, the most stocked
PRODUCT_PRICE = DEMO_CATALOG[0].price
READINESS_KEY = "readiness-probe"
READINESS_CUSTOMER = "readiness-probe"


def settings(data_dir: Path) -> Settings:
    """Every setting explicit, so that no AGORA_* variable of the environment leaks in."""
    return Settings(
        data_dir=data_dir,
        seed_file=None,
        smtp_host=None,
        hold_seconds=600,
        idempotency_in_flight_seconds=30,
        partitions=2,
        consumers_per_group=2,
        retry_attempts=3,
        retry_first_delay=0.01,
        retry_max_delay=0.1,
        rate_limits=False,  # tests/api/test_api_edge.py turns them on
        payout_holding_days=0,  # a sale is available at once (unit tests hold it)
    )


@dataclasses.dataclass
class Api:
    runtime: Runtime
    app: FastAPI
    client: httpx.AsyncClient
    sessions: dict[str, Session] = dataclasses.field(default_factory=dict)
    registering: asyncio.Lock = dataclasses.field(default_factory=asyncio.Lock)

    product = PRODUCT
    product_price = PRODUCT_PRICE

    @staticmethod
    def new_key() -> str:
        return f"key-{uuid.uuid4()}"

    @staticmethod
    def new_customer() -> str:
        return f"cust-{uuid.uuid4().hex[:12]}"

    # -- accounts ------------------------------------------------------------------------

    async def session(self, customer: str) -> Session:
        """The buyer a test calls `customer`: registered and logged in on first use."""
        async with self.registering:
            if customer not in self.sessions:
                self.sessions[customer] = await register_and_login(
                    self.client, email=f"{customer}@example.test"
                )
            return self.sessions[customer]

    async def auth(self, customer: str) -> dict[str, str]:
        return (await self.session(customer)).headers

    async def user_id(self, customer: str) -> str:
        return (await self.session(customer)).user_id

    async def admin(self) -> dict[str, str]:
        async with self.registering:
            if "admin" not in self.sessions:
                self.sessions["admin"] = await admin_session(self.client, self.runtime)
            return self.sessions["admin"].headers

    # -- waiting -------------------------------------------------------------------------

    @staticmethod
    async def eventually(
        probe: Callable[[], Awaitable[T | None]], *, what: str, timeout: float = 15.0
    ) -> T:
        """Poll `probe` until it returns something truthy; fail after `timeout` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        last: T | None = None
        while loop.time() < deadline:
            last = await probe()
            if last:
                return last
            await asyncio.sleep(0.02)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}: last {last!r}")

    async def wait_ready(self) -> None:
        """Catalog listed and stocked, and orders learned the prices (from catalog events)."""

        async def stocked() -> bool:
            response = await self.client.get("/api/products")
            items = response.json()["items"] if response.status_code == 200 else []
            return len(items) == len(DEMO_CATALOG) and all(p["available"] > 0 for p in items)

        await self.eventually(stocked, what="the catalog stocked")

        async def orderable() -> str | None:
            response = await self.place(
                READINESS_CUSTOMER, [(PRODUCT, 1)], key=READINESS_KEY, token=None
            )
            return str(response.json()["id"]) if response.status_code == 202 else None

        order_id = await self.eventually(orderable, what="orders to know the prices")
        # Placed without a token, the probe order rests RESERVED: orders emits nothing more.
        await self.wait_status(order_id, "RESERVED")
        await self.eventually(self._outbox_drained, what="the orders outbox drained")

    async def _outbox_drained(self) -> bool:
        return await self.outbox_backlog() == 0

    async def wait_status(self, order_id: str, *statuses: str) -> dict[str, Any]:
        async def reached() -> dict[str, Any] | None:
            response = await self.client.get(f"/api/orders/{order_id}", headers=await self.admin())
            assert response.status_code == 200, response.text
            body: dict[str, Any] = response.json()
            return body if body["status"] in statuses else None

        return await self.eventually(reached, what=f"order {order_id} in {statuses}")

    # -- requests ------------------------------------------------------------------------

    async def place(
        self,
        customer_id: str,
        items: list[tuple[str, int]],
        *,
        key: str | None = None,
        token: str | None = None,
        prefer: str | None = None,
    ) -> httpx.Response:
        body: dict[str, Any] = {
            "items": [{"product_id": p, "quantity": q} for p, q in items],
        }
        if token is not None:
            body["payment_token"] = token
        headers = {"Idempotency-Key": key or self.new_key(), **await self.auth(customer_id)}
        if prefer is not None:
            headers["Prefer"] = prefer
        return await self.client.post("/api/orders", json=body, headers=headers)

    # -- the orders service's own database -------------------------------------------------

    @property
    def orders_service(self) -> Service:
        (service,) = [s for s in self.runtime.services if s.name == "orders"]
        return service

    async def count_rows(self, table_name: str, *where: ColumnElement[bool]) -> int:
        table = self.orders_service.platform.db.metadata.tables[table_name]
        async with self.orders_service.platform.db.read() as conn:
            query = select(func.count()).select_from(table)
            for condition in where:
                query = query.where(condition)
            return int(await conn.scalar(query) or 0)

    def _table_column(self, table_name: str, column: str) -> Any:
        return self.orders_service.platform.db.metadata.tables[table_name].c[column]

    async def orders_of(self, customer: str) -> int:
        return await self.count_rows(
            "orders", self._table_column("orders", "customer_id") == await self.user_id(customer)
        )

    async def key_rows(self, key: str) -> int:
        return await self.count_rows(
            "idempotency_keys", self._table_column("idempotency_keys", "key") == key
        )

    async def outbox_rows(self, key: str | None = None) -> int:
        """Outbox rows (published or not) of the orders service, or of one order."""
        where = [] if key is None else [self._table_column("outbox", "key") == key]
        return await self.count_rows("outbox", *where)

    async def outbox_backlog(self) -> int:
        return await self.orders_service.platform.outbox_backlog()

    async def load_order(self, order_id: str) -> Order | None:
        async with self.orders_service.platform.db.read() as conn:
            found = await store.load_orders(conn, [order_id])
        return found[0] if found else None

    # -- responses -----------------------------------------------------------------------

    @staticmethod
    def problem(response: httpx.Response, status: int, slug: str | None = None) -> dict[str, Any]:
        """Assert `response` is an RFC 9457 problem of `status` (and type `/problems/<slug>`)."""
        assert response.status_code == status, response.text
        assert response.headers["content-type"].startswith(PROBLEM_JSON), response.headers
        body: dict[str, Any] = response.json()
        assert body["status"] == status
        assert isinstance(body["type"], str)
        assert body["type"].startswith("/problems/")
        assert isinstance(body["title"], str)
        assert body["title"]
        assert isinstance(body["detail"], str)
        assert body["detail"]
        if slug is not None:
            assert body["type"] == f"/problems/{slug}", body
        return body

    async def metrics(self) -> dict[str, list[tuple[dict[str, str], float]]]:
        response = await self.client.get("/metrics")
        assert response.status_code == 200, response.text
        return {
            family.name: [(sample.labels, sample.value) for sample in family.samples]
            for family in text_string_to_metric_families(response.text)
        }


@pytest.fixture
def runtime_settings(tmp_path: Path) -> Settings:
    """Settings of a runtime on this test's own folder."""
    return settings(tmp_path / "agora")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def api(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Api]:
    runtime = Runtime(settings(tmp_path_factory.mktemp("agora")))
    app = runtime.app()
    await runtime.start()
    try:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            api = Api(runtime, app, client)
            await api.wait_ready()
            yield api
    finally:
        await runtime.stop()
