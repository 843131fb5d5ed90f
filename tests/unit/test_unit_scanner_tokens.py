"""A scanner's access token names the seller it works for (`works_for`); tokens of the other
roles, including those issued before scanners existed, claim nothing of the kind."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest

from agora.auth import Principal, may_manage, may_scan
from agora.auth.keys import SigningKey, issue_access_token, key_set
from agora.auth.tokens import SIGNING_ALGORITHM, InvalidToken, Role, TokenVerifier


class Keys:
    def __init__(self, key: SigningKey) -> None:
        self.key = key

    async def __call__(self) -> Mapping[str, Any]:
        return key_set([self.key])


def signed(key: SigningKey, **claims: Any) -> str:
    """A token of the claims an older identity issued, and `claims` over them."""
    now = datetime.now(UTC)
    body = {
        "iss": "agora-identity",
        "aud": "agora",
        "sub": "u1",
        "role": "seller",
        "plan": "free",
        "email": "u1@example.test",
        "sid": "s1",
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(minutes=5)).timestamp()),
        **claims,
    }
    return jwt.encode(body, key.private_pem, algorithm=SIGNING_ALGORITHM, headers={"kid": key.kid})


async def test_a_token_without_works_for_still_verifies() -> None:
    key = SigningKey.generate()
    principal = await TokenVerifier(Keys(key)).verify(signed(key))
    assert (principal.role, principal.works_for) == ("seller", None)


async def test_a_scanners_token_names_its_seller() -> None:
    key = SigningKey.generate()
    access = issue_access_token(
        key,
        user_id="door-1",
        role="scanner",
        plan="free",
        email="door@example.test",
        session_id="s1",
        now=datetime.now(UTC),
        ttl=timedelta(minutes=5),
        works_for="seller-1",
    )
    principal = await TokenVerifier(Keys(key)).verify(access)
    assert (principal.role, principal.works_for) == ("scanner", "seller-1")


@pytest.mark.parametrize(
    "claims",
    [{"role": "scanner"}, {"works_for": "seller-1"}, {"role": "scanner", "works_for": 7}],
    ids=["scanner-for-nobody", "seller-for-someone", "works-for-not-a-string"],
)
async def test_works_for_belongs_to_scanners_only(claims: dict[str, Any]) -> None:
    key = SigningKey.generate()
    with pytest.raises(InvalidToken, match=r"works.for"):
        await TokenVerifier(Keys(key)).verify(signed(key, **claims))


def caller(role: Role, user_id: str = "u1", works_for: str | None = None) -> Principal:
    return Principal(
        user_id=user_id,
        role=role,
        plan="free",
        email=f"{user_id}@example.test",
        session_id="s1",
        expires_at=datetime.now(UTC),
        works_for=works_for,
    )


def test_who_may_scan_at_a_sellers_door() -> None:
    assert may_scan(caller("seller", "seller-1"), "seller-1")
    assert may_scan(caller("admin"), "seller-1")
    assert may_scan(caller("scanner", works_for="seller-1"), "seller-1")
    assert not may_scan(caller("scanner", works_for="seller-2"), "seller-1")
    assert not may_scan(caller("scanner", "seller-1", works_for="seller-2"), "seller-1")
    assert not may_scan(caller("seller", "seller-2"), "seller-1")
    assert not may_scan(caller("buyer", "seller-1"), "seller-1")
    assert not may_scan(None, "seller-1")
    assert not may_scan(caller("scanner", works_for="seller-1"), None)
    # Scanning is all a scanner may do for its seller.
    assert not may_manage(caller("scanner", works_for="seller-1"), "seller-1")
