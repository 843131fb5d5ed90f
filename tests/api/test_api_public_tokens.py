"""A token that does not verify on a public route: the caller is served as anonymous (a client
holding a stale token can still log in); a route that needs a user refuses it, with a fixed
detail. And tokens are answered with `Cache-Control: no-store`."""

from __future__ import annotations

import base64
from datetime import timedelta
from typing import Any

import httpx
import pytest
from accounts import PASSWORD, Session, identity_of, new_email, register_and_login

from agora.auth import issue_access_token
from agora.auth.web import INVALID_TOKEN_DETAIL
from agora.messaging import utcnow

pytestmark = pytest.mark.asyncio(loop_scope="module")

# A header segment that decodes to bytes no UTF-8 decoder reads (0xb7...).
UNDECODABLE = base64.urlsafe_b64encode(b"\xb7\xb7\xb7").decode() + ".e30.c2ln"


async def bad_tokens(api: Any) -> dict[str, str]:
    """A garbage token, an expired one, and one of a session that logged out."""
    expiring = await register_and_login(api.client)
    identity = identity_of(api.runtime)
    expired = issue_access_token(
        await identity.keys.current(),
        user_id=expiring.user_id,
        role="buyer",
        plan="free",
        email=expiring.email,
        session_id="a-session-long-gone",
        now=utcnow() - timedelta(hours=1),
        ttl=timedelta(minutes=15),
    )
    revoked = await register_and_login(api.client)
    logout = await api.client.post("/api/auth/logout", headers=revoked.headers)
    assert logout.status_code == 204, logout.text
    return {
        "garbage": "not.a.jwt",
        "undecodable": UNDECODABLE,
        "expired": expired,
        "revoked": revoked.access_token,
    }


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_public_routes_treat_a_bad_token_as_anonymous(api: Any) -> None:
    account = await register_and_login(api.client)
    for name, token in (await bad_tokens(api)).items():
        headers = bearer(token)
        answers: dict[str, httpx.Response] = {
            "register": await api.client.post(
                "/api/auth/register",
                json={"email": new_email(name), "password": PASSWORD, "role": "buyer"},
                headers=headers,
            ),
            "login": await api.client.post(
                "/api/auth/login",
                json={"email": account.email, "password": PASSWORD},
                headers=headers,
            ),
            "healthz": await api.client.get("/healthz", headers=headers),
            "products": await api.client.get("/api/products", headers=headers),
            "product": await api.client.get(f"/api/products/{api.product}", headers=headers),
            "reviews": await api.client.get(
                f"/api/products/{api.product}/reviews", headers=headers
            ),
            "stores": await api.client.get("/api/stores", headers=headers),
        }
        assert answers["login"].status_code == 200, (name, answers["login"].text)
        refreshed = await api.client.post(
            "/api/auth/refresh",
            json={"refresh_token": answers["login"].json()["refresh_token"]},
            headers=headers,
        )
        answers["refresh"] = refreshed
        for route, response in answers.items():
            assert response.status_code < 400, (name, route, response.text)


async def test_routes_that_need_a_user_still_refuse_a_bad_token(api: Any) -> None:
    for name, token in (await bad_tokens(api)).items():
        for method, path in (("GET", "/api/auth/me"), ("GET", "/api/orders")):
            response = await api.client.request(method, path, headers=bearer(token))
            body = api.problem(response, 401, "invalid-token")
            assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"', name
            assert body["detail"] == INVALID_TOKEN_DETAIL, (name, body)


async def test_an_undecodable_token_gets_a_fixed_detail(api: Any) -> None:
    response = await api.client.get("/api/auth/me", headers=bearer(UNDECODABLE))
    body = api.problem(response, 401, "invalid-token")
    assert body["detail"] == INVALID_TOKEN_DETAIL
    assert "codec" not in response.text
    assert "utf" not in response.text.lower()


async def test_tokens_are_not_stored_by_caches(api: Any) -> None:
    session: Session = await register_and_login(api.client)
    login = await api.client.post(
        "/api/auth/login", json={"email": session.email, "password": PASSWORD}
    )
    refresh = await api.client.post(
        "/api/auth/refresh", json={"refresh_token": login.json()["refresh_token"]}
    )
    for response in (login, refresh):
        assert response.status_code == 200, response.text
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["pragma"] == "no-cache"
