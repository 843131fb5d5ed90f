"""The identity service's composition root."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

from agora.messaging import Infrastructure, Service
from agora.services.identity import store
from agora.services.identity.domain import Lifetimes, ThrottleLimits, User
from agora.services.identity.handlers import IdentityHandlers
from agora.services.identity.passwords import Passwords
from agora.services.identity.signing_keys import KeyRotation, SigningKeys
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
    ) -> None:
        super().__init__(infrastructure, store.metadata)
        self.lifetimes = lifetimes or Lifetimes()
        self.passwords = passwords or Passwords()
        self.keys = SigningKeys(self.platform.db, self.lifetimes)
        self.handlers = IdentityHandlers(
            self.platform.db,
            self.unit_of_work,
            self.passwords,
            self.keys,
            revocations or InProcessRevocations(),
            lifetimes=self.lifetimes,
            limits=throttle or ThrottleLimits(),
        )

    async def key_set(self) -> Mapping[str, Any]:
        """The published keys: the runtime's key source when identity runs in its process."""
        return await self.keys.key_set()

    async def start(self) -> None:
        await self.keys.ensure()
        await self.passwords.prepare()
        await self.handlers.announce_revocations()

    async def create_admin(self, email: str, password: str) -> User:
        """An admin account (`agora users create-admin`); raises EmailTaken."""
        return await self.handlers.create_admin(email, password)

    async def rotate_keys(self, activate_after: timedelta | None = None) -> KeyRotation:
        """A new signing key (`agora keys rotate`); see `SigningKeys.rotate`."""
        return await self.keys.rotate(activate_after)


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
    )
