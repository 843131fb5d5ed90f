"""TokenVerifier remembers tokens that verified: a reuse skips the signature check, never the
expiry or the revocation check."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from agora.auth.keys import SigningKey, issue_access_token, key_set
from agora.auth.tokens import MAX_ISSUER_SKEW, InvalidToken, TokenVerifier
from agora.messaging import MessagingMetrics
from agora.shared.revocations import RevocationsUnavailable
from agora.shared.revocations.in_process import InProcessRevocations
from agora.shared.revocations.redis import RedisRevocations


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


async def test_a_remembered_token_still_expires() -> None:
    """Past its exp by the verifier's wall clock, a token it remembers is refused (the token's
    signature check, which would also refuse it, is not what refuses it here: the real clock
    is still before exp)."""
    key = SigningKey.generate()
    now = [time.time()]
    verifier = TokenVerifier(Keys(key), leeway=0, wall_clock=lambda: now[0])
    access = token(key, ttl=timedelta(minutes=5))
    assert (await verifier.verify(access)).user_id == "u1"  # verified, and now remembered

    now[0] += 4 * 60
    assert (await verifier.verify(access)).user_id == "u1"
    now[0] += 2 * 60
    with pytest.raises(InvalidToken, match="expired"):
        await verifier.verify(access)


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


async def test_an_unreadable_revocation_list_makes_a_token_unknown_not_valid() -> None:
    """Redis unreachable (here: nothing listens on the port): the verifier says it cannot tell,
    which the API answers with 503 `revocations-unavailable`, never by letting the token in."""
    key = SigningKey.generate()
    unreachable = Redis.from_url("redis://127.0.0.1:9/0", socket_connect_timeout=1)
    verifier = TokenVerifier(Keys(key), revocations=RedisRevocations(unreachable))
    try:
        with pytest.raises(RevocationsUnavailable):
            await verifier.verify(token(key))
    finally:
        await unreachable.aclose()


def issued_ahead(key: SigningKey, seconds: float) -> str:
    """A token as an issuer whose clock runs `seconds` ahead of ours issues it."""
    return issue_access_token(
        key,
        user_id="u1",
        role="buyer",
        plan="free",
        email="u1@example.test",
        session_id="s1",
        now=datetime.now(UTC) + timedelta(seconds=seconds),
        ttl=timedelta(minutes=15),
    )


async def test_a_token_from_an_issuer_ahead_within_the_tolerance_is_accepted_and_reported(
    caplog: pytest.LogCaptureFixture,
) -> None:
    key = SigningKey.generate()
    registry = CollectorRegistry()
    verifier = TokenVerifier(Keys(key), clocks=MessagingMetrics(registry).peer_clocks)
    with caplog.at_level(logging.INFO, logger="agora.messaging.clocks"):
        assert (await verifier.verify(issued_ahead(key, 180))).user_id == "u1"
        await verifier.verify(issued_ahead(key, 181))
    assert 170 < verifier.clocks.ahead["identity"] < 190
    ahead = registry.get_sample_value("agora_peer_clock_ahead_seconds", {"peer": "identity"})
    assert ahead is not None
    assert 170 < ahead < 190
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings  # one line per change, not one per token
    assert "ahead" in warnings[0].getMessage()
    with caplog.at_level(logging.INFO, logger="agora.messaging.clocks"):
        await verifier.verify(token(key))
    assert verifier.clocks.ahead["identity"] < 5
    assert any("agrees" in r.getMessage() for r in caplog.records)


async def test_a_token_from_an_issuer_ahead_beyond_the_tolerance_is_refused() -> None:
    key = SigningKey.generate()
    verifier = TokenVerifier(Keys(key), max_skew=60)
    with pytest.raises(InvalidToken, match="in the future"):
        await verifier.verify(issued_ahead(key, 180))
    assert (await verifier.verify(issued_ahead(key, 30))).user_id == "u1"
    with pytest.raises(InvalidToken, match="in the future"):
        await TokenVerifier(Keys(key)).verify(issued_ahead(key, MAX_ISSUER_SKEW + 60))
