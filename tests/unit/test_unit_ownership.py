"""The one ownership rule for reads."""

from __future__ import annotations

import datetime as dt

import pytest

from agora.auth import Principal, Role, may_read


def caller(user_id: str, role: Role) -> Principal:
    return Principal(
        user_id=user_id,
        role=role,
        plan="free",
        email=f"{user_id}@example.com",
        session_id="s",
        expires_at=dt.datetime.now(dt.UTC),
    )


@pytest.mark.parametrize(
    ("who", "owners", "allowed"),
    [
        (caller("u1", "buyer"), ("u1",), True),
        (caller("u1", "buyer"), ("u2",), False),
        (caller("u1", "seller"), ("u2", "u1"), True),
        (caller("u1", "buyer"), (None,), False),
        (caller("u1", "buyer"), (), False),
        (caller("a", "admin"), ("u2",), True),
        (caller("a", "admin"), (None,), True),
        (caller("", "buyer"), ("",), False),  # an empty id owns nothing
    ],
)
def test_admins_read_everything_and_others_what_they_own(
    who: Principal, owners: tuple[str | None, ...], allowed: bool
) -> None:
    assert may_read(who, *owners) is allowed
