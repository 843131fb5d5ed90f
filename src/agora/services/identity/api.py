"""Identity's HTTP API: accounts, sessions (tokens), plans, a seller's scanner accounts, and the
published signing keys."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import AfterValidator, BaseModel, Field, StringConstraints

from agora.auth import AUTHORIZE, Admin, CurrentUser, Plan, Role, Seller, client_ip
from agora.contracts.types import RequestModel
from agora.problems import ProblemError
from agora.services.identity import handlers
from agora.services.identity.deps import IdentityHandlersDep, SigningKeysDep
from agora.services.identity.domain import (
    EMAIL_MAX_LENGTH,
    PASSWORD_MAX_LENGTH,
    PASSWORD_MIN_LENGTH,
    Profile,
    RegisteredRole,
    User,
    is_valid_email,
    normalise_email,
)


def _email(value: str) -> str:
    email = normalise_email(value)
    if not is_valid_email(email):
        raise ValueError("not a valid e-mail address")
    return email


Email = Annotated[str, StringConstraints(max_length=320), AfterValidator(_email)]
Password = Annotated[
    str, StringConstraints(min_length=PASSWORD_MIN_LENGTH, max_length=PASSWORD_MAX_LENGTH)
]


class RegisterIn(RequestModel):
    email: Email
    password: Password
    role: RegisteredRole


class RegistrationOut(BaseModel):
    status: Literal["accepted"] = "accepted"
    email: str
    detail: str


class LoginIn(RequestModel):
    email: Annotated[str, StringConstraints(min_length=1, max_length=EMAIL_MAX_LENGTH)]
    password: Annotated[str, StringConstraints(min_length=1, max_length=PASSWORD_MAX_LENGTH)]


class RefreshIn(RequestModel):
    refresh_token: Annotated[str, StringConstraints(min_length=1, max_length=200)]


class TokensOut(BaseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["Bearer"] = "Bearer"
    expires_in: int

    @classmethod
    def of(cls, tokens: handlers.Tokens) -> TokensOut:
        return cls(
            access_token=tokens.access_token,
            refresh_token=tokens.refresh_token,
            expires_in=tokens.expires_in,
        )


class UserOut(BaseModel):
    id: str
    email: str
    role: Role
    plan: Plan
    works_for: str | None = Field(None, description="The seller a scanner works for")
    created_at: datetime

    @classmethod
    def of(cls, user: User) -> UserOut:
        return cls(
            id=user.id,
            email=user.email,
            role=user.role,
            plan=user.plan,
            works_for=user.works_for,
            created_at=user.created_at,
        )


class PlanIn(RequestModel):
    plan: Plan


Text200 = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class ProfileIn(RequestModel):
    """The whole profile: a field left out is cleared."""

    name: Text200 | None = Field(None, description="Printed on tickets")
    phone: Annotated[str, StringConstraints(pattern=r"^\+?[0-9 ()./-]{3,40}$")] | None = None
    address: Annotated[str, StringConstraints(min_length=1, max_length=500)] | None = None


class ProfileOut(BaseModel):
    name: str | None
    phone: str | None
    address: str | None

    @classmethod
    def of(cls, profile: Profile) -> ProfileOut:
        return cls(name=profile.name, phone=profile.phone, address=profile.address)


class ScannerIn(RequestModel):
    email: Email
    password: Password
    name: Text200 | None = Field(None, description="Who stands at the door, for the seller")


class ScannerOut(BaseModel):
    id: str
    email: str
    role: Literal["scanner"] = "scanner"
    works_for: str = Field(description="The seller the scanner checks tickets in for")
    name: str | None
    created_at: datetime

    @classmethod
    def of(cls, scanner: handlers.Scanner) -> ScannerOut:
        user = scanner.user
        assert user.works_for is not None
        return cls(
            id=user.id,
            email=user.email,
            works_for=user.works_for,
            name=scanner.name,
            created_at=user.created_at,
        )


class ScannersOut(BaseModel):
    items: list[ScannerOut]
    page: int
    page_size: int
    total: int


Page = Annotated[int, Query(ge=1, le=10_000, description="1-based page number")]
PageSize = Annotated[int, Query(ge=1, le=100)]


def _problems(*codes: int) -> dict[int | str, dict[str, Any]]:
    descriptions = {
        401: "Wrong credentials, or an invalid, expired or revoked token",
        403: "The caller's role may not do this",
        404: "No such user",
        409: "The address has an account already",
        422: "Invalid request",
        429: "Too many failed logins; see Retry-After",
    }
    return {
        code: {"description": descriptions[code], "content": {"application/problem+json": {}}}
        for code in codes
    }


def _not_stored(tokens: TokensOut, response: Response) -> TokensOut:
    """Tokens must not be kept by any cache on the way (RFC 6749, section 5.1)."""
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return tokens


REGISTERED = (
    "If the address can be registered, its account is ready: log in with it. An address "
    "that has an account already keeps it unchanged."
)


def build_router() -> APIRouter:
    router = APIRouter(tags=["identity"])

    def user_not_found(user_id: str) -> ProblemError:
        return ProblemError(404, "user-not-found", "User not found", f"no user {user_id}")

    @router.post(
        "/api/auth/register",
        status_code=202,
        response_model=RegistrationOut,
        summary="Register a buyer or seller account",
        description=(
            "Always 202 with the same body, whether the address was free or has an account "
            "already (and in the same time), so that nobody can learn which addresses are "
            "registered. Admins are created with `agora users create-admin`."
        ),
        responses=_problems(422),
    )
    async def register(identity: IdentityHandlersDep, body: RegisterIn) -> RegistrationOut:
        await identity.register(body.email, body.password, body.role)
        return RegistrationOut(email=body.email, detail=REGISTERED)

    @router.post(
        "/api/auth/login",
        response_model=TokensOut,
        summary="Log in: an access token and a refresh token",
        description=(
            "A wrong password and an unknown address get the same 401. Failed logins are "
            "throttled per address and per client address (429 with `Retry-After`)."
        ),
        responses=_problems(401, 422, 429),
    )
    async def login(
        identity: IdentityHandlersDep, body: LoginIn, request: Request, response: Response
    ) -> TokensOut:
        try:
            tokens = await identity.login(body.email, body.password, client_ip(request))
        except handlers.InvalidCredentials:
            raise ProblemError(
                401,
                "invalid-credentials",
                "Invalid credentials",
                "The e-mail address or the password is wrong.",
                headers={"WWW-Authenticate": "Bearer"},
            ) from None
        except handlers.LoginThrottled as error:
            raise ProblemError(
                429,
                "login-throttled",
                "Too many failed logins",
                f"Too many failed logins for this address or from this client; retry in "
                f"{error.retry_after} s.",
                headers={"Retry-After": str(error.retry_after)},
            ) from None
        return _not_stored(TokensOut.of(tokens), response)

    @router.post(
        "/api/auth/refresh",
        response_model=TokensOut,
        summary="New tokens for a refresh token (which is used up)",
        description=(
            "Each refresh token works once and is replaced by the one returned. Presenting a "
            "used one again revokes its whole session (every refresh and access token of it)."
        ),
        responses=_problems(401, 422),
    )
    async def refresh(
        identity: IdentityHandlersDep, body: RefreshIn, response: Response
    ) -> TokensOut:
        try:
            tokens = await identity.refresh(body.refresh_token)
        except handlers.InvalidRefreshToken as error:
            raise ProblemError(
                401,
                "invalid-refresh-token",
                "Invalid refresh token",
                str(error),
                headers={"WWW-Authenticate": "Bearer"},
            ) from None
        return _not_stored(TokensOut.of(tokens), response)

    @router.post(
        "/api/auth/logout",
        status_code=204,
        response_class=Response,
        summary="Log out: revoke the caller's session",
        responses=AUTHORIZE,
    )
    async def logout(identity: IdentityHandlersDep, principal: CurrentUser) -> Response:
        await identity.logout(principal.session_id)
        return Response(status_code=204)

    @router.get(
        "/api/auth/me",
        response_model=UserOut,
        summary="The caller's account",
        responses=AUTHORIZE,
    )
    async def me(identity: IdentityHandlersDep, principal: CurrentUser) -> UserOut:
        try:
            return UserOut.of(await identity.user(principal.user_id))
        except handlers.UserNotFound:
            raise user_not_found(principal.user_id) from None

    @router.get(
        "/api/auth/me/profile",
        response_model=ProfileOut,
        summary="The caller's profile (name for tickets, phone, postal address)",
        responses=AUTHORIZE,
    )
    async def my_profile(identity: IdentityHandlersDep, principal: CurrentUser) -> ProfileOut:
        try:
            return ProfileOut.of(await identity.profile(principal.user_id))
        except handlers.UserNotFound:
            raise user_not_found(principal.user_id) from None

    @router.put(
        "/api/auth/me/profile",
        response_model=ProfileOut,
        summary="Replace the caller's profile",
        description="Tickets issued from now on carry the name.",
        responses={**AUTHORIZE, **_problems(422)},
    )
    async def change_my_profile(
        identity: IdentityHandlersDep, principal: CurrentUser, body: ProfileIn
    ) -> ProfileOut:
        profile = Profile(name=body.name, phone=body.phone, address=body.address)
        try:
            return ProfileOut.of(await identity.change_profile(principal.user_id, profile))
        except handlers.UserNotFound:
            raise user_not_found(principal.user_id) from None

    @router.put(
        "/api/users/{user_id}/plan",
        response_model=UserOut,
        summary="Put a user on a plan (admins only)",
        description="The plan shows in the user's access tokens from the next one issued.",
        responses={**AUTHORIZE, **_problems(404, 422)},
    )
    async def change_plan(
        identity: IdentityHandlersDep,
        user_id: Annotated[str, Path(max_length=100)],
        body: PlanIn,
        _admin: Admin,
    ) -> UserOut:
        try:
            return UserOut.of(await identity.change_plan(user_id, body.plan))
        except handlers.UserNotFound:
            raise user_not_found(user_id) from None

    @router.post(
        "/api/auth/scanners",
        status_code=201,
        response_model=ScannerOut,
        summary="Make a scanner account: door staff who check the seller's tickets in",
        description=(
            "The scanner logs in with `POST /api/auth/login` like anyone, and may then check "
            "tickets in at the doors of the seller's sessions (and read their counts), nothing "
            "else. An address that has an account already is refused (409 `email-taken`)."
        ),
        responses={**AUTHORIZE, **_problems(409, 422)},
    )
    async def create_scanner(
        identity: IdentityHandlersDep, body: ScannerIn, seller: Seller
    ) -> ScannerOut:
        try:
            scanner = await identity.create_scanner(
                seller.user_id, body.email, body.password, body.name
            )
        except handlers.EmailTaken:
            raise ProblemError(
                409,
                "email-taken",
                "Address taken",
                f"{body.email} has an account already: choose another address.",
            ) from None
        return ScannerOut.of(scanner)

    @router.get(
        "/api/auth/scanners",
        response_model=ScannersOut,
        summary="The caller's scanner accounts, oldest first",
        responses=AUTHORIZE,
    )
    async def my_scanners(
        identity: IdentityHandlersDep, seller: Seller, page: Page = 1, page_size: PageSize = 20
    ) -> ScannersOut:
        found, total = await identity.scanners(
            seller.user_id, limit=page_size, offset=(page - 1) * page_size
        )
        return ScannersOut(
            items=[ScannerOut.of(scanner) for scanner in found],
            page=page,
            page_size=page_size,
            total=total,
        )

    @router.delete(
        "/api/auth/scanners/{scanner_id}",
        status_code=204,
        response_class=Response,
        summary="Delete one of the caller's scanner accounts",
        description=(
            "It can no longer log in, and its sessions are revoked: its refresh and access "
            "tokens are refused from now on. Another seller's scanner is not found (404)."
        ),
        responses={**AUTHORIZE, **_problems(404)},
    )
    async def delete_scanner(
        identity: IdentityHandlersDep,
        scanner_id: Annotated[str, Path(max_length=100)],
        seller: Seller,
    ) -> Response:
        try:
            await identity.delete_scanner(seller.user_id, scanner_id)
        except handlers.ScannerNotFound:
            raise ProblemError(
                404, "scanner-not-found", "Scanner not found", f"no scanner {scanner_id}"
            ) from None
        return Response(status_code=204)

    @router.get(
        "/.well-known/jwks.json",
        summary="The public keys that verify access tokens (JSON Web Key Set)",
        response_model=dict[str, Any],
    )
    async def jwks(keys: SigningKeysDep, response: Response) -> dict[str, Any]:
        response.headers["Cache-Control"] = "public, max-age=10"
        return dict(await keys.key_set())

    return router
