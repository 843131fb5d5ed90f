"""Identity over HTTP: registration without enumeration, throttled login, tokens and what
refuses them, refresh rotation with reuse detection, key rotation, plans, the welcome email,
and the `agora users` / `agora keys` commands."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
import orjson
import pytest
from accounts import (
    PASSWORD,
    Session,
    admin_session,
    client_from,
    identity_of,
    log_in,
    new_email,
    register,
    register_and_login,
)
from sqlalchemy import func, select

from agora.auth import SigningKey, issue_access_token
from agora.messaging import Envelope, Service, utcnow
from agora.runtime.runtime import Runtime

pytestmark = pytest.mark.asyncio(loop_scope="module")


def new_ip() -> str:
    return f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}"


def service(api: Any, name: str) -> Service:
    (found,) = [s for s in api.runtime.services if s.name == name]
    return found


async def users_with(api: Any, email: str) -> int:
    identity = identity_of(api.runtime)
    users = identity.platform.db.metadata.tables["users"]
    async with identity.platform.db.read() as conn:
        query = select(func.count()).select_from(users).where(users.c.email == email)
        return int(await conn.scalar(query) or 0)


async def identity_events(api: Any, user_id: str) -> list[Envelope]:
    identity = identity_of(api.runtime)
    outbox = identity.platform.outbox
    async with identity.platform.db.read() as conn:
        rows = await conn.execute(
            select(outbox.c.value).where(outbox.c.key == user_id).order_by(outbox.c.id)
        )
        return [Envelope.from_bytes(row.value) for row in rows]


async def me(api: Any, token: str) -> httpx.Response:
    return await api.client.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})


def claims_of(token: str) -> dict[str, Any]:
    return dict(jwt.decode(token, options={"verify_signature": False}))


def kid_of(token: str) -> str:
    return str(jwt.get_unverified_header(token)["kid"])


# -- registration --------------------------------------------------------------------------


async def test_register_log_in_and_read_the_account(api: Any) -> None:
    email = new_email("alice")
    response = await register(api.client, email.upper(), role="seller")
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "accepted"
    assert response.json()["email"] == email  # normalised to lower case

    login = await api.client.post("/api/auth/login", json={"email": email, "password": PASSWORD})
    assert login.status_code == 200, login.text
    tokens = login.json()
    assert tokens["token_type"] == "Bearer"
    assert tokens["expires_in"] == 900
    claims = claims_of(tokens["access_token"])
    assert claims["role"] == "seller"
    assert claims["plan"] == "free"
    assert claims["email"] == email
    assert claims["exp"] - claims["iat"] == 900
    assert {"iss", "aud", "sub", "sid", "jti"} <= set(claims)

    account = await me(api, tokens["access_token"])
    assert account.status_code == 200, account.text
    body = account.json()
    assert body["id"] == claims["sub"]
    assert (body["email"], body["role"], body["plan"]) == (email, "seller", "free")
    assert body["created_at"]


BAD_REGISTRATIONS: dict[str, dict[str, Any]] = {
    "email-without-at": {"email": "{tag}.example.test", "password": PASSWORD, "role": "buyer"},
    "email-without-domain": {"email": "{tag}@", "password": PASSWORD, "role": "buyer"},
    "email-with-space": {"email": "{tag} x@example.test", "password": PASSWORD, "role": "buyer"},
    "short-password": {"email": "{tag}@example.test", "password": "short", "role": "buyer"},
    "long-password": {"email": "{tag}@example.test", "password": "x" * 201, "role": "buyer"},
    "role-admin": {"email": "{tag}@example.test", "password": PASSWORD, "role": "admin"},
    "role-unknown": {"email": "{tag}@example.test", "password": PASSWORD, "role": "root"},
    "extra-field": {
        "email": "{tag}@example.test",
        "password": PASSWORD,
        "role": "buyer",
        "plan": "premium",
    },
    "missing-role": {"email": "{tag}@example.test", "password": PASSWORD},
    "password-as-number": {"email": "{tag}@example.test", "password": 1234567890123},
}


@pytest.mark.parametrize("case", BAD_REGISTRATIONS)
async def test_bad_registrations_are_refused_and_write_nothing(api: Any, case: str) -> None:
    tag = f"bad-{uuid.uuid4().hex[:10]}"
    body = {
        key: value.format(tag=tag) if isinstance(value, str) else value
        for key, value in BAD_REGISTRATIONS[case].items()
    }
    response = await api.client.post("/api/auth/register", json=body)
    api.problem(response, 422, "validation-error")
    assert await users_with(api, f"{tag}@example.test") == 0


async def test_registering_a_taken_address_looks_the_same_and_changes_nothing(api: Any) -> None:
    email = new_email("taken")
    first = await register(api.client, email)
    again = await register(api.client, email, password="another password entirely", role="seller")
    assert (again.status_code, again.json()) == (first.status_code, first.json())
    assert await users_with(api, email) == 1

    session = await log_in(api.client, email)  # the first password still works
    assert claims_of(session.access_token)["role"] == "buyer"
    refused = await api.client.post(
        "/api/auth/login", json={"email": email, "password": "another password entirely"}
    )
    api.problem(refused, 401, "invalid-credentials")


# -- login ---------------------------------------------------------------------------------


async def test_unknown_address_and_wrong_password_look_and_take_the_same(api: Any) -> None:
    known = await register_and_login(api.client)
    unknown = new_email("nobody")
    timings: dict[str, list[float]] = {"unknown": [], "wrong": []}
    bodies: dict[str, dict[str, Any]] = {}
    async with client_from(api.client, new_ip()) as client:
        for _ in range(4):  # under the per-account limit of 5
            for kind, email in (("unknown", unknown), ("wrong", known.email)):
                started = time.perf_counter()
                response = await client.post(
                    "/api/auth/login", json={"email": email, "password": "not the password"}
                )
                timings[kind].append(time.perf_counter() - started)
                bodies[kind] = api.problem(response, 401, "invalid-credentials")
                assert response.headers["www-authenticate"] == "Bearer"
    assert bodies["unknown"] == bodies["wrong"]
    unknown_median = statistics.median(timings["unknown"])
    wrong_median = statistics.median(timings["wrong"])
    # Both verify an argon2 hash; without the dummy hash the unknown address would answer in
    # a small fraction of the time.
    assert 0.4 < unknown_median / wrong_median < 2.5, timings


async def test_failed_logins_throttle_the_account(api: Any) -> None:
    account = await register_and_login(api.client)
    wrong = {"email": account.email, "password": "not the password"}
    async with client_from(api.client, new_ip()) as client:
        for _ in range(5):
            api.problem(await client.post("/api/auth/login", json=wrong), 401)
        throttled = await client.post("/api/auth/login", json=wrong)
        body = api.problem(throttled, 429, "login-throttled")
        assert 0 < int(throttled.headers["retry-after"]) <= 900, body
    # The right password, from anywhere, waits too: the account is throttled.
    async with client_from(api.client, new_ip()) as elsewhere:
        right = {"email": account.email, "password": PASSWORD}
        api.problem(await elsewhere.post("/api/auth/login", json=right), 429, "login-throttled")


async def test_unknown_addresses_are_throttled_alike(api: Any) -> None:
    known = await register_and_login(api.client)
    answers: dict[str, list[int]] = {}
    for name, email in (("known", known.email), ("unknown", new_email("ghost"))):
        async with client_from(api.client, new_ip()) as client:
            responses = [
                await client.post("/api/auth/login", json={"email": email, "password": "nope"})
                for _ in range(7)
            ]
        answers[name] = [response.status_code for response in responses]
        api.problem(responses[-1], 429, "login-throttled")
    assert answers["known"] == answers["unknown"] == [401] * 5 + [429] * 2


async def test_a_successful_login_resets_the_account_counter(api: Any) -> None:
    account = await register_and_login(api.client)
    wrong = {"email": account.email, "password": "not the password"}
    async with client_from(api.client, new_ip()) as client:
        for _ in range(4):
            api.problem(await client.post("/api/auth/login", json=wrong), 401)
        await log_in(client, account.email)
        for _ in range(5):
            api.problem(await client.post("/api/auth/login", json=wrong), 401)
        api.problem(await client.post("/api/auth/login", json=wrong), 429, "login-throttled")


async def test_failed_logins_throttle_the_client_address(api: Any) -> None:
    account = await register_and_login(api.client)
    async with client_from(api.client, new_ip()) as client:
        for _ in range(20):  # each at an address of its own: only the IP's count grows
            response = await client.post(
                "/api/auth/login", json={"email": new_email("spray"), "password": "guess"}
            )
            api.problem(response, 401, "invalid-credentials")
        throttled = await client.post(
            "/api/auth/login", json={"email": account.email, "password": PASSWORD}
        )
        api.problem(throttled, 429, "login-throttled")
        assert int(throttled.headers["retry-after"]) > 0
    async with client_from(api.client, new_ip()) as elsewhere:
        await log_in(elsewhere, account.email)


# -- tokens refused ------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unsigned(header: dict[str, Any], claims: dict[str, Any]) -> str:
    return f"{_b64(orjson.dumps(header))}.{_b64(orjson.dumps(claims))}"


async def forged_tokens(api: Any, session: Session) -> dict[str, str]:
    claims = claims_of(session.access_token)
    kid = kid_of(session.access_token)
    current = await identity_of(api.runtime).keys.current()
    stranger = SigningKey.generate()
    public_jwk = current.public_jwk()
    hs_input = _unsigned({"alg": "HS256", "kid": kid, "typ": "JWT"}, claims)
    hs_signature = hmac.new(public_jwk["x"].encode(), hs_input.encode(), hashlib.sha256).digest()
    return {
        "forged-signature": jwt.encode(
            claims, stranger.private_pem, algorithm="EdDSA", headers={"kid": kid}
        ),
        "unknown-kid": jwt.encode(
            claims, stranger.private_pem, algorithm="EdDSA", headers={"kid": stranger.kid}
        ),
        "alg-none": _unsigned({"alg": "none", "kid": kid, "typ": "JWT"}, claims) + ".",
        "hs256-with-the-public-key": f"{hs_input}.{_b64(hs_signature)}",
        "expired": issue_access_token(
            current,
            user_id=session.user_id,
            role="buyer",
            plan="free",
            email=session.email,
            session_id=claims["sid"],
            now=utcnow() - timedelta(hours=1),
            ttl=timedelta(minutes=15),
        ),
        "tampered-claims": ".".join(
            [
                session.access_token.split(".")[0],
                _b64(orjson.dumps({**claims, "role": "admin"})),
                session.access_token.split(".")[2],
            ]
        ),
        "not-a-jwt": "not.a.token",
    }


async def test_forged_expired_and_foreign_tokens_are_refused(api: Any) -> None:
    session = await register_and_login(api.client)
    assert (await me(api, session.access_token)).status_code == 200
    for name, token in (await forged_tokens(api, session)).items():
        response = await me(api, token)
        body = api.problem(response, 401, "invalid-token")
        assert response.headers["www-authenticate"].startswith("Bearer"), name
        assert body["detail"], name


async def test_no_token_is_refused(api: Any) -> None:
    response = await api.client.get("/api/auth/me")
    api.problem(response, 401, "authentication-required")


# -- sessions ------------------------------------------------------------------------------


async def test_logout_revokes_the_session_only(api: Any) -> None:
    session = await register_and_login(api.client)
    other = await log_in(api.client, session.email)  # a second session of the same user

    response = await api.client.post("/api/auth/logout", headers=session.headers)
    assert response.status_code == 204, response.text
    api.problem(await me(api, session.access_token), 401, "invalid-token")
    refreshed = await api.client.post(
        "/api/auth/refresh", json={"refresh_token": session.refresh_token}
    )
    api.problem(refreshed, 401, "invalid-refresh-token")

    assert (await me(api, other.access_token)).status_code == 200
    api.problem(await api.client.post("/api/auth/logout"), 401, "authentication-required")


async def test_refresh_rotates_and_reuse_revokes_the_family(api: Any) -> None:
    session = await register_and_login(api.client)
    first = await api.client.post(
        "/api/auth/refresh", json={"refresh_token": session.refresh_token}
    )
    assert first.status_code == 200, first.text
    tokens = first.json()
    assert tokens["refresh_token"] != session.refresh_token
    assert claims_of(tokens["access_token"])["sid"] == claims_of(session.access_token)["sid"]
    assert (await me(api, tokens["access_token"])).status_code == 200
    second = await api.client.post(
        "/api/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert second.status_code == 200, second.text
    latest = second.json()

    # The first refresh token, used again: someone holds a copy. The whole family goes.
    reused = await api.client.post(
        "/api/auth/refresh", json={"refresh_token": session.refresh_token}
    )
    api.problem(reused, 401, "invalid-refresh-token")
    refused = await api.client.post(
        "/api/auth/refresh", json={"refresh_token": latest["refresh_token"]}
    )
    api.problem(refused, 401, "invalid-refresh-token")
    for token in (session.access_token, tokens["access_token"], latest["access_token"]):
        api.problem(await me(api, token), 401, "invalid-token")

    unknown = await api.client.post("/api/auth/refresh", json={"refresh_token": "x" * 43})
    api.problem(unknown, 401, "invalid-refresh-token")
    extra = await api.client.post(
        "/api/auth/refresh", json={"refresh_token": "x", "access_token": "y"}
    )
    api.problem(extra, 422, "validation-error")


@contextlib.asynccontextmanager
async def runtime_on(api: Any, data_dir: Path) -> AsyncIterator[httpx.AsyncClient]:
    """Another runtime, on `data_dir`, with the module runtime's settings otherwise."""
    runtime = Runtime(api.runtime.settings.model_copy(update={"data_dir": data_dir}))
    app = runtime.app()
    await runtime.start()
    try:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client
    finally:
        await runtime.stop()


