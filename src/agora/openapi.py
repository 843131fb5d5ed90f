"""The OpenAPI document as the API really answers, and its interactive pages served offline.

FastAPI describes what it knows from the route declarations; what the middlewares and the
problem handlers send it cannot see, or sees wrongly:

* every error is an RFC 9457 problem (`application/problem+json`, the `Problem` schema), its
  422 included, which FastAPI would describe as its own `HTTPValidationError`;
* any request with a body may be refused 400 (malformed JSON), 413 (too large, by the body
  limit) or 415 (not JSON), whatever the route declares;
* any `/api/` request may be refused 429 by the edge's rate limits, and 400 for a NUL character
  in its URL (`invalid-character`).

`/docs` (Swagger UI) and `/redoc` (ReDoc) load their scripts from the `fastapi-offline`
package's copies, under `/docs/assets/`, so that they work with no network beyond the API.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from importlib import resources
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from agora.problems import PROBLEM_JSON

__all__ = ["ASSETS_PATH", "PROBLEM_SCHEMA", "describe", "serve_docs"]

ASSETS_PATH = "/docs/assets"

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": (
        "An RFC 9457 problem. `type` is stable per kind of error (clients switch on it); "
        "`title` is the same for every instance of a type; `detail` says what went wrong this "
        "time. Some types carry more members (`errors` for an invalid request, `product_ids`)."
    ),
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string", "examples": ["/problems/validation-error"]},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string"},
        "instance": {"type": "string", "description": "The request's path"},
    },
    "additionalProperties": True,
}

# What any operation with a request body may answer, whatever the route declares.
_BODY_REFUSALS = {
    "400": "Malformed request: the body is not valid JSON (`malformed-json`)",
    "413": "The body is over the size limit (`payload-too-large`)",
    "415": "The body is not `application/json` (`unsupported-media-type`)",
}
_BAD_URL = "Malformed request: a NUL character in the URL (`invalid-character`)"
_INVALID = "Invalid request (`validation-error`): `errors` names each invalid field"
_RATE_LIMITED = (
    "Too many requests (`rate-limited`), where the deployment limits request rates: "
    "retry after `Retry-After` seconds; `RateLimit` and `RateLimit-Policy` say the budget"
)
_FASTAPI_SCHEMAS = ("HTTPValidationError", "ValidationError")


def describe(source: FastAPI, routers: Sequence[APIRouter] = ()) -> Callable[[], dict[str, Any]]:
    """An `openapi()` for an app: `source`'s routes described as they answer, built once.

    `routers`: routes served on the app's behalf by another process (nginx sends them
    to the services), described as if the app served them itself."""
    built: dict[str, Any] = {}

    def openapi() -> dict[str, Any]:
        if not built:
            document = get_openapi(
                title=source.title,
                version=source.version,
                openapi_version=source.openapi_version,
                description=source.description,
                routes=[*source.routes, *(route for r in routers for route in r.routes)],
                tags=source.openapi_tags,
                servers=source.servers,
            )
            built.update(_corrected(document))
        return built

    return openapi


def _corrected(document: dict[str, Any]) -> dict[str, Any]:
    for path, operations in document.get("paths", {}).items():
        for operation in operations.values():
            responses: dict[str, Any] = operation.setdefault("responses", {})
            if "422" in responses:
                responses["422"]["description"] = _INVALID
            if "requestBody" in operation:
                for status, description in _BODY_REFUSALS.items():
                    responses.setdefault(status, {"description": description})
            if path.startswith("/api/"):
                responses.setdefault("400", {"description": _BAD_URL})
                responses.setdefault("429", {"description": _RATE_LIMITED})
            for status, response in responses.items():
                if status[0] in "45":
                    response["content"] = {
                        PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}
                    }
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for name in _FASTAPI_SCHEMAS:
        schemas.pop(name, None)
    schemas["Problem"] = PROBLEM_SCHEMA
    return document


def serve_docs(app: FastAPI) -> None:
    """`/docs` and `/redoc` on `app` (built with `docs_url=None, redoc_url=None`), their
    assets served from the package that ships them."""
    assets = resources.files("fastapi_offline") / "static"
    app.mount(ASSETS_PATH, StaticFiles(directory=str(assets)), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} API",
            swagger_js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_PATH}/favicon.png",
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=openapi_url,
            title=f"{app.title} API",
            redoc_js_url=f"{ASSETS_PATH}/redoc.standalone.js",
            redoc_favicon_url=f"{ASSETS_PATH}/favicon.png",
            with_google_fonts=False,
        )
