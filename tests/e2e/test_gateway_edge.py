"""The entry from outside on a real `agora up`: the embedded default's one process, and nginx in
front of every service on the servers. Headers and URLs no route can take, bodies
that are not JSON, stale tokens on public routes, `Allow`, the docs and the OpenAPI document."""

from __future__ import annotations

import re

import httpx
import pytest

from agora.auth.web import INVALID_TOKEN_DETAIL
from harness import AgoraProcess

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

PROBLEM_JSON = "application/problem+json"


def assert_problem(response: httpx.Response, status: int, slug: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    assert response.json()["type"] == f"/problems/{slug}"
    assert response.headers["x-content-type-options"] == "nosniff"


def test_a_non_ascii_header_is_forwarded(agora: AgoraProcess) -> None:
    response = agora.client.get("/api/products", headers={"User-Agent": "caf\xc3\xa9".encode()})
    assert response.status_code == 200, response.text


def test_a_request_id_that_is_not_utf8_is_replaced(agora: AgoraProcess) -> None:
    for path in ("/api/products", "/healthz", "/api/orders"):
        response = agora.client.get(path, headers={"X-Request-Id": b"caf\xc3\xa9\xff"})
        assert response.status_code < 500, response.text
        assert re.fullmatch(r"[A-Za-z0-9._:-]+", response.headers["x-request-id"])
        assert response.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize("url", ["/api/products/%00", "/api/stores?seller=%00"])
def test_a_nul_in_the_url_is_refused(agora: AgoraProcess, url: str) -> None:
    # nginx, the entry on servers, refuses a NUL in the path before any service sees it
    by_nginx = "AGORA_DATABASE_URL_TEMPLATE" in agora.env and "%00" in url.partition("?")[0]
    assert_problem(agora.client.get(url), 400, "bad-request" if by_nginx else "invalid-character")


def test_bodies_that_are_not_json_are_problems(agora: AgoraProcess) -> None:
    headers = {"Idempotency-Key": "e2e-not-json", **agora.headers("not-json")}
    deep = agora.client.post(
        "/api/orders",
        content=b"[" * 5000 + b"]" * 5000,
        headers={**headers, "Content-Type": "application/json"},
    )
    assert_problem(deep, 400, "malformed-json")
    text = agora.client.post(
        "/api/orders",
        content=b'{"items": [{"product_id": "widget", "quantity": 1}]}',
        headers={**headers, "Content-Type": "text/plain"},
    )
    assert_problem(text, 415, "unsupported-media-type")
    assert text.headers["accept-post"] == "application/json"


def test_a_405_allows_every_method_of_the_path(agora: AgoraProcess) -> None:
    response = agora.client.delete("/api/orders", headers=agora.admin)
    assert_problem(response, 405, "method-not-allowed")
    assert {"GET", "POST"} <= {m.strip() for m in response.headers["allow"].split(",")}


def test_a_stale_token_is_anonymous_on_public_routes_only(agora: AgoraProcess) -> None:
    stale = {"Authorization": "Bearer tw.e30.x"}
    for path in ("/api/products", "/healthz", "/.well-known/jwks.json"):
        response = agora.client.get(path, headers=stale)
        assert response.status_code == 200, (path, response.text)
    agora.headers("stale")  # registered
    me = agora.client.get("/api/auth/me", headers=stale)
    assert_problem(me, 401, "invalid-token")
    assert me.json()["detail"] == INVALID_TOKEN_DETAIL


def test_the_docs_and_the_document(agora: AgoraProcess) -> None:
    for page in ("/docs", "/redoc"):
        html = agora.client.get(page)
        assert html.status_code == 200, html.text
        assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html.text)
        assert assets
        for url in assets:
            assert re.match(r"/[^/]", url), f"{page} loads {url}"
            assert agora.client.get(url).status_code == 200, url
    document = agora.client.get("/openapi.json").json()
    for item in document["paths"].values():
        for operation in item.values():
            for status, answer in operation["responses"].items():
                if int(status) >= 400:
                    assert set(answer["content"]) == {PROBLEM_JSON}
    assert "security" not in document["paths"]["/api/auth/login"]["post"]
    assert document["paths"]["/api/orders"]["post"]["security"] == [{"bearer": []}]