async def test_a_restart_keeps_logged_out_sessions_refused(api: Any, tmp_path: Path) -> None:
    """The in-process revocation list starts empty; identity refills it on start."""
    async with runtime_on(api, tmp_path / "agora") as client:
        session = await register_and_login(client)
        assert (await client.post("/api/auth/logout", headers=session.headers)).status_code == 204
    async with runtime_on(api, tmp_path / "agora") as client:
        response = await client.get("/api/auth/me", headers=session.headers)
        api.problem(response, 401, "invalid-token")
        again = await log_in(client, session.email)
        assert (await client.get("/api/auth/me", headers=again.headers)).status_code == 200


# -- signing keys --------------------------------------------------------------------------


async def test_key_rotation_keeps_earlier_tokens_valid(api: Any) -> None:
    identity = identity_of(api.runtime)
    before = await register_and_login(api.client)
    old_kid = kid_of(before.access_token)

    pending = await identity.keys.rotate()  # the default: published now, signing in 30 s
    jwks = (await api.client.get("/.well-known/jwks.json")).json()
    assert {old_kid, pending.new} <= {key["kid"] for key in jwks["keys"]}
    assert kid_of((await log_in(api.client, before.email)).access_token) == old_kid

    rotation = await identity.keys.rotate(timedelta(0))  # signing at once
    jwks_response = await api.client.get("/.well-known/jwks.json")
    assert jwks_response.status_code == 200
    published = {key["kid"]: key for key in jwks_response.json()["keys"]}
    assert {old_kid, pending.new, rotation.new} <= set(published)
    assert all(key["kty"] == "OKP" and key["alg"] == "EdDSA" for key in published.values())
    assert all("d" not in key for key in published.values())  # public halves only

    assert (await me(api, before.access_token)).status_code == 200
    after = await log_in(api.client, before.email)
    assert kid_of(after.access_token) == rotation.new

    async def accepted() -> bool:  # once the verifier refetches the keys (at most every 10 s)
        return (await me(api, after.access_token)).status_code == 200

    await api.eventually(accepted, what="a token signed with the new key accepted")


