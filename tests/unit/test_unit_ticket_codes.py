"""Ticket codes: a code verifies against the key that signed it and carries its ticket, session
and place; altered in one byte, signed by a key that is not ours, or not a ticket at all (an
access token), it is refused."""

from __future__ import annotations

import datetime as dt

import pytest

from agora.auth.keys import SigningKey, issue_access_token
from agora.services.ticketing.codes import InvalidCode, TicketClaims, issue_code, verify_code

NOW = dt.datetime(2026, 11, 1, 12, 0, tzinfo=dt.UTC)
KEY = SigningKey.generate()
CLAIMS = TicketClaims("ticket-1", "session-1", "main-A-1", None)


def test_a_code_carries_its_ticket_session_and_place() -> None:
    code = issue_code(KEY, CLAIMS, NOW)
    assert verify_code(code, {KEY.kid: KEY}) == CLAIMS
    area = TicketClaims("ticket-2", "session-1", None, "pit")
    assert verify_code(issue_code(KEY, area, NOW), {KEY.kid: KEY}) == area


@pytest.mark.parametrize("position", [5, 40, -3])
def test_a_code_altered_in_one_byte_is_refused(position: int) -> None:
    code = issue_code(KEY, CLAIMS, NOW)
    altered = code[:position] + ("x" if code[position] != "x" else "y") + code[position + 1 :]
    with pytest.raises(InvalidCode):
        verify_code(altered, {KEY.kid: KEY})


def test_a_code_signed_by_another_key_is_refused() -> None:
    stranger = SigningKey.generate()
    forged = issue_code(stranger, CLAIMS, NOW)
    with pytest.raises(InvalidCode, match="not ours"):
        verify_code(forged, {KEY.kid: KEY})
    # Even under our key's name: the signature does not hold.
    impostor = SigningKey(kid=KEY.kid, private_pem=stranger.private_pem)
    with pytest.raises(InvalidCode):
        verify_code(issue_code(impostor, CLAIMS, NOW), {KEY.kid: KEY})


def test_an_access_token_is_not_a_ticket() -> None:
    token = issue_access_token(
        KEY,
        user_id="u",
        role="buyer",
        plan="free",
        email="u@example.com",
        session_id="s",
        now=NOW,
        ttl=dt.timedelta(minutes=5),
    )
    with pytest.raises(InvalidCode):
        verify_code(token, {KEY.kid: KEY})
    with pytest.raises(InvalidCode):
        verify_code("not even a token", {KEY.kid: KEY})
