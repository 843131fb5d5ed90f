"""Which errors say the database could not serve (answered 503), and which are bugs (500)."""

from __future__ import annotations

import sqlite3

from sqlalchemy.exc import OperationalError

from agora.messaging.sql import LockTimeout, database_unavailable


class _PostgresError(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


def test_lock_timeouts_and_server_states_are_unavailability() -> None:
    assert database_unavailable(LockTimeout("waited 5 s"))
    for sqlstate in ("08006", "08001", "57P01", "57P03", "53300"):
        assert database_unavailable(_PostgresError(sqlstate)), sqlstate


def test_sqlite_locked_wrapped_by_sqlalchemy_is_unavailability() -> None:
    wrapped = OperationalError("BEGIN", {}, sqlite3.OperationalError("database is locked"))
    assert database_unavailable(wrapped)


def test_a_cause_deep_in_the_chain_counts() -> None:
    outer = RuntimeError("saving the order failed")
    outer.__cause__ = _PostgresError("57P01")
    assert database_unavailable(outer)


def test_bugs_are_not_unavailability() -> None:
    assert not database_unavailable(ValueError("bad"))
    assert not database_unavailable(_PostgresError("23505"))  # unique_violation
    assert not database_unavailable(_PostgresError("22P02"))  # invalid text representation
    # A refused connection that no database driver raised (an SMTP server, a peer) is not the
    # database's.
    assert not database_unavailable(ConnectionRefusedError(111, "Connection refused"))
