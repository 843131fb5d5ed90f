"""`Prefer: wait=N` read as RFC 7240 writes it; anything else ignored."""

from __future__ import annotations

from agora.preferences import MAX_WAIT, wait_preference


def test_wait_preferences_are_read_as_rfc_7240_writes_them() -> None:
    assert wait_preference("wait=5") == 5
    assert wait_preference("respond-async, wait=7") == 7
    assert wait_preference("WAIT = 3; foo") == 3
    assert wait_preference("wait=3600") == MAX_WAIT


def test_what_is_not_understood_is_ignored() -> None:
    for prefer in (None, "", "return=minimal", "wait=abc", "wait=-1", "wait", "x" * 10_000):
        assert wait_preference(prefer) == 0