# -- plans ---------------------------------------------------------------------------------


async def test_an_admin_changes_a_plan(api: Any) -> None:
    admin = await admin_session(api.client, api.runtime)
    assert claims_of(admin.access_token)["role"] == "admin"
    user = await register_and_login(api.client)

    changed = await api.client.put(
        f"/api/users/{user.user_id}/plan", json={"plan": "premium"}, headers=admin.headers
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["plan"] == "premium"
    again = await api.client.put(
        f"/api/users/{user.user_id}/plan", json={"plan": "premium"}, headers=admin.headers
    )
    assert again.status_code == 200, again.text

    events = [e for e in await identity_events(api, user.user_id) if e.type == "PlanChanged"]
    assert len(events) == 1  # none when the plan is unchanged
    assert events[0].payload == {
        "user_id": user.user_id,
        "plan": "premium",
        "previous_plan": "free",
    }

    refreshed = await api.client.post(
        "/api/auth/refresh", json={"refresh_token": user.refresh_token}
    )
    assert claims_of(refreshed.json()["access_token"])["plan"] == "premium"
    assert (await me(api, refreshed.json()["access_token"])).json()["plan"] == "premium"


async def test_only_admins_change_plans(api: Any) -> None:
    admin = await admin_session(api.client, api.runtime)
    target = await register_and_login(api.client)
    path = f"/api/users/{target.user_id}/plan"
    for role in ("buyer", "seller"):
        caller = await register_and_login(api.client, role)
        refused = await api.client.put(path, json={"plan": "premium"}, headers=caller.headers)
        api.problem(refused, 403, "forbidden")
    api.problem(await api.client.put(path, json={"plan": "premium"}), 401)
    unknown = await api.client.put(
        "/api/users/no-such-user/plan", json={"plan": "premium"}, headers=admin.headers
    )
    api.problem(unknown, 404, "user-not-found")
    bad = await api.client.put(path, json={"plan": "gold"}, headers=admin.headers)
    api.problem(bad, 422, "validation-error")
    assert (await me(api, target.access_token)).json()["plan"] == "free"


async def test_registration_emits_user_registered(api: Any) -> None:
    session = await register_and_login(api.client, "seller")
    (event,) = await identity_events(api, session.user_id)
    assert event.type == "UserRegistered"
    assert event.payload == {
        "user_id": session.user_id,
        "email": session.email,
        "role": "seller",
        "plan": "free",
    }


# -- notifications -------------------------------------------------------------------------


async def messages_to(api: Any, customer_id: str) -> list[Any]:
    notifications = service(api, "notifications")
    messages = notifications.platform.db.metadata.tables["messages"]
    async with notifications.platform.db.read() as conn:
        rows = await conn.execute(select(messages).where(messages.c.customer_id == customer_id))
        return list(rows.all())


async def test_a_new_user_gets_a_welcome_email(api: Any) -> None:
    session = await register_and_login(api.client)

    async def welcomed() -> list[Any]:
        return await messages_to(api, session.user_id)

    (message,) = await api.eventually(welcomed, what="the welcome email")
    assert message.kind == "UserRegistered"
    assert message.recipient == session.email
    assert message.subject == "Welcome to Agora"


async def test_order_emails_go_to_the_users_address(api: Any) -> None:
    session = await register_and_login(api.client)
    await api.eventually(
        lambda: messages_to(api, session.user_id), what="notifications to learn the address"
    )
    api.sessions[session.email] = session  # api.place as this user
    placed = await api.place(session.email, [(api.product, 1)], token="tok_visa")
    assert placed.status_code == 202, placed.text
    order_id = placed.json()["id"]
    await api.wait_status(order_id, "CONFIRMED")

    async def confirmation() -> list[Any]:
        return [m for m in await messages_to(api, session.user_id) if m.order_id == order_id]

    (message,) = await api.eventually(confirmation, what="the order email")
    assert message.recipient == session.email


# -- OpenAPI -------------------------------------------------------------------------------


async def test_openapi_describes_the_bearer_scheme(api: Any) -> None:
    document = (await api.client.get("/openapi.json")).json()
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert {"bearer": []} in document["paths"]["/api/auth/me"]["get"]["security"]
    assert {"bearer": []} in document["paths"]["/api/users/{user_id}/plan"]["put"]["security"]
    assert "security" not in document["paths"]["/api/auth/login"]["post"]


# -- the commands --------------------------------------------------------------------------


def agora(data_dir: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("AGORA_")}
    return subprocess.run(
        [sys.executable, "-m", "agora", *args, "--data-dir", str(data_dir)],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


async def test_the_commands_create_an_admin_and_rotate_keys(api: Any, tmp_path: Path) -> None:
    data_dir = tmp_path / "agora"
    email, password = new_email("root"), "a long admin password"
    created = await asyncio.to_thread(
        agora,
        data_dir,
        "users",
        "create-admin",
        "--email",
        email.upper(),
        "--password-stdin",
        stdin=password + "\n",
    )
    assert created.returncode == 0, created.stderr
    assert email in created.stdout
    duplicate = await asyncio.to_thread(
        agora,
        data_dir,
        "users",
        "create-admin",
        "--email",
        email,
        "--password-stdin",
        stdin=password + "\n",
    )
    assert duplicate.returncode == 1
    assert "has an account already" in duplicate.stderr
    short = await asyncio.to_thread(
        agora,
        data_dir,
        "users",
        "create-admin",
        "--email",
        new_email(),
        "--password-stdin",
        stdin="short\n",
    )
    assert short.returncode == 2

    async with runtime_on(api, data_dir) as client:
        admin = await log_in(client, email, password)
        assert claims_of(admin.access_token)["role"] == "admin"
        old_kid = kid_of(admin.access_token)

        # Rotated by another process while this one runs.
        rotated = await asyncio.to_thread(
            agora, data_dir, "keys", "rotate", "--activate-after", "0"
        )
        assert rotated.returncode == 0, rotated.stderr
        assert old_kid in rotated.stdout

        async def new_kid() -> str | None:
            kid = kid_of((await log_in(client, email, password)).access_token)
            return kid if kid != old_kid else None

        kid = await api.eventually(new_kid, what="tokens signed with the new key")
        assert kid in rotated.stdout
        jwks = (await client.get("/.well-known/jwks.json")).json()
        assert {old_kid, kid} <= {key["kid"] for key in jwks["keys"]}
        response = await client.get("/api/auth/me", headers=admin.headers)
        assert response.status_code == 200, response.text
