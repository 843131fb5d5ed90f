"""The one ownership rule for reads: an admin may read anything; anyone else only what they
own. What a caller may not read does not exist for them (404, never 403), so that nobody learns
which ids are taken."""

from __future__ import annotations

from agora.auth.tokens import Principal

__all__ = ["may_read"]


def may_read(caller: Principal, *owners: str | None) -> bool:
    """Whether `caller` may read a thing owned by any of `owners` (None: owned by nobody)."""
    return caller.role == "admin" or any(owner == caller.user_id for owner in owners if owner)
