"""The verdict of one invariant, as `agora check` prints it.

Each service's read-only `audit` module judges the invariants of its own data and offers the
facts the cross-service ones need; the platform's (`agora.messaging.audit`) judges outboxes and
consumer groups; `agora.cli.check` combines them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection

__all__ = ["SHOWN_IDS", "Verdict", "verdict"]

SHOWN_IDS = 5
"""Offending ids a verdict names (the count says how many there are)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Verdict:
    """`name` held over `scope` (a service, or services joined by +) or was violated; `detail`
    says what was looked at, or how many broke it and which first; `offenders` has them all."""

    name: str
    scope: str
    detail: str
    offenders: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.offenders

    def as_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "scope": self.scope,
            "ok": self.ok,
            "detail": self.detail,
            "offenders": list(self.offenders),
        }


def verdict(
    name: str, scope: str, *, checked: int, noun: str, offenders: Collection[str], why: str = ""
) -> Verdict:
    """A verdict over `checked` `noun`s (plural) of which `offenders` (ids, sorted here) broke
    the invariant, each for `why`."""
    if not offenders:
        return Verdict(name, scope, f"{checked} {noun}")
    ids = sorted(offenders)
    shown = ", ".join(ids[:SHOWN_IDS]) + (", …" if len(ids) > SHOWN_IDS else "")
    reason = f" {why}" if why else ""
    return Verdict(name, scope, f"{len(ids)} of {checked} {noun}{reason}: {shown}", tuple(ids))
