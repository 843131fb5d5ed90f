"""The API's description, documentation, liveness and Prometheus metrics."""

from __future__ import annotations

from typing import Any

import pytest

from agora.services.registry import SERVICE_NAMES

pytestmark = pytest.mark.asyncio(loop_scope="module")

SERVICES = SERVICE_NAMES


async def test_openapi_lists_every_service_path(api: Any) -> None:
    response = await api.client.get("/openapi.json")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    spec = response.json()
    assert spec["openapi"].startswith("3.")
    paths = spec["paths"]
    expected = {
        "/api/orders": {"post"},
        "/api/orders/{order_id}": {"get"},
        "/api/orders/{order_id}/pay": {"post"},
        "/api/orders/{order_id}/timeline": {"get"},
        "/api/products": {"get"},
        "/api/products/{product_id}": {"get"},
        "/api/stock/{product_id}": {"get"},
        "/api/payments/{order_id}": {"get"},
        "/api/notifications": {"get"},
        "/healthz": {"get"},
        "/readyz": {"get"},
        "/metrics": {"get"},
    }
    for path, methods in expected.items():
        assert path in paths, sorted(paths)
        assert methods <= set(paths[path]), (path, sorted(paths[path]))


async def test_openapi_documents_the_idempotency_key_and_problems(api: Any) -> None:
    place = (await api.client.get("/openapi.json")).json()["paths"]["/api/orders"]["post"]
    headers = {p["name"] for p in place["parameters"] if p["in"] == "header"}
    assert "Idempotency-Key" in headers
    for status in ("400", "409", "422"):
        assert "application/problem+json" in place["responses"][status]["content"]


async def test_docs_answer_html(api: Any) -> None:
    response = await api.client.get("/docs")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "/openapi.json" in response.text


async def test_healthz_reports_work_in_flight(api: Any) -> None:
    response = await api.client.get("/healthz")
    assert response.status_code == 200
    health = response.json()
    assert health["status"] == "ok"
    assert health["outbox_backlog"] >= 0
    assert health["consumer_lag"] >= 0
    assert health["settled"] == (health["outbox_backlog"] == 0 and health["consumer_lag"] == 0)


async def test_readyz_is_ready_while_every_dependency_answers(api: Any) -> None:
    response = await api.client.get("/readyz")
    assert response.status_code == 200, response.text
    assert response.json() == {"ready": True, "unavailable": []}
    described = (await api.client.get("/openapi.json")).json()["paths"]["/readyz"]["get"]
    assert "application/problem+json" in described["responses"]["503"]["content"]


async def test_metrics_expose_orders_outbox_lag_and_dead_letters(api: Any) -> None:
    """The readiness probe order has flowed through catalog, orders and inventory by now."""

    async def labelled() -> dict[str, list[tuple[dict[str, str], float]]] | None:
        metrics = await api.metrics()
        wanted = ("agora_orders", "agora_outbox_backlog", "agora_consumer_lag")
        return metrics if all(metrics.get(name) for name in wanted) else None

    metrics = await api.eventually(labelled, what="labelled metric series")

    assert "agora_dead_letters" in metrics
    orders = {labels["status"]: value for labels, value in metrics["agora_orders"]}
    assert set(orders) == {"PENDING", "RESERVED", "CONFIRMED", "CANCELLED", "EXPIRED"}
    assert orders["RESERVED"] >= 1  # the readiness probe
    backlog = {labels["service"] for labels, _ in metrics["agora_outbox_backlog"]}
    assert backlog == set(SERVICES)
    groups = {labels["group"] for labels, _ in metrics["agora_consumer_lag"]}
    assert {"orders", "inventory", "catalog"} <= groups
    assert all(value >= 0 for _, value in metrics["agora_consumer_lag"])


async def test_metrics_count_orders_by_status(api: Any) -> None:
    before = {labels["status"]: value for labels, value in (await api.metrics())["agora_orders"]}
    response = await api.place(api.new_customer(), [(api.product, 1)])
    assert response.status_code == 202, response.text
    await api.wait_status(response.json()["id"], "RESERVED")

    after = {labels["status"]: value for labels, value in (await api.metrics())["agora_orders"]}

    assert sum(after.values()) == sum(before.values()) + 1
    assert after["RESERVED"] == before["RESERVED"] + 1


async def test_metrics_count_http_requests(api: Any) -> None:
    await api.client.get("/api/orders/no-such-order", headers=await api.admin())
    metrics = await api.metrics()
    samples = [
        (labels, value)
        for labels, value in metrics["agora_http_requests"]
        if labels.get("route") == "/api/orders/{order_id}" and labels.get("status") == "404"
    ]
    assert samples
    assert samples[0][1] >= 1
