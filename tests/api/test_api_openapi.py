"""The OpenAPI document against the API's real answers: every error a problem, the refusals
the middlewares add listed, security only where a user is needed; and the interactive docs
served with no asset from elsewhere."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from agora.problems import PROBLEM_JSON
from agora.runtime.runtime import build_gateway
from conftest import settings

pytestmark = pytest.mark.asyncio(loop_scope="module")

PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}


async def document(api: Any) -> dict[str, Any]:
    response = await api.client.get("/openapi.json")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, items in doc["paths"].items():
        for method, operation in items.items():
            yield method.upper(), path, operation


def concrete(path: str) -> str:
    """`path` with every parameter filled in (with ids that name nothing)."""
    return re.sub(r"\{[^}]+\}", "no-such-thing", path)


def assert_documented(operation: dict[str, Any], response: httpx.Response, what: str) -> None:
    status = str(response.status_code)
    assert status in operation["responses"], (what, status, response.text)
    if response.status_code >= 400:
        documented = operation["responses"][status]["content"]
        assert set(documented) == {PROBLEM_JSON}, (what, status)
        assert response.headers["content-type"].startswith(PROBLEM_JSON), (what, response.text)


async def test_every_error_is_documented_as_a_problem(api: Any) -> None:
    doc = await document(api)
    assert doc["components"]["schemas"]["Problem"]["required"] == [
        "type",
        "title",
        "status",
        "detail",
    ]
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    for method, path, operation in operations(doc):
        for status, response in operation["responses"].items():
            if int(status) >= 400:
                assert response["content"] == {PROBLEM_JSON: {"schema": PROBLEM_REF}}, (
                    method,
                    path,
                    status,
                )


async def test_the_refusals_of_the_middlewares_are_listed(api: Any) -> None:
    for method, path, operation in operations(await document(api)):
        if "requestBody" in operation:
            assert {"400", "413", "415", "422"} <= set(operation["responses"]), (method, path)
        if path.startswith("/api/"):
            assert "429" in operation["responses"], (method, path)


async def test_security_is_marked_exactly_where_a_user_is_needed(api: Any) -> None:
    for method, path, operation in operations(await document(api)):
        anonymous = await api.client.request(method, concrete(path))
        stale = await api.client.request(
            method, concrete(path), headers={"Authorization": "Bearer not.a.jwt"}
        )
        if operation.get("security"):
            assert operation["security"] == [{"bearer": []}], (method, path)
            api.problem(anonymous, 401, "authentication-required")
            api.problem(stale, 401, "invalid-token")
            assert "401" in operation["responses"], (method, path)
        else:
            assert anonymous.status_code != 401, (method, path, anonymous.text)
            assert stale.status_code == anonymous.status_code, (method, path, stale.text)
        assert_documented(operation, anonymous, f"{method} {path} anonymous")
        assert_documented(operation, stale, f"{method} {path} with a stale token")


# Bodies no route accepts, with their Content-Type.
INVALID_BODIES: dict[str, tuple[bytes | None, str | None]] = {
    "malformed JSON": (b"{", "application/json"),
    "not JSON": (b"a=1", "text/plain"),
    "no body": (None, None),
    "too large": (b"[" + b"1," * 600_000 + b"1]", "application/json"),
}


async def test_invalid_requests_answer_what_is_documented(api: Any) -> None:
    admin = await api.admin()
    for method, path, operation in operations(await document(api)):
        what = f"{method} {path}"
        url = concrete(path)
        if "requestBody" in operation:
            for name, (content, content_type) in INVALID_BODIES.items():
                headers = {**admin, **({"Content-Type": content_type} if content_type else {})}
                response = await api.client.request(method, url, headers=headers, content=content)
                assert_documented(operation, response, f"{what}, {name}")
        for parameter in operation.get("parameters", []):
            if parameter["in"] == "query":
                response = await api.client.request(
                    method, url, params={parameter["name"]: "\x00" * 300}, headers=admin
                )
                assert_documented(operation, response, f"{what}, bad {parameter['name']}")
        response = await api.client.request(method, url, headers=admin)
        assert_documented(operation, response, f"{what}, ids that name nothing")


async def test_an_order_needs_an_idempotency_key(api: Any) -> None:
    operation = (await document(api))["paths"]["/api/orders"]["post"]
    (key,) = [p for p in operation["parameters"] if p["name"] == "Idempotency-Key"]
    assert key["in"] == "header"
    assert key["required"] is True
    response = await api.client.post(
        "/api/orders",
        json={"items": [{"product_id": api.product, "quantity": 1}]},
        headers=await api.auth("openapi-buyer"),
    )
    api.problem(response, 400, "idempotency-key-missing")
    assert_documented(operation, response, "POST /api/orders without a key")


# -- the interactive docs --------------------------------------------------------------------


ASSET = re.compile(r"""(?:src|href|spec-url)="([^"]+)"|url: '([^']+)'""")


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_the_docs_load_only_local_assets(api: Any, page: str) -> None:
    response = await api.client.get(page)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    urls = [first or second for first, second in ASSET.findall(response.text)]
    assert len(urls) >= 3, urls  # a script, the favicon, the document
    for url in urls:
        assert url.startswith("/"), (page, url)
        assert not url.startswith("//"), (page, url)
        asset = await api.client.get(url)
        assert asset.status_code == 200, (page, url)
        assert asset.content, (page, url)
    assert not re.search(r"https?://", response.text), "the page names another host"


async def test_the_gateway_serves_the_same_document_and_docs(api: Any, tmp_path: Path) -> None:
    gateway = build_gateway(
        settings(tmp_path).model_copy(
            update={"behind_proxy": True, "upstreams": {"identity": ["http://nowhere"]}}
        )
    )
    transport = httpx.ASGITransport(app=gateway)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        assert (await client.get("/openapi.json")).json() == await document(api)
        page = await client.get("/docs")
        assert page.status_code == 200, page.text
        (script,) = re.findall(r'<script src="([^"]+)"', page.text)
        assert (await client.get(script)).status_code == 200
