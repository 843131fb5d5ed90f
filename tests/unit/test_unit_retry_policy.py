"""`RetryPolicy`: which errors are transient, and the backoff between tries."""

from __future__ import annotations

from agora.messaging import LockTimeout, PermanentError, RetryPolicy


def test_a_lock_timeout_is_transient_by_default() -> None:
    policy = RetryPolicy()
    assert policy.is_transient(LockTimeout("canceling statement due to lock timeout"))
    assert not policy.is_transient(RuntimeError("a handler's bug"))
    assert not policy.is_transient(PermanentError("never"))


def test_the_backoff_doubles_up_to_its_cap() -> None:
    policy = RetryPolicy(first_delay=0.05, max_delay=5.0)
    assert [policy.delay(n) for n in (1, 2, 3)] == [0.05, 0.1, 0.2]
    assert policy.delay(8) == 5.0


def test_the_backoff_stays_at_its_cap_however_long_a_transient_fault_lasts() -> None:
    """Transient faults are retried without end: the try count grows past any float power."""
    assert RetryPolicy(max_delay=5.0).delay(100_000) == 5.0
    assert RetryPolicy(max_delay=5.0).backoff.delay(100_000) <= 5.0
