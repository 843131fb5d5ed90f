"""The console's files, read once when the router is built, and the routes that serve them."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources
from typing import Annotated

from fastapi import APIRouter, Header, Path, Response

from agora import __version__
from agora.problems import ProblemError
from agora.web import entity_tags

__all__ = ["ASSET_PREFIX", "ConsoleAssets", "console_router"]

ASSET_PREFIX = "/console"
PAGE = "index.html"
MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"
VERSION_MARK = "{{version}}"


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    media_type: str
    etag: str


class ConsoleAssets:
    """Every file of `static/` (the page with its asset addresses filled in), by name."""

    def __init__(self) -> None:
        folder = resources.files("agora.console") / "static"
        raw = {
            entry.name: entry.read_bytes()
            for entry in folder.iterdir()
            if entry.is_file() and _suffix(entry.name) in MEDIA_TYPES
        }
        digest = hashlib.sha256()
        for name in sorted(raw):
            digest.update(name.encode() + b"\0" + raw[name] + b"\0")
        self.version = f"{__version__}-{digest.hexdigest()[:12]}"
        raw[PAGE] = raw[PAGE].replace(VERSION_MARK.encode(), self.version.encode())
        self.files = {
            name: Asset(body, MEDIA_TYPES[_suffix(name)], _etag(body)) for name, body in raw.items()
        }

    def get(self, name: str) -> Asset:
        found = self.files.get(name)
        if found is None or name == PAGE:
            raise ProblemError(404, "not-found", "Not found", f"the console has no file {name!r}")
        return found

    @property
    def page(self) -> Asset:
        return self.files[PAGE]


def console_router(assets: ConsoleAssets | None = None) -> APIRouter:
    """`GET /` (the page) and `GET /console/[<version>/]<file>` (its assets)."""
    files = assets or ConsoleAssets()
    router = APIRouter(include_in_schema=False)

    @router.api_route("/", methods=["GET", "HEAD"])
    async def page(if_none_match: Annotated[str | None, Header()] = None) -> Response:
        return _answer(files.page, REVALIDATE, if_none_match)

    @router.api_route(ASSET_PREFIX + "/{name}", methods=["GET", "HEAD"])
    async def asset(
        name: Annotated[str, Path(max_length=100)],
        if_none_match: Annotated[str | None, Header()] = None,
    ) -> Response:
        return _answer(files.get(name), REVALIDATE, if_none_match)

    @router.api_route(ASSET_PREFIX + "/{version}/{name}", methods=["GET", "HEAD"])
    async def versioned_asset(
        version: Annotated[str, Path(max_length=100)],
        name: Annotated[str, Path(max_length=100)],
        if_none_match: Annotated[str | None, Header()] = None,
    ) -> Response:
        # A page of an older console asks for its version: it gets today's file, not cached.
        policy = IMMUTABLE if version == files.version else REVALIDATE
        return _answer(files.get(name), policy, if_none_match)

    return router


def _answer(asset: Asset, cache_control: str, if_none_match: str | None) -> Response:
    headers = {"ETag": asset.etag, "Cache-Control": cache_control}
    if asset.etag in entity_tags(if_none_match):
        return Response(status_code=304, headers=headers)
    return Response(asset.body, media_type=asset.media_type, headers=headers)


def _etag(body: bytes) -> str:
    return f'"{hashlib.sha256(body).hexdigest()[:32]}"'


def _suffix(name: str) -> str:
    return name[name.rfind(".") :] if "." in name else ""
