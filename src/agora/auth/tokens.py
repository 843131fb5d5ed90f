"""Access tokens: what they claim, and how any process verifies one with identity's public keys.

An access token is a JWT signed with EdDSA (Ed25519) under a key named by `kid`. Verification
accepts that algorithm only (so `alg: none` and HMAC tokens forged with a public key fail), a
known `kid`, this issuer and audience, and an unexpired `exp` (by the verifier's clock, with a
leeway of seconds); then, if a revocation list is given, a session that was not revoked.

Clocks of processes drift apart. A token's `iat` in the future says the issuer's clock (identity's)
runs ahead of the verifier's, not that the token is forged (its signature says who issued it):
up to `MAX_ISSUER_SKEW` it is accepted, and reported (`agora.messaging.clocks.PeerClocks`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Literal, Protocol, cast, get_args

import httpx
import jwt

from agora.messaging.clocks import CLOCK_LEEWAY, PeerClocks
from agora.shared.revocations import Revocations

__all__ = [
    "ACCESS_AUDIENCE",
    "ISSUER",
    "MAX_ISSUER_SKEW",
    "SIGNING_ALGORITHM",
    "HttpKeySource",
    "InvalidToken",
    "KeySource",
    "KeysUnavailable",
    "Plan",
    "Principal",
    "Role",
    "TokenVerifier",
]

logger = logging.getLogger(__name__)

ISSUER = "agora-identity"
ACCESS_AUDIENCE = "agora"
SIGNING_ALGORITHM = "EdDSA"
ISSUER_PEER = "identity"
"""The issuer, as a peer whose clock tokens' `iat` reads."""

# A scanner is a seller's door staff: its tokens name the seller in `works_for`.
Role = Literal["buyer", "seller", "admin", "scanner"]
Plan = Literal["free", "premium"]
ROLES: frozenset[str] = frozenset(get_args(Role))
PLANS: frozenset[str] = frozenset(get_args(Plan))
REQUIRED_CLAIMS = ("exp", "iat", "iss", "aud", "sub", "sid", "role", "plan", "email")

MAX_ISSUER_SKEW = 300.0
"""Seconds the issuer's clock may run ahead of a verifier's: a token issued up to this far in the
verifier's future is accepted, one beyond it refused. Identity keeps a revoked session on the
revocation list this much longer than its tokens live (`Lifetimes.revocation`), so that a token
that lives longer by the verifier's clock is still refused once revoked."""


class InvalidToken(Exception):
    """The token is not one we issued, or no longer valid; `str()` says why."""


