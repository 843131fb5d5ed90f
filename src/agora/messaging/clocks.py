"""Clocks of the other processes, as the timestamps they send say: an event's `occurred_at`
(its source service's clock), an access token's `iat` (identity's). Hosts' clocks drift; each
process judges time by its own (a hold expires by its owner's clock, a token by its
verifier's), so a peer's clock that runs ahead is a matter for the operator, not an error."""

from __future__ import annotations

import logging

from prometheus_client import Gauge

__all__ = ["CLOCK_LEEWAY", "PeerClocks"]

logger = logging.getLogger(__name__)

CLOCK_LEEWAY = 5.0
"""Seconds two processes' clocks may differ before it is reported (and a token is accepted past
its `exp` by a verifier)."""


class PeerClocks:
    """How far ahead of this process's clock each peer's runs: 0 when its timestamps are not in
    the future (a clock behind cannot be told from a message's age). The gauge (labelled `peer`)
    holds the last reading; a warning is logged when a peer goes past the leeway and a line when
    it is back within, one per change, whatever the number of messages."""

    def __init__(self, gauge: Gauge | None = None, *, leeway: float = CLOCK_LEEWAY) -> None:
        self._gauge = gauge
        self._leeway = leeway
        self.ahead: dict[str, float] = {}

    def observe(self, peer: str, ahead: float) -> None:
        """`ahead`: seconds from this process's now to the peer's timestamp of a message it
        has just sent (negative when in the past)."""
        ahead = max(0.0, ahead)
        before = self.ahead.get(peer, 0.0)
        self.ahead[peer] = ahead
        if self._gauge is not None:
            self._gauge.labels(peer).set(ahead)
        if ahead > self._leeway >= before:
            logger.warning(
                "the clock of %s runs %.1f s ahead of this process's (leeway %.0f s): check the "
                "hosts' time synchronisation",
                peer,
                ahead,
                self._leeway,
            )
        elif before > self._leeway >= ahead:
            logger.info("the clock of %s agrees with this process's again", peer)
