"""Identity's rules, free of infrastructure: what a valid address and password are, the token
lifetimes, and when failed logins throttle an account or an address."""

from __future__ import annotations

import dataclasses
import hashlib
import math
import re
import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Literal

from agora.auth import MAX_ISSUER_SKEW, Plan, Role

__all__ = [
    "EMAIL_MAX_LENGTH",
    "PASSWORD_MAX_LENGTH",
    "PASSWORD_MIN_LENGTH",
    "Lifetimes",
    "Profile",
    "RegisteredRole",
    "ThrottleLimits",
    "User",
    "hash_refresh_token",
    "is_valid_email",
    "new_refresh_token",
    "normalise_email",
    "throttled_for",
]

EMAIL_MAX_LENGTH = 254
PASSWORD_MIN_LENGTH = 10
PASSWORD_MAX_LENGTH = 200

# A practical subset of RFC 5322: dot-atom local part, and a domain of at least two labels.
_EMAIL = re.compile(
    r"^[a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$"
)


def normalise_email(email: str) -> str:
    """The address as stored and compared: trimmed, lower case."""
    return email.strip().lower()


def is_valid_email(email: str) -> bool:
    """`email` (normalised) looks like a deliverable address."""
    return len(email) <= EMAIL_MAX_LENGTH and _EMAIL.fullmatch(email) is not None


# The roles anyone may register as. Admins are created on the command line; scanners by the
# seller they work for.
RegisteredRole = Literal["buyer", "seller"]


@dataclasses.dataclass(frozen=True, slots=True)
class User:
    id: str
    email: str
    role: Role
    plan: Plan
    created_at: datetime
    works_for: str | None = None
    """The seller a scanner checks tickets in for; None for every other role."""


@dataclasses.dataclass(frozen=True, slots=True)
class Profile:
    name: str | None = None
    phone: str | None = None
    address: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Lifetimes:
    """How long tokens live: access tokens briefly (they cannot be recalled, only listed as
    revoked), refresh tokens long (each is used once)."""

    access: timedelta = timedelta(minutes=15)
    refresh: timedelta = timedelta(days=30)
    # A retired signing key stays published this much longer than the tokens it signed.
    key_margin: timedelta = timedelta(minutes=5)
    # A new signing key is published this long before it signs (verifiers refetch keys at most
    # every 10 s, and may fetch them through a cache).
    key_activation: timedelta = timedelta(seconds=30)

    @property
    def revocation(self) -> timedelta:
        """How long a revoked session's access tokens must be refused: their lifetime, the
        skew tolerated between identity's clock and a verifier's (a token issued by a clock
        ahead lives that much longer by the verifier's), and a minute for the leeway."""
        return self.access + timedelta(seconds=MAX_ISSUER_SKEW) + timedelta(minutes=1)

    @property
    def key_publication(self) -> timedelta:
        """How long a retired key stays in the published key set."""
        return self.access + self.key_margin


def new_refresh_token() -> str:
    return secrets.token_urlsafe(32)


def hash_refresh_token(token: str) -> str:
    """Refresh tokens are stored by this digest only: a read of the table reveals none. They are
    random (256 bits), so a fast unsalted hash suffices."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclasses.dataclass(frozen=True, slots=True)
class ThrottleLimits:
    """At most `per_account` failed logins for one address, and `per_ip` from one client
    address, within any `window`; after that, attempts are refused until the oldest failures
    leave the window. Unknown addresses count alike."""

    per_account: int = 5
    per_ip: int = 20
    window: timedelta = timedelta(minutes=15)


def throttled_for(
    earlier: Sequence[datetime], limit: int, window: timedelta, now: datetime
) -> int | None:
    """Seconds until another attempt may be made, or None if this one may proceed.

    `earlier` are the times of the other attempts counted against one subject (failed ones,
    and any in flight). This one may proceed while fewer than `limit` of them fall within
    `window`; otherwise the subject is free again once the `limit`-th most recent has left it.
    """
    recent = sorted((at for at in earlier if at > now - window), reverse=True)
    if len(recent) < limit:
        return None
    frees_at = recent[limit - 1] + window
    return max(1, math.ceil((frees_at - now).total_seconds()))
