"""What catalog's routers answer besides their models: the documented problems, JSON bodies."""

from __future__ import annotations

from typing import Any

from fastapi import Response
from pydantic import BaseModel

from agora.auth import AUTHORIZE

__all__ = ["json_response", "problems"]


def problems(*codes: int) -> dict[int | str, dict[str, Any]]:
    described = {
        404: "No such store, product, or one the caller may not see",
        409: "Already reviewed",
        422: "Invalid request",
        **{code: value["description"] for code, value in AUTHORIZE.items()},
    }
    return {
        code: {"description": described[code], "content": {"application/problem+json": {}}}
        for code in codes
    }


def json_response(
    model: BaseModel, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(
        model.model_dump_json().encode(),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )
