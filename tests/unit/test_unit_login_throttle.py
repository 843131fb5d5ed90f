"""The login throttle's rule: at most `limit` earlier attempts within the window, and how long
until the next one may proceed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from agora.services.identity.domain import throttled_for

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
WINDOW = timedelta(minutes=15)


def ago(seconds: float) -> datetime:
    return NOW - timedelta(seconds=seconds)


def test_fewer_than_the_limit_proceed() -> None:
    assert throttled_for([], 5, WINDOW, NOW) is None
    assert throttled_for([ago(i) for i in range(4)], 5, WINDOW, NOW) is None


def test_the_limit_reached_refuses_until_the_oldest_counted_leaves_the_window() -> None:
    earlier = [ago(10), ago(20), ago(30), ago(40), ago(50)]
    # Free again when ago(50) leaves: 900 - 50 seconds from now.
    assert throttled_for(earlier, 5, WINDOW, NOW) == 850


def test_beyond_the_limit_waits_for_the_limit_th_most_recent() -> None:
    earlier = [ago(s) for s in (10, 20, 30, 40, 50, 600, 700)]
    # Two of the seven must leave before fewer than five remain: the fifth most recent, ago(50).
    assert throttled_for(earlier, 5, WINDOW, NOW) == 850


def test_attempts_outside_the_window_do_not_count() -> None:
    earlier = [ago(10), ago(20), ago(30), ago(40), ago(900), ago(5000)]
    assert throttled_for(earlier, 5, WINDOW, NOW) is None


def test_the_wait_is_at_least_a_second() -> None:
    earlier = [ago(899.9)] * 5
    assert throttled_for(earlier, 5, WINDOW, NOW) == 1
