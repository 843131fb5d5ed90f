"""Signing keys and access tokens issued with them: the identity service's half of the token
format whose other half is `tokens.TokenVerifier`."""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt.algorithms import OKPAlgorithm

from agora.auth.tokens import ACCESS_AUDIENCE, ISSUER, SIGNING_ALGORITHM, Plan, Role

__all__ = ["SigningKey", "issue_access_token", "key_set"]


@dataclasses.dataclass(frozen=True, slots=True)
class SigningKey:
    """An Ed25519 key pair named `kid`; the private half as PKCS#8 PEM."""

    kid: str
    private_pem: bytes

    @classmethod
    def generate(cls) -> SigningKey:
        private = Ed25519PrivateKey.generate()
        pem = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return cls(kid=secrets.token_urlsafe(12), private_pem=pem)

    def _private(self) -> Ed25519PrivateKey:
        key = serialization.load_pem_private_key(self.private_pem, password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"signing key {self.kid} is not an Ed25519 key")
        return key

    def public_jwk(self) -> dict[str, Any]:
        jwk: dict[str, Any] = OKPAlgorithm.to_jwk(self._private().public_key(), as_dict=True)
        return {**jwk, "kid": self.kid, "alg": SIGNING_ALGORITHM, "use": "sig"}


def key_set(keys: Iterable[SigningKey]) -> dict[str, Any]:
    """The JSON Web Key Set publishing the public halves of `keys`."""
    return {"keys": [key.public_jwk() for key in keys]}


def issue_access_token(
    key: SigningKey,
    *,
    user_id: str,
    role: Role,
    plan: Plan,
    email: str,
    session_id: str,
    now: datetime,
    ttl: timedelta,
    works_for: str | None = None,
) -> str:
    """An access token for the user; `works_for` (the seller a scanner works for) is claimed
    only when given."""
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "aud": ACCESS_AUDIENCE,
        "sub": user_id,
        "role": role,
        "plan": plan,
        "email": email,
        "sid": session_id,
        "iat": int(now.timestamp()),
        "exp": int((now + ttl).timestamp()),
        "jti": secrets.token_urlsafe(12),
    }
    if works_for is not None:
        claims["works_for"] = works_for
    return jwt.encode(
        claims, key.private_pem, algorithm=SIGNING_ALGORITHM, headers={"kid": key.kid}
    )