class KeysUnavailable(Exception):
    """The published keys could not be fetched (identity unreachable)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Principal:
    """The caller an access token names."""

    user_id: str
    role: Role
    plan: Plan
    email: str
    session_id: str
    expires_at: datetime
    works_for: str | None = None
    """The seller a scanner checks tickets in for; None for every other role."""


class KeySource(Protocol):
    async def __call__(self) -> Mapping[str, Any]:
        """The JSON Web Key Set: `{"keys": [{"kid": ..., "kty": "OKP", ...}, ...]}`."""
        ...


class HttpKeySource:
    """The key set fetched from a URL (identity's `/.well-known/jwks.json`)."""

    def __init__(self, url: str, *, timeout: float = 5.0) -> None:
        self.url = url
        self._timeout = timeout

    async def __call__(self) -> Mapping[str, Any]:
        try:
            async with httpx.AsyncClient(timeout=self._timeout) as client:
                response = await client.get(self.url)
                response.raise_for_status()
                return cast(Mapping[str, Any], response.json())
        except (httpx.HTTPError, ValueError) as error:
            raise KeysUnavailable(f"cannot fetch {self.url}: {error!r}") from error


class TokenVerifier:
    """Verifies access tokens against the key set of `source`, kept in memory: an unknown `kid`
    (a key rotated in since) fetches the set again, at most once per `refresh_interval`.

    A token that verified is remembered (the `max_remembered` most recently used): using it
    again costs an expiry check and the revocation check, not a signature check. (A key is
    retired only after every token it signed has expired, so nothing remembered outlives it.)
    """

    def __init__(
        self,
        source: KeySource,
        *,
        revocations: Revocations | None = None,
        leeway: float = CLOCK_LEEWAY,
        refresh_interval: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        max_remembered: int = 10_000,
        max_skew: float = MAX_ISSUER_SKEW,
        clocks: PeerClocks | None = None,
    ) -> None:
        """`leeway`: seconds a token is still accepted past its `exp`. `max_skew`: how far in
        the future its `iat` may be; how far it is, is reported to `clocks` (as identity's)."""
        self._source = source
        self._max_skew = max_skew
        self.clocks = clocks or PeerClocks(leeway=leeway)
        self._wall_clock = wall_clock
        self._verified: OrderedDict[str, Principal] = OrderedDict()
        self._max_remembered = max_remembered
        self._revocations = revocations
        self._leeway = leeway
        self._refresh_interval = refresh_interval
        self._clock = clock
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at: float | None = None
        self._fetching = asyncio.Lock()

    async def _key(self, kid: str) -> jwt.PyJWK | None:
        key = self._keys.get(kid)
        if key is not None:
            return key
        async with self._fetching:
            now = self._clock()
            if kid not in self._keys and (
                self._fetched_at is None or now - self._fetched_at >= self._refresh_interval
            ):
                self._keys = _parse_key_set(await self._source())
                self._fetched_at = now
        return self._keys.get(kid)

    async def verify(self, token: str) -> Principal:
        principal = self._verified.get(token)
        if principal is None:
            principal = await self._verify_signed(token)
            self._verified[token] = principal
            if len(self._verified) > self._max_remembered:
                self._verified.popitem(last=False)
        elif principal.expires_at.timestamp() + self._leeway <= self._wall_clock():
            del self._verified[token]
            raise InvalidToken("the token has expired")
        else:
            self._verified.move_to_end(token)
        if self._revocations is not None and await self._revocations.is_revoked(
            principal.session_id
        ):
            raise InvalidToken("the token's session was revoked")
        return principal

    async def _verify_signed(self, token: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as error:
            raise InvalidToken(f"malformed token: {error}") from None
        if header.get("alg") != SIGNING_ALGORITHM:
            raise InvalidToken(f"algorithm {header.get('alg')!r} is not accepted")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise InvalidToken("the token names no key (kid)")
        key = await self._key(kid)
        if key is None:
            raise InvalidToken(f"unknown signing key {kid!r}")
        try:
            claims = jwt.decode(
                token,
                key=key,
                algorithms=[SIGNING_ALGORITHM],
                audience=ACCESS_AUDIENCE,
                issuer=ISSUER,
                leeway=self._leeway,
                # `iat` is judged below against the skew tolerated, not the leeway.
                options={"require": list(REQUIRED_CLAIMS), "verify_iat": False},
            )
        except jwt.ExpiredSignatureError:
            raise InvalidToken("the token has expired") from None
        except jwt.PyJWTError as error:
            raise InvalidToken(f"the token is invalid: {error}") from None
        issued_at = claims["iat"]
        if not isinstance(issued_at, int | float) or isinstance(issued_at, bool):
            raise InvalidToken("the token's iat is not a number")
        ahead = float(issued_at) - self._wall_clock()
        self.clocks.observe(ISSUER_PEER, ahead)
        if ahead > self._max_skew:
            raise InvalidToken(
                f"the token was issued {ahead:.0f} s in the future: its issuer's clock runs "
                f"ahead of this process's by more than {self._max_skew:.0f} s"
            )
        return _principal(claims)


def _parse_key_set(key_set: Mapping[str, Any]) -> dict[str, jwt.PyJWK]:
    keys: dict[str, jwt.PyJWK] = {}
    for data in key_set.get("keys", []):
        kid = data.get("kid")
        if not kid:
            continue
        try:
            keys[kid] = jwt.PyJWK(data, algorithm=SIGNING_ALGORITHM)
        except jwt.PyJWTError as error:
            logger.warning("ignoring published key %s: %s", kid, error)
    return keys


def _principal(claims: Mapping[str, Any]) -> Principal:
    role, plan = claims["role"], claims["plan"]
    if role not in ROLES or plan not in PLANS:
        raise InvalidToken("the token's role or plan is unknown")
    for name in ("sub", "sid", "email"):
        if not isinstance(claims[name], str) or not claims[name]:
            raise InvalidToken(f"the token's {name} is not a string")
    # Optional: tokens issued before scanners existed carry no `works_for`.
    works_for = claims.get("works_for")
    if works_for is not None and (not isinstance(works_for, str) or not works_for):
        raise InvalidToken("the token's works_for is not a string")
    if (role == "scanner") != (works_for is not None):
        raise InvalidToken("a scanner's token, and only a scanner's, names whom it works for")
    return Principal(
        user_id=claims["sub"],
        role=role,
        plan=plan,
        email=claims["email"],
        session_id=claims["sid"],
        expires_at=datetime.fromtimestamp(int(claims["exp"]), UTC),
        works_for=works_for,
    )
