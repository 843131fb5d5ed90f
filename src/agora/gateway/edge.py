"""The edge: what every request from outside passes through once, at the one HTTP entry (the
gateway, or the embedded default's single app).

* A token that verifies names the caller: the principal is handed on to the routes of this
  process and picks the caller's rate limit. One that does not is not refused here: the
  request goes on as anonymous, and only a route that needs a user answers 401 (so a client
  holding a stale token can still log in, refresh or browse).
* Rate limits: a token bucket per user, by plan, and per client address for anonymous calls;
  429 with `Retry-After`, and the `RateLimit` / `RateLimit-Policy` fields on every limited
  response (draft-ietf-httpapi-ratelimit-headers).
* Security headers on every response, a server error's too.

Roles are not decided here: each route declares who may call it (`agora.auth`), and is the one
place that says so.
"""

from __future__ import annotations

import dataclasses
import logging
import re

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agora.auth import (
    InvalidToken,
    KeysUnavailable,
    Principal,
    TokenVerifier,
)
from agora.auth.web import client_ip
from agora.problems import PROBLEM_JSON, problem_body
from agora.shared.ratelimit import RateLimiter, TokenBucket, rate_limit_headers
from agora.shared.revocations import RevocationsUnavailable
from agora.web import dependency_unavailable, internal_error

__all__ = [
    "API_CSP",
    "CONSOLE_CSP",
    "SECURITY_HEADERS",
    "EdgeMiddleware",
    "EdgePolicy",
    "content_security_policy",
]

logger = logging.getLogger(__name__)

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Strict-Transport-Security": "max-age=31536000; includeSubDomains",
}
# The API answers JSON only; the interactive docs need their page's scripts and styles.
API_CSP = "default-src 'none'; frame-ancestors 'none'"
DOCS_PATHS = ("/docs", "/redoc")
# The web console (agora.console): its own files only, no inline script or style; it calls the
# API and its streams on the same host (WebSocket included, named by scheme: `'self'` covers
# ws: only in newer browsers); QR codes are shown as data: images.
CONSOLE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'{sockets}; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
CONSOLE_PATHS = ("/console/",)
# What a Host header may hold to be named in the console's policy (a name or address, a port).
_HOST = re.compile(r"[A-Za-z0-9.\-]+(:[0-9]{1,5})?|\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?")


def content_security_policy(path: str, host: str | None) -> str | None:
    """The policy for a response to `path`: the console's, the API's, or None for the docs
    (whose pages set none)."""
    if path == "/" or path.startswith(CONSOLE_PATHS):
        sockets = f" ws://{host} wss://{host}" if host and _HOST.fullmatch(host) else ""
        return CONSOLE_CSP.format(sockets=sockets)
    if path.startswith(DOCS_PATHS):
        return None
    return API_CSP


@dataclasses.dataclass(frozen=True, slots=True)
class EdgePolicy:
    anonymous: TokenBucket
    free: TokenBucket
    premium: TokenBucket
    rate_limits: bool = True

    def bucket(self, principal: Principal | None, address: str) -> tuple[str, str, TokenBucket]:
        """The caller's bucket key, policy name and policy."""
        if principal is None:
            return f"ip:{address}", "anonymous", self.anonymous
        policy = self.premium if principal.plan == "premium" else self.free
        return f"user:{principal.user_id}", principal.plan, policy


class EdgeMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        verifier: TokenVerifier,
        limiter: RateLimiter,
        policy: EdgePolicy,
    ) -> None:
        self.app = app
        self.verifier = verifier
        self.limiter = limiter
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra: dict[str, str] = dict(SECURITY_HEADERS)
        host = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"host"), None)
        policy = content_security_policy(scope["path"], host)
        if policy is not None:
            extra["Content-Security-Policy"] = policy
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                present = {name.lower() for name, _ in message.get("headers", [])}
                headers = list(message.get("headers", []))
                for name, value in extra.items():
                    if name.lower().encode() not in present:
                        headers.append((name.lower().encode(), value.encode("latin-1")))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self._admit(scope, receive, send_with_headers, extra)
        except Exception as error:
            if started:
                raise
            # The app answers an unhandled error outside every middleware, where these headers
            # would be lost: answer it here, and re-raise for the app to log it (it sends nothing
            # more once a response has started).
            problem = dependency_unavailable(error) or internal_error()
            response = JSONResponse(
                problem.body(instance=scope["path"]),
                status_code=problem.status,
                media_type=PROBLEM_JSON,
                headers=problem.headers,
            )
            await response(scope, receive, send_with_headers)
            raise

    async def _admit(
        self, scope: Scope, receive: Receive, send: Send, extra: dict[str, str]
    ) -> None:
        """The request, to the app if its token and rate allow; `extra` gains the headers every
        answer to it carries."""
        request = Request(scope)
        principal: Principal | None = None
        authorization = request.headers.get("authorization", "")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            token = token.strip()
            try:
                principal = await self.verifier.verify(token)
            except (InvalidToken, KeysUnavailable, RevocationsUnavailable):
                # Anonymous here (and rate limited so); a route that needs the caller
                # refuses the token itself, a public one serves the request.
                principal = None
            if principal is not None:
                state = scope.setdefault("state", {})
                state["principal"] = principal
                state["principal_token"] = token
        if self.policy.rate_limits and scope["path"].startswith("/api/"):
            key, name, bucket = self.policy.bucket(principal, client_ip(request))
            decision = await self.limiter.acquire(key, bucket)
            extra.update(rate_limit_headers(decision, bucket, name=name))
            if not decision.allowed:
                await self._refuse(
                    scope,
                    receive,
                    send,
                    429,
                    "rate-limited",
                    "Too many requests",
                    f"the {name} rate limit is {bucket.capacity} requests per "
                    f"{bucket.window:g} s; retry after {extra['Retry-After']} s",
                    {},
                )
                return
        await self.app(scope, receive, send)

    @staticmethod
    async def _refuse(
        scope: Scope,
        receive: Receive,
        send: Send,
        status: int,
        slug: str,
        title: str,
        detail: str,
        headers: dict[str, str],
    ) -> None:
        body = problem_body(status, slug, title, detail, scope["path"])
        response = JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)
        await response(scope, receive, send)
