"""Ticket codes: what a ticket's QR code carries. A code is a JWT (EdDSA) naming the ticket, its
session and its place, signed with one of ticketing's keys, so that a scanner without a network
can verify it against the published keys (`GET /api/tickets/keys`, a JSON Web Key Set).

Ticket keys are not identity's access-token keys, and the audiences differ: a ticket key that
leaked could forge tickets, never log anyone in, and an access token is never a ticket."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import jwt

from agora.auth.keys import SigningKey
from agora.auth.tokens import SIGNING_ALGORITHM

__all__ = ["TICKET_AUDIENCE", "InvalidCode", "TicketClaims", "issue_code", "verify_code"]

ISSUER = "agora-ticketing"
TICKET_AUDIENCE = "agora-ticket"


class InvalidCode(Exception):
    """Not a ticket code we signed (altered, of an unknown key, or not a ticket at all)."""


@dataclasses.dataclass(frozen=True, slots=True)
class TicketClaims:
    ticket_id: str
    session_id: str
    seat_id: str | None
    area_id: str | None


def issue_code(key: SigningKey, claims: TicketClaims, now: datetime) -> str:
    payload: dict[str, Any] = {
        "iss": ISSUER,
        "aud": TICKET_AUDIENCE,
        "sub": claims.ticket_id,
        "ses": claims.session_id,
        "iat": int(now.timestamp()),
    }
    if claims.seat_id is not None:
        payload["seat"] = claims.seat_id
    if claims.area_id is not None:
        payload["area"] = claims.area_id
    return jwt.encode(
        payload, key.private_pem, algorithm=SIGNING_ALGORITHM, headers={"kid": key.kid}
    )


def verify_code(code: str, keys: Mapping[str, SigningKey]) -> TicketClaims:
    """The claims of `code` if one of `keys` signed it for a ticket; `InvalidCode` if not."""
    try:
        kid = jwt.get_unverified_header(code).get("kid")
    except jwt.PyJWTError as error:
        raise InvalidCode("not a ticket code") from error
    key = keys.get(kid) if isinstance(kid, str) else None
    if key is None:
        raise InvalidCode("signed by a key that is not ours")
    public = jwt.PyJWK(key.public_jwk(), algorithm=SIGNING_ALGORITHM)
    try:
        claims = jwt.decode(
            code,
            public,
            algorithms=[SIGNING_ALGORITHM],
            audience=TICKET_AUDIENCE,
            issuer=ISSUER,
            leeway=60,  # the issuing host's clock may run ahead of the scanner's
            options={"require": ["sub", "ses", "iat"]},
        )
    except jwt.PyJWTError as error:
        raise InvalidCode("the signature or the claims do not hold") from error
    if not isinstance(claims.get("sub"), str) or not isinstance(claims.get("ses"), str):
        raise InvalidCode("not a ticket code")
    return TicketClaims(
        ticket_id=claims["sub"],
        session_id=claims["ses"],
        seat_id=claims.get("seat"),
        area_id=claims.get("area"),
    )
