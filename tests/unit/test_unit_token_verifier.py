"""TokenVerifier remembers tokens that verified: a reuse skips the signature check, never the
expiry or the revocation check."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest

from agora.auth.keys import SigningKey, issue_access_token, key_set
from agora.auth.revocation import InProcessRevocations
from agora.auth.tokens import InvalidToken, TokenVerifier


class Keys:
    def __init__(self, key: SigningKey) -> None:
        self.key = key

    async def __call__(self) -> Mapping[str, Any]:
        return key_set([self.key])


def token(key: SigningKey, *, session: str = "s1", ttl: timedelta = timedelta(minutes=5)) -> str:
    return issue_access_token(
        key,
        user_id="u1",
        role="buyer",
        plan="free",
        email="u1@example.test",
        session_id=session,
        now=datetime.now(UTC),
        ttl=ttl,
    )


def expiry(access: str) -> float:
    return float(jwt.decode(access, options={"verify_signature": False})["exp"])


async def test_a_remembered_token_still_expires() -> None:
    key = SigningKey.generate()
    verifier = TokenVerifier(Keys(key), leeway=0)
    short = token(key, ttl=timedelta(seconds=1))

    assert (await verifier.verify(short)).user_id == "u1"  # verified, and now remembered
    deadline = time.monotonic() + 10
    while time.time() < expiry(short) - 0.2:
        await verifier.verify(short)  # remembered: accepted until its exp
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    await asyncio.sleep(max(0.0, expiry(short) - time.time()) + 0.01)  # until exp has passed
    with pytest.raises(InvalidToken, match="expired"):
        await verifier.verify(short)


async def test_a_remembered_token_is_refused_once_its_session_is_revoked() -> None:
    key = SigningKey.generate()
    revocations = InProcessRevocations()
    verifier = TokenVerifier(Keys(key), revocations=revocations)
    access = token(key, session="s-revoked")
    assert (await verifier.verify(access)).session_id == "s-revoked"

    await revocations.revoke("s-revoked", ttl=60)

    with pytest.raises(InvalidToken, match="revoked"):
        await verifier.verify(access)


async def test_only_verified_tokens_are_remembered() -> None:
    key, stranger = SigningKey.generate(), SigningKey.generate()
    verifier = TokenVerifier(Keys(key), max_remembered=2)
    forged = token(stranger)  # a key the set does not hold
    forged_with_known_kid = token(SigningKey(kid=key.kid, private_pem=stranger.private_pem))

    for _ in range(2):  # a refusal is not remembered as a success
        with pytest.raises(InvalidToken):
            await verifier.verify(forged)
        with pytest.raises(InvalidToken, match="invalid"):
            await verifier.verify(forged_with_known_kid)
    tokens = [token(key, session=f"s{n}") for n in range(3)]
    for access in tokens:
        await verifier.verify(access)
    for access in tokens:  # beyond the bound, the oldest are verified afresh: still accepted
        assert (await verifier.verify(access)).user_id == "u1"
