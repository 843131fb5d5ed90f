"""The FastAPI side: a route declares who may call it with one of the annotated types here.

    async def place_order(body: PlaceOrderIn, buyer: Buyer) -> ...

The bearer scheme makes OpenAPI describe the security (so `/docs` offers "Authorize"); the
verifier is the app's (`app.state.token_verifier`, set by the runtime). Refusals are problems:
401 `authentication-required` or `invalid-token` (with `WWW-Authenticate`), 403 `forbidden`.
A route that takes `OptionalUser` (or none of these) is public: a token that does not verify
is ignored there, never refused.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.requests import HTTPConnection

from agora.auth.tokens import InvalidToken, KeysUnavailable, Principal, Role, TokenVerifier
from agora.messaging.context import current_request
from agora.problems import ProblemError
from agora.shared.revocations import RevocationsUnavailable

__all__ = [
    "AUTHORIZE",
    "Admin",
    "Buyer",
    "CurrentUser",
    "DoorStaff",
    "OptionalUser",
    "Seller",
    "SellerOrAdmin",
    "authenticate",
    "client_ip",
    "require",
]

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="An access token from `POST /api/auth/login` (or `/api/auth/refresh`).",
)

AUTHORIZE: dict[int | str, dict[str, Any]] = {
    401: {
        "description": "No access token, or one that is invalid, expired or revoked",
        "content": {"application/problem+json": {}},
    },
    403: {
        "description": "The caller's role may not do this",
        "content": {"application/problem+json": {}},
    },
}


def client_ip(request: Request) -> str:
    """The caller's address: the peer's, or, behind the entry's proxy
    (`app.state.behind_proxy`), the address it appended to `X-Forwarded-For`."""
    peer = request.client.host if request.client else "unknown"
    if getattr(request.app.state, "behind_proxy", False):
        forwarded = request.headers.get("x-forwarded-for", "")
        last = forwarded.rsplit(",", 1)[-1].strip()
        if last:
            return last
    return peer


def verifier_of(request: HTTPConnection) -> TokenVerifier:
    verifier: TokenVerifier | None = getattr(request.app.state, "token_verifier", None)
    if verifier is None:
        raise RuntimeError("the app has no token verifier (app.state.token_verifier)")
    return verifier


INVALID_TOKEN_DETAIL = (
    "The access token is invalid, expired or revoked: log in again (POST /api/auth/login) "
    "or refresh it (POST /api/auth/refresh)."
)


async def principal_of(request: Request, token: str) -> Principal:
    """The principal of `token`, verified once per request (the edge may have done it).

    Raises `InvalidToken` for a token that does not verify: whether that refuses the request
    is the route's to say (`authenticate` and `require`)."""
    known: Principal | None = getattr(request.state, "principal", None)
    if known is not None and getattr(request.state, "principal_token", None) == token:
        return _acting(known)
    try:
        principal = await verifier_of(request).verify(token)
    except KeysUnavailable:
        raise ProblemError(
            503,
            "keys-unavailable",
            "Signing keys unavailable",
            "The identity service's published keys could not be fetched; retry shortly.",
            headers={"Retry-After": "1"},
        ) from None
    except RevocationsUnavailable:
        raise ProblemError(
            503,
            "revocations-unavailable",
            "Revoked sessions unavailable",
            "Whether this token's session was revoked cannot be read now; retry shortly.",
            headers={"Retry-After": "1"},
        ) from None
    request.state.principal = principal
    request.state.principal_token = token
    return _acting(principal)


def _acting(principal: Principal) -> Principal:
    """Name `principal` as the request's actor, for the events it causes."""
    context = current_request()
    if context is not None:
        context.actor = principal.user_id
    return principal


def _bearer_token(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


async def authenticate(request: Request) -> Principal | None:
    """The caller, or None for an anonymous request.

    A token that does not verify counts as none: a public route serves its caller as anyone,
    so that a client holding a stale token can still log in or browse. It reads the header
    itself rather than through the bearer scheme, so that OpenAPI marks no security on the
    routes that do not need it."""
    token = _bearer_token(request)
    if token is None:
        return None
    try:
        return await principal_of(request, token)
    except InvalidToken:
        return None


def require(*roles: Role) -> Callable[..., Awaitable[Principal]]:
    """A dependency: an authenticated caller, of one of `roles` (any role if none given)."""

    async def dependency(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Principal:
        if credentials is None:
            raise ProblemError(
                401,
                "authentication-required",
                "Authentication required",
                "Send an access token: Authorization: Bearer <token> (POST /api/auth/login).",
                headers={"WWW-Authenticate": "Bearer"},
            )
        try:
            principal = await principal_of(request, credentials.credentials)
        except InvalidToken:
            # Why it failed (the decoder's words) helps nobody but someone probing.
            raise ProblemError(
                401,
                "invalid-token",
                "Invalid access token",
                INVALID_TOKEN_DETAIL,
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
            ) from None
        if roles and principal.role not in roles:
            raise ProblemError(
                403,
                "forbidden",
                "Forbidden",
                f"this needs the role {' or '.join(roles)}; the caller is a {principal.role}",
            )
        return principal

    return dependency


OptionalUser = Annotated[Principal | None, Depends(authenticate)]
CurrentUser = Annotated[Principal, Depends(require())]
Buyer = Annotated[Principal, Depends(require("buyer"))]
Seller = Annotated[Principal, Depends(require("seller"))]
SellerOrAdmin = Annotated[Principal, Depends(require("seller", "admin"))]
Admin = Annotated[Principal, Depends(require("admin"))]
# Whose events' doors a caller may stand at is the route's to check (`may_scan`).
DoorStaff = Annotated[Principal, Depends(require("seller", "admin", "scanner"))]
