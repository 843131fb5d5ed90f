"""Requests that are wrong before any route reads them: characters a database refuses, bodies
that are not JSON (or not said to be), request ids that are not text, methods a path does not
serve. Each is a 4xx problem; and even a server error carries the entry's security headers."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import APIRouter
from pydantic import BaseModel

pytestmark = pytest.mark.asyncio(loop_scope="module")

TEST_ROUTES = "/api/test-only"


class Note(BaseModel):
    text: str


def extra_routes() -> APIRouter:
    """Routes the product does not have, to reach what no route of it should: an unhandled
    error, and a body that may be left out."""
    router = APIRouter(prefix=TEST_ROUTES)

    @router.get("/crash")
    async def crash() -> None:
        raise RuntimeError("a bug, on purpose")

    @router.post("/optional-body")
    async def optional_body(note: Note | None = None) -> dict[str, str | None]:
        return {"text": None if note is None else note.text}

    return router


@pytest.fixture(scope="module")
def routed(api: Any) -> Any:
    api.app.include_router(extra_routes())
    return api


@pytest.mark.parametrize(
    "path",
    [
        "/api/products/%00",
        "/api/products/a%00b/reviews",
        "/api/stores?seller=%00",
        "/api/products?q=espresso%00",
        "/api/orders?status=%00&page=1",
    ],
)
async def test_a_nul_character_in_the_url_is_refused(api: Any, path: str) -> None:
    response = await api.client.get(path, headers=await api.admin())
    problem = api.problem(response, 400, "invalid-character")
    assert "NUL" in problem["detail"]
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_other_percent_escapes_still_reach_the_route(api: Any) -> None:
    response = await api.client.get("/api/products/no%20such%2Fthing")
    api.problem(response, 404)
    response = await api.client.get("/api/stores?seller=%41%30")
    assert response.status_code == 200, response.text


MALFORMED_BODIES = {
    "not-utf-8": b'{"items": [{"product_id": "\xff\xfe", "quantity": 1}]}',
    "latin-1": '{"items": [{"product_id": "caf\u00e9", "quantity": 1}]}'.encode("latin-1"),
    "nested-thousands-deep": b"[" * 5000 + b"]" * 5000,
    "object-nested-thousands-deep": b'{"a":' * 5000 + b"1" + b"}" * 5000,
}


@pytest.mark.parametrize("case", sorted(MALFORMED_BODIES))
async def test_a_body_that_cannot_be_read_as_json_is_malformed_json(api: Any, case: str) -> None:
    customer, key = api.new_customer(), api.new_key()
    response = await api.client.post(
        "/api/orders",
        content=MALFORMED_BODIES[case],
        headers={
            "Idempotency-Key": key,
            "Content-Type": "application/json",
            **await api.auth(customer),
        },
    )
    api.problem(response, 400, "malformed-json")
    assert await api.orders_of(customer) == 0
    assert await api.key_rows(key) == 0


NOT_JSON_TYPES = {
    "text-plain": {"Content-Type": "text/plain"},
    "form-encoded": {"Content-Type": "application/x-www-form-urlencoded"},
    "xml": {"Content-Type": "application/xml"},
    "absent": {},
}


@pytest.mark.parametrize("case", sorted(NOT_JSON_TYPES))
async def test_json_not_said_to_be_json_is_an_unsupported_media_type(api: Any, case: str) -> None:
    customer, key = api.new_customer(), api.new_key()
    body = b'{"items": [{"product_id": "%s", "quantity": 1}]}' % api.product.encode()
    response = await api.client.post(
        "/api/orders",
        content=body,
        headers={"Idempotency-Key": key, **NOT_JSON_TYPES[case], **await api.auth(customer)},
    )
    problem = api.problem(response, 415, "unsupported-media-type")
    assert "application/json" in problem["detail"]
    assert response.headers["accept-post"] == "application/json"
    assert await api.orders_of(customer) == 0
    assert await api.key_rows(key) == 0


async def test_a_patch_in_another_type_names_the_type_in_accept_patch(api: Any) -> None:
    response = await api.client.patch(
        f"/api/products/{api.product}",
        content=b'{"name": "renamed"}',
        headers={"Content-Type": "text/plain", **await api.admin()},
    )
    api.problem(response, 415, "unsupported-media-type")
    assert response.headers["accept-patch"] == "application/json"
    assert "accept-post" not in response.headers


async def test_a_json_type_with_parameters_or_a_suffix_is_json(api: Any) -> None:
    for content_type in ("application/json; charset=utf-8", "application/merge-patch+json"):
        response = await api.client.patch(
            f"/api/products/{api.product}",
            content=b'{"no_such_field": 1}',
            headers={"Content-Type": content_type, **await api.admin()},
        )
        api.problem(response, 422, "validation-error")


async def test_an_empty_body_without_a_type_still_works_where_no_body_is_needed(
    routed: Any,
) -> None:
    response = await routed.client.post(f"{TEST_ROUTES}/optional-body")
    assert response.status_code == 200, response.text
    assert response.json() == {"text": None}
    response = await routed.client.post(
        f"{TEST_ROUTES}/optional-body", content=b'{"text": "hi"}', headers={"Content-Type": ""}
    )
    api_problem = routed.problem(response, 415, "unsupported-media-type")
    assert api_problem["status"] == 415
    response = await routed.client.post(f"{TEST_ROUTES}/optional-body", json={"text": "hi"})
    assert response.json() == {"text": "hi"}

    session = await routed.session(routed.new_customer())
    response = await routed.client.post("/api/auth/logout", headers=session.headers)
    assert response.status_code == 204, response.text


@pytest.mark.parametrize(
    "request_id",
    [b"\xff\xfe", b"caf\xc3\xa9", b"ok-prefix\x80", b"x" * 129, b"with space"],
    ids=["not-utf-8", "utf-8-not-ascii", "trailing-byte", "too-long", "space"],
)
async def test_an_unusable_request_id_is_replaced(api: Any, request_id: bytes) -> None:
    response = await api.client.get("/api/products", headers=[(b"X-Request-Id", request_id)])
    assert response.status_code == 200, response.text
    replaced = response.headers["x-request-id"]
    assert replaced.encode() != request_id
    assert len(replaced) >= 16


async def test_a_usable_request_id_is_kept(api: Any) -> None:
    response = await api.client.get("/api/products", headers={"X-Request-Id": "trace-42.a:b"})
    assert response.headers["x-request-id"] == "trace-42.a:b"


async def test_a_server_error_carries_the_security_headers(routed: Any) -> None:
    response = await routed.client.get(
        f"{TEST_ROUTES}/crash", headers={"X-Request-Id": "crash-trace-1"}
    )
    routed.problem(response, 500, "internal-error")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["strict-transport-security"].startswith("max-age=")
    assert "default-src 'none'" in response.headers["content-security-policy"]
    assert response.headers["x-request-id"] == "crash-trace-1"


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("DELETE", "/api/orders", {"GET", "POST"}),
        ("PUT", "/api/products/espresso-beans", {"GET", "PATCH", "DELETE"}),
        ("DELETE", "/api/stores", {"GET", "POST"}),
        ("POST", "/healthz", {"GET"}),
    ],
)
async def test_a_405_allows_every_method_the_path_serves(
    api: Any, method: str, path: str, allowed: set[str]
) -> None:
    response = await api.client.request(method, path, headers=await api.admin())
    api.problem(response, 405, "method-not-allowed")
    assert {m.strip() for m in response.headers["allow"].split(",")} == allowed
