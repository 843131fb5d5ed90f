"""Events of identity: who has an account, on which plan, and the profile they gave."""

from typing import ClassVar, Literal

from agora.messaging import Event

__all__ = ["PlanChanged", "UserProfileChanged", "UserRegistered"]

Role = Literal["buyer", "seller", "admin"]
Plan = Literal["free", "premium"]


class _IdentityEvent(Event):
    topic: ClassVar[str] = "identity"
    key_field: ClassVar[str] = "user_id"


class UserRegistered(_IdentityEvent):
    """A new account (registered, or an admin created with `agora users create-admin`)."""

    user_id: str
    email: str
    role: Role
    plan: Plan


class PlanChanged(_IdentityEvent):
    user_id: str
    plan: Plan
    previous_plan: Plan


class UserProfileChanged(_IdentityEvent):
    """The user's profile as it now is (a name for tickets, a phone and a postal address)."""

    user_id: str
    name: str | None = None
    phone: str | None = None
    address: str | None = None
