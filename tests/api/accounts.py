"""Accounts for API tests: register and log in over HTTP, or create an admin in process.

buyer = await register_and_login(api.client)
await api.client.post("/api/orders", json=..., headers=buyer.headers)
admin = await admin_session(api.client, api.runtime)
"""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any

import httpx
import jwt

from agora.runtime.runtime import Runtime
from agora.services.identity.bootstrap import IdentityService

__all__ = [
    "PASSWORD",
    "Session",
    "admin_session",
    "client_from",
    "identity_of",
    "log_in",
    "new_email",
    "register",
    "register_and_login",
]

PASSWORD = "correct horse battery staple"


@dataclasses.dataclass(frozen=True)
class Session:
    user_id: str
    email: str
    password: str
    access_token: str
    refresh_token: str
    headers: dict[str, str]


def new_email(prefix: str = "user") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}@example.test"


def identity_of(runtime: Runtime) -> IdentityService:
    (service,) = [s for s in runtime.services if isinstance(s, IdentityService)]
    return service


def client_from(client: httpx.AsyncClient, ip: str) -> httpx.AsyncClient:
    """A client of the same in-process app whose requests come from `ip` (login throttling
    counts per client address; failing logins from a test's own address keep tests apart)."""
    transport = client._transport
    assert isinstance(transport, httpx.ASGITransport)
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(
            app=transport.app, raise_app_exceptions=False, client=(ip, 50000)
        ),
        base_url=client.base_url,
    )


async def register(
    client: httpx.AsyncClient, email: str, password: str = PASSWORD, role: str = "buyer"
) -> httpx.Response:
    return await client.post(
        "/api/auth/register", json={"email": email, "password": password, "role": role}
    )


async def log_in(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> Session:
    response = await client.post("/api/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    return session_of(response.json(), email, password)


def session_of(tokens: dict[str, Any], email: str, password: str) -> Session:
    claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    return Session(
        user_id=claims["sub"],
        email=email,
        password=password,
        access_token=tokens["access_token"],
        refresh_token=tokens["refresh_token"],
        headers={"Authorization": f"Bearer {tokens['access_token']}"},
    )


async def register_and_login(
    client: httpx.AsyncClient,
    role: str = "buyer",
    *,
    email: str | None = None,
    password: str | None = None,
) -> Session:
    """A new buyer (or seller) account, logged in."""
    email = email or new_email(role)
    password = password or PASSWORD
    response = await register(client, email, password, role)
    assert response.status_code == 202, response.text
    return await log_in(client, email, password)


async def admin_session(
    client: httpx.AsyncClient,
    runtime: Runtime,
    *,
    email: str | None = None,
    password: str | None = None,
) -> Session:
    """A new admin (created in process, as `agora users create-admin` does), logged in."""
    email = email or new_email("admin")
    password = password or PASSWORD
    await identity_of(runtime).handlers.create_admin(email, password)
    return await log_in(client, email, password)
