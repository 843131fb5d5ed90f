"""Who is calling: access tokens (JWTs signed by identity, verified anywhere with its published
keys), the principal they carry, and the FastAPI dependencies routes declare their roles with.

The identity service issues tokens; every other process verifies them locally against the JSON
Web Key Set identity publishes at `/.well-known/jwks.json`, so no request needs identity online.
"""

from agora.auth.keys import SigningKey, issue_access_token, key_set
from agora.auth.ownership import may_manage, may_read, may_scan
from agora.auth.tokens import (
    ACCESS_AUDIENCE,
    ISSUER,
    MAX_ISSUER_SKEW,
    SIGNING_ALGORITHM,
    HttpKeySource,
    InvalidToken,
    KeySource,
    KeysUnavailable,
    Plan,
    Principal,
    Role,
    TokenVerifier,
)
from agora.auth.web import (
    AUTHORIZE,
    Admin,
    Buyer,
    CurrentUser,
    DoorStaff,
    OptionalUser,
    Seller,
    SellerOrAdmin,
    authenticate,
    client_ip,
    require,
)

__all__ = [
    "ACCESS_AUDIENCE",
    "AUTHORIZE",
    "ISSUER",
    "MAX_ISSUER_SKEW",
    "SIGNING_ALGORITHM",
    "Admin",
    "Buyer",
    "CurrentUser",
    "DoorStaff",
    "HttpKeySource",
    "InvalidToken",
    "KeySource",
    "KeysUnavailable",
    "OptionalUser",
    "Plan",
    "Principal",
    "Role",
    "Seller",
    "SellerOrAdmin",
    "SigningKey",
    "TokenVerifier",
    "authenticate",
    "client_ip",
    "issue_access_token",
    "key_set",
    "may_manage",
    "may_read",
    "may_scan",
    "require",
]
