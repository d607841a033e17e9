"""Who is calling: JWT verification into an `Identity`, and dev tokens for `loom token`."""

from __future__ import annotations

import re
import time
from collections import OrderedDict
from typing import Any

import jwt
import msgspec
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, EllipticCurvePublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from infra.settings import Settings

TENANT_ID_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
_REQUIRED_CLAIMS = ("exp", "sub", "tenant_id")
# A JWT is a header; no honest one comes near this, and it bounds the work a garbage one costs.
_MAX_TOKEN_CHARS = 8192
_MAX_SUB_CHARS = 256


class Identity(msgspec.Struct, frozen=True):
    """The verified caller: the tenant everything is scoped to and the acting subject."""

    tenant: str
    sub: str


class AuthError(Exception):
    """A token was refused; `detail` says why, in words safe to show the caller."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


_VERIFIED_CAPACITY = 10_000


class TokenVerifier:
    """Verifies bearer JWTs with the keys named in `Settings`.

    With `jwt_public_key` set, only RS256 (RSA key) or ES256 (P-256 key) tokens
    are accepted and HS256 is refused, so the public key can never double as an
    HMAC secret; without it, only HS256 with `jwt_secret`.
    """

    def __init__(self, settings: Settings) -> None:
        self._key: Any
        if settings.jwt_public_key is not None:
            self._key, algorithm = _load_public_key(settings.jwt_public_key)
            self._algorithms = [algorithm]
        else:
            self._key = settings.jwt_secret
            self._algorithms = ["HS256"]
        # Verifying a signature costs ~0.5 ms; a client sends the same token on every
        # request. A token that verified is trusted again until its `exp`, not after.
        self._verified: OrderedDict[str, tuple[Identity, float]] = OrderedDict()

    @property
    def algorithms(self) -> tuple[str, ...]:
        """The only signing algorithms a token may use."""
        return tuple(self._algorithms)

    def verify(self, token: str | None) -> Identity:
        """Return the caller's `Identity`, or raise `AuthError` for any token not fit to trust."""
        if not token or not token.strip():
            raise AuthError("missing bearer token")
        if len(token) > _MAX_TOKEN_CHARS:
            raise AuthError("malformed token")
        token = token.strip()
        known = self._verified.get(token)
        if known is not None:
            if known[1] > time.time():
                return known[0]
            del self._verified[token]
        claims = self._decode(token)
        identity = Identity(tenant=_tenant(claims), sub=_sub(claims))
        self._verified[token] = (identity, float(claims["exp"]))
        if len(self._verified) > _VERIFIED_CAPACITY:
            self._verified.popitem(last=False)
        return identity

    def _decode(self, token: str) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self._key,
                algorithms=self._algorithms,
                options={"require": list(_REQUIRED_CLAIMS)},
            )
        except jwt.ExpiredSignatureError:
            raise AuthError("token expired") from None
        except jwt.MissingRequiredClaimError as exc:
            raise AuthError(f"token lacks the required claim {exc.claim!r}") from None
        except jwt.InvalidSignatureError:
            raise AuthError("token signature is invalid") from None
        except jwt.InvalidAlgorithmError:
            allowed = " or ".join(self._algorithms)
            raise AuthError(f"token algorithm not allowed (expected {allowed})") from None
        except jwt.exceptions.InvalidSubjectError:
            raise AuthError("token claim 'sub' must be a string") from None
        except jwt.PyJWTError as exc:
            raise AuthError(f"invalid token: {exc}") from None
        except (ValueError, TypeError):
            # Defensive: a crafted header can reach key handling with odd types.
            raise AuthError("malformed token") from None
        return claims


def mint_token(secret: str, tenant: str, sub: str, ttl_s: int = 86400) -> str:
    """Sign an HS256 dev token for `tenant`/`sub` valid for `ttl_s` seconds."""
    if not is_valid_tenant_id(tenant):
        raise ValueError(f"tenant id must match {TENANT_ID_PATTERN.pattern}, got {tenant!r}")
    if not sub:
        raise ValueError("sub must not be empty")
    now = int(time.time())
    claims = {"sub": sub, "tenant_id": tenant, "iat": now, "exp": now + ttl_s}
    return jwt.encode(claims, secret, algorithm="HS256")


def is_valid_tenant_id(value: object) -> bool:
    """Whether `value` may name a tenant (it ends up in schemas, subjects and paths)."""
    return isinstance(value, str) and TENANT_ID_PATTERN.fullmatch(value) is not None


def _tenant(claims: dict[str, Any]) -> str:
    tenant = claims["tenant_id"]
    if not isinstance(tenant, str):
        raise AuthError("token claim 'tenant_id' must be a string")
    if not is_valid_tenant_id(tenant):
        raise AuthError(f"token claim 'tenant_id' must match {TENANT_ID_PATTERN.pattern}")
    return tenant


def _sub(claims: dict[str, Any]) -> str:
    sub = claims["sub"]
    if not isinstance(sub, str) or not sub.strip():
        raise AuthError("token claim 'sub' must be a non-empty string")
    if len(sub) > _MAX_SUB_CHARS:
        raise AuthError("token claim 'sub' is too long")
    return sub


def _load_public_key(pem: str) -> tuple[RSAPublicKey | EllipticCurvePublicKey, str]:
    try:
        key = load_pem_public_key(pem.encode())
    except ValueError as exc:
        raise ValueError(f"LOOM_JWT_PUBLIC_KEY is not a PEM public key: {exc}") from None
    if isinstance(key, RSAPublicKey):
        return key, "RS256"
    if isinstance(key, EllipticCurvePublicKey) and isinstance(key.curve, SECP256R1):
        return key, "ES256"
    raise ValueError("LOOM_JWT_PUBLIC_KEY must be an RSA or a P-256 EC public key")
