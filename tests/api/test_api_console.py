"""The web console as the entry serves it: the page at `/` and every file it loads from this
origin only, cached for good under the console's version and revalidated otherwise, with a
policy of its own that allows no inline script; the API keeps its stricter one."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from agora.problems import PROBLEM_JSON
from agora.runtime.runtime import Runtime, build_gateway
from conftest import settings

pytestmark = pytest.mark.asyncio(loop_scope="module")

LOADED = re.compile(r'(?:src|href)="(/console/[^"]+)"')
IMPORTED = re.compile(r'from "\./([^"]+)"')


async def console_files(client: httpx.AsyncClient) -> dict[str, httpx.Response]:
    """The page's assets and every module they import, by address, as served."""
    page = await client.get("/")
    assert page.status_code == 200, page.text
    pending = LOADED.findall(page.text)
    assert len(pending) == 3, pending  # the script, the styles, the icon
    served: dict[str, httpx.Response] = {}
    while pending:
        url = pending.pop()
        if url in served:
            continue
        served[url] = response = await client.get(url)
        assert response.status_code == 200, (url, response.text)
        if url.endswith(".js"):
            folder = url.rsplit("/", 1)[0]
            pending.extend(f"{folder}/{name}" for name in IMPORTED.findall(response.text))
    return served


async def test_the_page_and_its_files_come_from_the_console_with_its_policy(api: Any) -> None:
    page = await api.client.get("/", headers={"Host": "agora.example:8443"})
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    policy = page.headers["content-security-policy"]
    assert "default-src 'self'" in policy
    assert "script-src 'self';" in policy
    assert "connect-src 'self' ws://agora.example:8443 wss://agora.example:8443;" in policy
    assert "img-src 'self' data:;" in policy
    assert "unsafe-inline" not in policy
    assert "unsafe-eval" not in policy
    assert page.headers["cache-control"] == "no-cache"
    assert "<script>" not in page.text
    assert " style=" not in page.text

    files = await console_files(api.client)
    names = {url.rsplit("/", 1)[1] for url in files}
    assert {"app.js", "api.js", "live.js", "seatmap.js", "console.css", "icon.svg"} <= names
    (version,) = {url.split("/")[2] for url in files}
    assert version.startswith("0.")
    for url, response in files.items():
        assert response.headers["cache-control"] == "public, max-age=31536000, immutable", url
        assert "default-src 'self'" in response.headers["content-security-policy"], url
        assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", response.text), url


async def test_files_are_revalidated_by_their_etag(api: Any) -> None:
    page = await api.client.get("/")
    again = await api.client.get("/", headers={"If-None-Match": page.headers["etag"]})
    assert again.status_code == 304
    assert again.content == b""

    bare = await api.client.get("/console/app.js")
    assert bare.status_code == 200
    assert bare.headers["cache-control"] == "no-cache"
    unchanged = await api.client.get(
        "/console/app.js", headers={"If-None-Match": bare.headers["etag"]}
    )
    assert unchanged.status_code == 304
    stale = await api.client.get("/console/0.0.1-old/app.js")
    assert stale.status_code == 200
    assert stale.headers["cache-control"] == "no-cache"  # an old page's address: not for good
    assert stale.content == bare.content


@pytest.mark.parametrize("path", ["/console/nothing.js", "/console/index.html", "/console/v/x.py"])
async def test_an_unknown_file_is_a_problem(api: Any, path: str) -> None:
    response = await api.client.get(path)
    assert response.status_code == 404, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    assert response.json()["type"] == "/problems/not-found"


async def test_the_api_keeps_its_own_policy(api: Any) -> None:
    response = await api.client.get("/api/products")
    assert (
        response.headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"
    )
    hostile = await api.client.get("/", headers={"Host": "x; script-src *"})
    assert "script-src *" not in hostile.headers["content-security-policy"]
    assert "connect-src 'self';" in hostile.headers["content-security-policy"]


async def test_the_gateway_serves_the_console_and_a_service_behind_it_does_not(
    api: Any, tmp_path: Path
) -> None:
    behind = settings(tmp_path).model_copy(
        update={"behind_proxy": True, "upstreams": {"identity": ["http://nowhere"]}}
    )
    transport = httpx.ASGITransport(app=build_gateway(behind))
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as gateway:
        assert (await gateway.get("/")).content == (await api.client.get("/")).content
        assert set(await console_files(gateway)) == set(await console_files(api.client))

    service = Runtime(behind, ["identity"]).app()
    transport = httpx.ASGITransport(app=service)
    async with httpx.AsyncClient(transport=transport, base_url="http://identity") as client:
        assert (await client.get("/")).status_code == 404
