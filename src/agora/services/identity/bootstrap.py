"""The identity service's composition root."""

from __future__ import annotations

import functools
from datetime import timedelta
from pathlib import Path

from agora.auth import KeySource
from agora.messaging import Infrastructure, Service
from agora.services.identity import store
from agora.services.identity.domain import Lifetimes, ThrottleLimits
from agora.services.identity.handlers import IdentityHandlers
from agora.services.identity.passwords import Passwords
from agora.services.identity.repository import IdentityUnitOfWork, reading
from agora.services.identity.signing_keys import SigningKeys
from agora.services.spec import ServiceContext
from agora.shared.revocations import Revocations
from agora.shared.revocations.in_process import InProcessRevocations


class IdentityService(Service):
    name = "identity"
    migrations = Path(__file__).parent / "migrations"

    def __init__(
        self,
        infrastructure: Infrastructure,
        *,
        revocations: Revocations | None = None,
        lifetimes: Lifetimes | None = None,
        throttle: ThrottleLimits | None = None,
        passwords: Passwords | None = None,
        revocations_check_seconds: float = 1.0,
    ) -> None:
        super().__init__(infrastructure, store.metadata)
        lifetimes = lifetimes or Lifetimes()
        self.passwords = passwords or Passwords()
        self.keys = SigningKeys(self.platform.db, lifetimes)
        self.handlers = IdentityHandlers(
            self.unit_of_work,
            functools.partial(reading, self.platform.db),
            self.passwords,
            self.keys.current,
            revocations or InProcessRevocations(),
            lifetimes=lifetimes,
            limits=throttle or ThrottleLimits(),
        )
        # Redis keeps nothing across a restart: the list is checked and published again.
        self.platform.add_loop(
            "revocations-publisher",
            self.handlers.keep_revocations_published,
            idle=revocations_check_seconds,
        )
        # The runtime's token verifier reads the published keys here when identity runs in
        # its process, instead of fetching them over HTTP.
        self.key_set: KeySource = self.keys.key_set

    def unit_of_work(self) -> IdentityUnitOfWork:
        return self.platform.unit_of_work(IdentityUnitOfWork)

    async def start(self) -> None:
        await self.keys.ensure()
        await self.passwords.prepare()
        await self.handlers.keep_revocations_published()


def bootstrap(context: ServiceContext) -> IdentityService:
    settings = context.settings
    return IdentityService(
        context.infrastructure,
        revocations=context.shared.revocations,
        lifetimes=Lifetimes(
            access=timedelta(seconds=settings.access_token_seconds),
            refresh=timedelta(days=settings.refresh_token_days),
        ),
        throttle=ThrottleLimits(
            per_account=settings.login_failures_per_account,
            per_ip=settings.login_failures_per_ip,
            window=timedelta(seconds=settings.login_throttle_window_seconds),
        ),
        revocations_check_seconds=settings.revocations_check_seconds,
    )
