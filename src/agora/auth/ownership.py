"""The ownership rules. For reads: an admin may read anything; anyone else only what they own.
What a caller may not read does not exist for them (404, never 403), so that nobody learns which
ids are taken. For a store's things (products, venues, events): its seller and admins manage
them; at a session's door, the scanners that seller made check tickets in too."""

from __future__ import annotations

from agora.auth.tokens import Principal

__all__ = ["may_manage", "may_read", "may_scan"]


def may_read(caller: Principal, *owners: str | None) -> bool:
    """Whether `caller` may read a thing owned by any of `owners` (None: owned by nobody)."""
    return caller.role == "admin" or any(owner == caller.user_id for owner in owners if owner)


def may_manage(caller: Principal | None, seller_id: str | None) -> bool:
    """A store's seller manages it and what it sells; an admin manages every store."""
    if caller is None:
        return False
    return caller.role == "admin" or (
        caller.role == "seller" and seller_id is not None and caller.user_id == seller_id
    )


def may_scan(caller: Principal | None, seller_id: str | None) -> bool:
    """Who checks tickets in at a seller's doors and counts them: whoever manages the seller's
    events, and the scanners that work for that seller."""
    if may_manage(caller, seller_id):
        return True
    return (
        caller is not None
        and caller.role == "scanner"
        and seller_id is not None
        and caller.works_for == seller_id
    )
